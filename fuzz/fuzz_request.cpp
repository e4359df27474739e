// fuzz/fuzz_request.cpp — libFuzzer entry for `kindred serve`'s request-body parser
// (serve::parse_request: JSON to a generation request). Byte 0 picks the endpoint, the rest is the
// body. Each input must parse or raise ApiError 400 (any other exception, crash or sanitizer
// report is a bug); a parsed request must respect the limits it was parsed under, carry sampling
// settings the sampler accepts, and turn into response objects that serialize.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "serve/protocol.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace kindred::serve;
    if (size == 0) return 0;
    const Endpoint endpoint = (data[0] & 1) != 0 ? Endpoint::Completions : Endpoint::ChatCompletions;
    const std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
    RequestLimits limits;
    limits.max_messages = 16;
    limits.max_tokens = 2048;
    limits.vocab_size = 49152;
    GenerationRequest request;
    try {
        request = parse_request(body, endpoint, limits);
    } catch (const ApiError& error) {
        if (error.status != 400) __builtin_trap();
        return 0;
    }
    if (request.max_tokens < 1 || request.max_tokens > limits.max_tokens) __builtin_trap();
    if (request.messages.size() > limits.max_messages) __builtin_trap();
    if (request.stop.size() > 4) __builtin_trap();
    if (endpoint == Endpoint::ChatCompletions && request.messages.empty()) __builtin_trap();
    request.sampling.validate(limits.vocab_size);  // throws, and so aborts the run, if the parser let a bad value through
    const ReplyHeader header{new_response_id(endpoint), 0, request.model};
    const std::string text = request.messages.empty() ? request.prompt : request.messages.back().content;
    const Usage usage{1, 1};
    (void)dump(completion_object(endpoint, header, text, kindred::infer::FinishReason::Stop, usage));
    (void)sse_event(text_chunk(endpoint, header, text));
    return 0;
}
