// fuzz/fuzz_chat_completion.cpp — libFuzzer entry for net::parse_chat_completion, the reader of
// what a judge or tested endpoint answers: any byte string must parse or throw kindred::Error.
// Seeds: tests/corpus/chat-completion-malformed/ plus a few valid replies (fuzz/README.md).
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "net/openai_chat.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    try {
        const auto completion =
            kindred::net::parse_chat_completion(std::string(reinterpret_cast<const char*>(data), size), "fuzz.json");
        volatile std::size_t sink = completion.content.size() + completion.finish_reason.size();
        (void)sink;
    } catch (const kindred::Error&) {
    }
    return 0;
}
