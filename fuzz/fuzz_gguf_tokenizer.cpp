// fuzz/fuzz_gguf_tokenizer.cpp — libFuzzer entry for tokenizers built from GGUF metadata
// (tokenizer.ggml.*: byte-level BPE and SentencePiece BPE): any byte string must be refused with
// kindred::Error or give a tokenizer that encodes and decodes a fixed text without crashing.
// Seeds: tests/corpus/gguf-tokenizer-malformed/ and tests/goldens/tokenizer/tiny_sentencepiece.gguf (both
// from tools/make_malformed_gguf_tokenizer.py); see fuzz/README.md.
#include <cstddef>
#include <cstdint>
#include <span>

#include "core/error.h"
#include "formats/gguf.h"
#include "text/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    try {
        const auto file = kindred::gguf::File::parse(std::span<const std::uint8_t>(data, size), "fuzz.gguf");
        const auto tokenizer = kindred::text::Tokenizer::from_gguf(file.metadata(), file.name());
        const char* text = "<start_of_turn>user\n  H\xC3\xA9llo\t\xF0\x9F\x98\x80 <eos>\x01\xFF";
        for (const bool parse_special : {true, false}) {
            const auto ids = tokenizer.encode(text, parse_special);
            volatile std::size_t sink = tokenizer.decode(ids).size();
            (void)sink;
        }
    } catch (const kindred::Error&) {
    }
    return 0;
}
