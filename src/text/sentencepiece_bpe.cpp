#include "text/sentencepiece_bpe.h"

#include <algorithm>
#include <queue>

#include "text/unicode.h"

namespace kindred::text {

SentencePieceBpe::SentencePieceBpe(BpeModel::WordMap pieces, const std::vector<float>& scores,
                                   std::array<std::int32_t, 256> byte_ids)
    : pieces_(std::move(pieces)), byte_ids_(byte_ids) {
    // Scores become ranks (equal scores, equal ranks), so that both kinds of model join by rank.
    std::vector<float> distinct;
    distinct.reserve(pieces_.size());
    for (const auto& [text, id] : pieces_) distinct.push_back(scores[static_cast<std::size_t>(id)]);
    std::sort(distinct.begin(), distinct.end(), std::greater<>());
    distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
    score_ranks_.assign(scores.size(), 0);
    for (const auto& [text, id] : pieces_) {
        const float score = scores[static_cast<std::size_t>(id)];
        const auto place = std::lower_bound(distinct.begin(), distinct.end(), score, std::greater<>());
        score_ranks_[static_cast<std::size_t>(id)] = static_cast<std::int32_t>(place - distinct.begin());
    }
}

SentencePieceBpe::SentencePieceBpe(BpeModel::WordMap vocabulary, MergeTable merges,
                                   std::array<std::int32_t, 256> byte_ids, bool ignore_merges)
    : pieces_(std::move(vocabulary)), merges_(std::move(merges)), byte_ids_(byte_ids), ignore_merges_(ignore_merges) {}

std::optional<SentencePieceBpe::Join> SentencePieceBpe::join(std::string_view text, std::size_t begin, std::size_t end,
                                                             std::int32_t left_id, std::int32_t right_id) const {
    if (score_ranks_.empty()) {
        const MergeTable::Entry* entry = merges_.find(left_id, right_id);
        if (entry == nullptr) return std::nullopt;
        return Join{entry->rank, entry->merged};
    }
    // By score, two symbols join when their text together is a piece.
    const auto found = pieces_.find(text.substr(begin, end - begin));
    if (found == pieces_.end()) return std::nullopt;
    return Join{score_ranks_[static_cast<std::size_t>(found->second)], found->second};
}

namespace {

// A run of the text that is (so far) one piece; a doubly linked list over the characters.
struct Symbol {
    std::size_t begin = 0;
    std::size_t length = 0;  // 0 once merged into its left neighbour
    std::int32_t id = 0;
    std::int64_t prev = -1;
    std::int64_t next = -1;
};

// A candidate join of symbol `left` (left_length bytes) with its right neighbour, valid while the
// two still span `length` bytes (symbols only grow, so the same start and length mean the same pair).
struct Candidate {
    std::int32_t rank = 0;
    std::size_t left_length = 0;
    std::int64_t left = 0;
    std::size_t length = 0;
    std::int32_t id = 0;
};

// Best rank first. Equal scores come from one piece built from different splits, or the same split
// in several places: the longer left part first, as transformers ranks the merges it derives for
// such a vocabulary (matters for runs of spaces), then the leftmost pair, as SentencePiece and HF's
// BPE do (with a merge list, equal ranks are the same pair, so only the leftmost rule applies).
struct Worse {
    bool operator()(const Candidate& a, const Candidate& b) const {
        if (a.rank != b.rank) return a.rank > b.rank;
        if (a.left_length != b.left_length) return a.left_length < b.left_length;
        return a.left > b.left;
    }
};

}  // namespace

void SentencePieceBpe::encode(std::string_view text, std::vector<std::int32_t>& ids,
                              std::vector<std::uint32_t>& lengths) const {
    if (text.empty()) return;
    if (ignore_merges_) {
        if (const auto whole = pieces_.find(text); whole != pieces_.end()) {
            ids.push_back(whole->second);
            lengths.push_back(static_cast<std::uint32_t>(text.size()));
            return;
        }
    }
    // One symbol per character in the vocabulary; a character that is not becomes its bytes.
    std::vector<Symbol> symbols;
    symbols.reserve(text.size());
    const auto append = [&](std::size_t begin, std::size_t length, std::int32_t id) {
        const auto index = static_cast<std::int64_t>(symbols.size());
        symbols.push_back({begin, length, id, index - 1, -1});
        if (index > 0) symbols[static_cast<std::size_t>(index - 1)].next = index;
    };
    for (std::size_t pos = 0; pos < text.size();) {
        const std::size_t length = utf8_length_at(text, pos);
        const auto found = pieces_.find(text.substr(pos, length));
        if (found != pieces_.end()) {
            append(pos, length, found->second);
        } else {
            for (std::size_t b = pos; b < pos + length; ++b) append(b, 1, byte_ids_[static_cast<unsigned char>(text[b])]);
        }
        pos += length;
    }

    std::priority_queue<Candidate, std::vector<Candidate>, Worse> queue;
    const auto consider = [&](std::int64_t left) {
        if (left < 0) return;
        const Symbol& a = symbols[static_cast<std::size_t>(left)];
        if (a.next < 0) return;
        const Symbol& b = symbols[static_cast<std::size_t>(a.next)];
        if (const auto joined = join(text, a.begin, b.begin + b.length, a.id, b.id))
            queue.push({joined->rank, a.length, left, a.length + b.length, joined->id});
    };
    for (std::int64_t i = 0; i + 1 < static_cast<std::int64_t>(symbols.size()); ++i) consider(i);

    while (!queue.empty()) {
        const Candidate best = queue.top();
        queue.pop();
        Symbol& left = symbols[static_cast<std::size_t>(best.left)];
        if (left.length == 0 || left.next < 0) continue;
        Symbol& right = symbols[static_cast<std::size_t>(left.next)];
        if (left.length + right.length != best.length) continue;  // stale: a neighbour changed since
        left.length += right.length;
        left.id = best.id;
        right.length = 0;
        left.next = right.next;
        if (left.next >= 0) symbols[static_cast<std::size_t>(left.next)].prev = best.left;
        consider(left.prev);
        consider(best.left);
    }

    for (std::int64_t i = 0; i >= 0; i = symbols[static_cast<std::size_t>(i)].next) {
        ids.push_back(symbols[static_cast<std::size_t>(i)].id);
        lengths.push_back(static_cast<std::uint32_t>(symbols[static_cast<std::size_t>(i)].length));
    }
}

}  // namespace kindred::text
