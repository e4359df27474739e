// infer/harmony.h — gpt-oss's replies read token by token in OpenAI's harmony format, so that a
// user sees only the final answer. After the generation prompt "<|start|>assistant" the model
// writes one or more messages, each a header and a body:
//
//   <|channel|>analysis<|message|>…reasoning…<|end|><|start|>assistant<|channel|>final<|message|>…answer…<|return|>
//
// A body is shown only when its header names the `final` channel; analysis (the chain of thought,
// which OpenAI says must never reach users) and commentary (tool preambles, calls) stay hidden, as
// do headers and markup. The reply ends at <|return|> or <|call|> (generation_config's end tokens,
// which the caller's stop tokens already hold) and at the <|end|> that closes a final message; an
// <|end|> after any other channel only closes that message, and generation goes on.
#pragma once

#include <cstdint>
#include <string>

#include "text/tokenizer.h"

namespace kindred::infer {

class HarmonyReply {
public:
    enum class Token {
        Show,  // part of the final answer
        Hide,  // header, markup or a message on another channel
        End,   // the reply is complete (the token itself is not shown)
    };

    // Looks up the markup tokens; Error naming the one the tokenizer lacks. The tokenizer must
    // outlive this object.
    explicit HarmonyReply(const text::Tokenizer& tokenizer);

    // What generated token `id` is, given the tokens before it.
    Token push(std::int32_t id);

private:
    enum class State {
        Header,   // after <|start|>assistant: the channel and recipient up to <|message|>
        Body,     // a message's text up to <|end|>
        Between,  // after a message's <|end|>: until the next <|start|>
    };

    const text::Tokenizer& tokenizer_;
    std::int32_t start_, channel_, message_, end_, return_, call_;
    State state_ = State::Header;
    bool in_channel_name_ = false;
    std::string channel_name_;  // the current header's channel
    bool final_ = false;        // the current body is on the final channel
};

}  // namespace kindred::infer
