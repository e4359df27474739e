// text/tokenizer.h — the tokenizer every other room talks to: byte-level BPE built from GGUF
// metadata (tokenizer.ggml.*) or an HF tokenizer.json, or SentencePiece BPE (text/sentencepiece_bpe.h)
// from GGUF metadata or a tokenizer.json whose BPE has byte_fallback (Gemma, Llama 2, Mistral). It encodes text to ids with byte spans,
// decodes ids to the exact bytes, and streams decoded text without splitting a character.
// Encoding follows HF `tokenizers` (added tokens first, then normalizer, pre-tokenizer, BPE)
// so that the ids match the reference implementation the models were trained with.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kindred::gguf {
class Metadata;
}

namespace kindred::text {

struct Encoding {
    std::vector<std::int32_t> ids;
    // Byte range [begin, end) of each token in the input text. Tokens of plain text cover
    // exactly the bytes they encode; a token inside a stretch the normalizer changed (e.g.
    // NFC composing "e" + U+0301) gets that whole stretch; an added token's span includes the
    // whitespace its lstrip/rstrip flags swallowed.
    std::vector<std::pair<std::size_t, std::size_t>> spans;
    // Input bytes the vocabulary has no token for (e.g. 0x04 or 0xFF with SmolLM2). HF drops
    // them from the ids without a word; so does this tokenizer, to keep ids identical, but it
    // counts them here so that callers can refuse such input.
    std::size_t dropped_bytes = 0;
};

class Tokenizer {
public:
    // tokenizer.ggml.model "gpt2" (byte-level BPE; tokenizer.ggml.pre picks the pre-tokenizer) or
    // "llama" (SentencePiece BPE, text/sentencepiece_bpe.h: tokenizer.ggml.scores and token_type,
    // byte fallback; add_space_prefix must be false, as Gemma's). `name` (the file), when given,
    // starts every error message.
    static Tokenizer from_gguf(const gguf::Metadata& metadata, const std::string& name = {});
    // Byte-level BPE, or BPE with byte_fallback over "▁" spaces (normalizer Replace/Prepend or a
    // Metaspace pre-tokenizer; decoder Replace, ByteFallback, Fuse, Strip); any other variant is an
    // Error naming its key. tokenizer_config.json, when given, supplies chat_template and the
    // bos/eos tokens.
    static Tokenizer from_hf(const std::string& tokenizer_json_path, const std::string& tokenizer_config_path = {});
    // The same from file contents already in memory; `name` stands in for the path in messages.
    static Tokenizer from_hf_json(std::string_view tokenizer_json,
                                  std::optional<std::string_view> tokenizer_config_json = std::nullopt,
                                  const std::string& name = "tokenizer.json");

    // parse_special=true matches every added token in the text first (HF's encode). With
    // false, tokens marked special (control tokens) are ordinary text, as HF's
    // split_special_tokens and llama.cpp's parse_special=false do; non-special added tokens
    // (user-defined ones, like Qwen3's <think>) still match. Never adds BOS/EOS.
    Encoding encode_with_spans(std::string_view text, bool parse_special = true) const;
    // A rendered chat (text/chat_template.h): control tokens match only inside `markup`, the byte
    // ranges [begin, end) the template wrote itself (sorted, disjoint; anything else is an Error),
    // so message content that spells a control token ("<|im_end|>") stays text and only the
    // template ever writes one; non-special added tokens match everywhere, as in HF. For a chat
    // whose messages spell no control token the ids equal encode_with_spans(text), i.e. HF's.
    Encoding encode_with_markup(std::string_view text, std::span<const std::pair<std::size_t, std::size_t>> markup) const;
    std::vector<std::int32_t> encode(std::string_view text, bool parse_special = true) const;
    // The exact bytes (possibly not valid UTF-8 when ids end mid-character), less the leading
    // spaces a SentencePiece-style tokenizer.json's Strip decoder removes (decode_strip(): the
    // "▁" its Prepend normalizer added; HF's decode drops it too); throws Error for an id outside
    // the vocabulary.
    std::string decode(std::span<const std::int32_t> ids) const;
    std::size_t decode_strip() const;
    // The bytes token `id` stands for; throws Error for an id outside the vocabulary.
    std::string_view token_bytes(std::int32_t id) const;
    std::string_view token_text(std::int32_t id) const;  // vocab entry as stored; "" for an unused id
    std::optional<std::int32_t> find_token(std::string_view token) const;  // by stored text
    std::size_t vocab_size() const;
    std::optional<std::int32_t> bos_id() const;
    std::optional<std::int32_t> eos_id() const;
    bool is_special(std::int32_t id) const;
    const std::string& chat_template() const;
    std::string summary() const;

    struct Impl;

private:
    explicit Tokenizer(std::shared_ptr<const Impl> impl);
    std::shared_ptr<const Impl> impl_;
};

// Turns ids into text as they are generated: each push returns the bytes that now form
// complete UTF-8 characters and holds back a character's leading bytes until it is whole.
// Bytes that can never become valid UTF-8 are passed through, so the concatenation of all
// pushes and finish() always equals Tokenizer::decode of the same ids (decode_strip included:
// the stream is read as a whole sequence, not a continuation).
class StreamingDecoder {
public:
    explicit StreamingDecoder(const Tokenizer& tokenizer);
    std::string push(std::int32_t id);
    std::string finish();  // whatever is still held back; the decoder is then empty

private:
    Tokenizer tokenizer_;  // a cheap shared handle, so the decoder cannot outlive its vocabulary
    std::string pending_;
    std::size_t strip_left_ = 0;  // leading spaces still to drop
};

}  // namespace kindred::text
