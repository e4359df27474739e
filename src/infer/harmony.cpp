// infer/harmony.cpp — the harmony reply reader (see harmony.h).
#include "infer/harmony.h"

#include "core/error.h"

namespace kindred::infer {
namespace {

std::int32_t markup_token(const text::Tokenizer& tokenizer, const char* text) {
    const auto id = tokenizer.find_token(text);
    if (!id) fail("harmony: the tokenizer has no {} token, so it cannot read gpt-oss replies", text);
    return *id;
}

}  // namespace

HarmonyReply::HarmonyReply(const text::Tokenizer& tokenizer)
    : tokenizer_(tokenizer),
      start_(markup_token(tokenizer, "<|start|>")),
      channel_(markup_token(tokenizer, "<|channel|>")),
      message_(markup_token(tokenizer, "<|message|>")),
      end_(markup_token(tokenizer, "<|end|>")),
      return_(markup_token(tokenizer, "<|return|>")),
      call_(markup_token(tokenizer, "<|call|>")) {}

HarmonyReply::Token HarmonyReply::push(std::int32_t id) {
    if (id == return_ || id == call_) return Token::End;
    if (id == start_) {  // a new message (also when the model skipped the previous <|end|>)
        state_ = State::Header;
        in_channel_name_ = false;
        channel_name_.clear();
        return Token::Hide;
    }
    switch (state_) {
        case State::Header:
            if (id == channel_) {
                in_channel_name_ = true;
                channel_name_.clear();
            } else if (id == message_) {
                state_ = State::Body;
                final_ = channel_name_ == "final";
            } else if (in_channel_name_) {
                // The channel is the first word after <|channel|> (" to=functions.x" or
                // "<|constrain|>json" may follow it).
                const std::string piece = tokenizer_.decode(std::span(&id, 1));
                const auto space = piece.find_first_of(" \t\n");
                channel_name_ += piece.substr(0, space);
                if (space != std::string::npos || tokenizer_.is_special(id)) in_channel_name_ = false;
            }
            return Token::Hide;
        case State::Body:
            if (id == end_) {
                if (final_) return Token::End;
                state_ = State::Between;
                return Token::Hide;
            }
            return final_ ? Token::Show : Token::Hide;
        case State::Between:
            return Token::Hide;
    }
    return Token::Hide;
}

}  // namespace kindred::infer
