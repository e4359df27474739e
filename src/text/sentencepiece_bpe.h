// text/sentencepiece_bpe.h — SentencePiece's BPE model as llama.cpp's GGUF files carry it
// (tokenizer.ggml.model "llama": Gemma, Llama 2): pieces with scores and no merge list. Encoding
// starts from single characters and repeatedly joins the adjacent pair whose concatenation is a
// piece with the highest score (the leftmost pair on ties), as SentencePiece and llama.cpp do;
// what is left that no piece covers falls back to its UTF-8 bytes as <0xXX> pieces. The text comes
// in already normalized (spaces written as U+2581 "▁"); control and user-defined tokens are the
// tokenizer's business (text/tokenizer.h), never produced here.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "text/bpe.h"

namespace kindred::text {

class SentencePieceBpe {
public:
    // pieces: text -> id of every piece a merge may produce (and single characters), scores[id]
    // their scores (finite), byte_ids[b] the id of the piece <0xXX> for byte b.
    SentencePieceBpe(BpeModel::WordMap pieces, std::vector<float> scores, std::array<std::int32_t, 256> byte_ids);

    // Appends the ids of `text` and, per id, how many bytes of `text` it covers (their sum is
    // text.size()). Never drops a byte.
    void encode(std::string_view text, std::vector<std::int32_t>& ids, std::vector<std::uint32_t>& lengths) const;

    std::size_t piece_count() const { return pieces_.size(); }

private:
    BpeModel::WordMap pieces_;
    std::vector<float> scores_;
    std::array<std::int32_t, 256> byte_ids_;
};

}  // namespace kindred::text
