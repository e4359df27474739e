// text/sentencepiece_bpe.h — BPE over characters with byte fallback, as SentencePiece models are
// shipped: in llama.cpp's GGUF files (tokenizer.ggml.model "llama": Gemma, Llama 2) as pieces with
// scores and no merge list, and in HF tokenizer.json files (model BPE with byte_fallback) as a
// vocabulary with a ranked merge list. Encoding starts from single characters (one not in the
// vocabulary becomes its UTF-8 bytes as <0xXX> pieces, as HF does) and repeatedly joins the adjacent
// pair that ranks best: by the score of the piece the pair makes (the leftmost pair on ties, as
// SentencePiece and llama.cpp do) or by the pair's place in the merge list. The text comes in already
// normalized (spaces written as U+2581 "▁"); control and user-defined tokens are the tokenizer's
// business (text/tokenizer.h), never produced here.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "text/bpe.h"

namespace kindred::text {

class SentencePieceBpe {
public:
    // GGUF: pieces: text -> id of every piece a merge may produce (and single characters),
    // scores[id] their scores (finite), byte_ids[b] the id of the piece <0xXX> for byte b.
    SentencePieceBpe(BpeModel::WordMap pieces, const std::vector<float>& scores, std::array<std::int32_t, 256> byte_ids);
    // tokenizer.json: vocabulary: text -> id of every model token; merges: pairs of ids ranked by
    // their place in the file; ignore_merges: a word that is a token is that token, unmerged.
    SentencePieceBpe(BpeModel::WordMap vocabulary, MergeTable merges, std::array<std::int32_t, 256> byte_ids,
                     bool ignore_merges);

    // Appends the ids of `text` and, per id, how many bytes of `text` it covers (their sum is
    // text.size()). Never drops a byte.
    void encode(std::string_view text, std::vector<std::int32_t>& ids, std::vector<std::uint32_t>& lengths) const;

    std::size_t piece_count() const { return pieces_.size(); }
    std::size_t merge_count() const { return merges_.size(); }
    bool by_score() const { return !score_ranks_.empty(); }

private:
    struct Join {
        std::int32_t rank;  // lower joins first
        std::int32_t id;    // the piece the two symbols become
    };
    // Whether two adjacent symbols, ids left_id and right_id, together text[begin, end), join.
    std::optional<Join> join(std::string_view text, std::size_t begin, std::size_t end, std::int32_t left_id,
                             std::int32_t right_id) const;

    BpeModel::WordMap pieces_;
    std::vector<std::int32_t> score_ranks_;  // GGUF: per id, its score's place from the highest
    MergeTable merges_;                      // tokenizer.json
    std::array<std::int32_t, 256> byte_ids_;
    bool ignore_merges_ = false;
};

}  // namespace kindred::text
