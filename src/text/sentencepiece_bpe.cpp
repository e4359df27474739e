#include "text/sentencepiece_bpe.h"

#include <queue>

#include "text/unicode.h"

namespace kindred::text {

SentencePieceBpe::SentencePieceBpe(BpeModel::WordMap pieces, std::vector<float> scores,
                                   std::array<std::int32_t, 256> byte_ids)
    : pieces_(std::move(pieces)), scores_(std::move(scores)), byte_ids_(byte_ids) {}

namespace {

// A run of the text that is (so far) one piece; a doubly linked list over the characters.
struct Symbol {
    std::size_t begin = 0;
    std::size_t length = 0;  // 0 once merged into its left neighbour
    std::int64_t prev = -1;
    std::int64_t next = -1;
};

// A candidate join of symbol `left` (left_length bytes) with its right neighbour, valid while the
// two still span `length` bytes (a join elsewhere may have grown or consumed either).
struct Candidate {
    float score = 0.0f;
    std::size_t left_length = 0;
    std::int64_t left = 0;
    std::size_t length = 0;
};

// Highest score first. Equal scores come from one piece built from different splits, or the same
// split in several places: the longer left part first, as transformers ranks the merges it derives
// for such a vocabulary (matters for runs of spaces), then the leftmost pair, as SentencePiece does.
struct Worse {
    bool operator()(const Candidate& a, const Candidate& b) const {
        if (a.score != b.score) return a.score < b.score;
        if (a.left_length != b.left_length) return a.left_length < b.left_length;
        return a.left > b.left;
    }
};

}  // namespace

void SentencePieceBpe::encode(std::string_view text, std::vector<std::int32_t>& ids,
                              std::vector<std::uint32_t>& lengths) const {
    std::vector<Symbol> symbols;
    symbols.reserve(text.size());
    for (std::size_t pos = 0; pos < text.size();) {
        const std::size_t length = utf8_length_at(text, pos);
        const auto index = static_cast<std::int64_t>(symbols.size());
        symbols.push_back({pos, length, index - 1, -1});
        if (index > 0) symbols[static_cast<std::size_t>(index - 1)].next = index;
        pos += length;
    }

    std::priority_queue<Candidate, std::vector<Candidate>, Worse> queue;
    const auto consider = [&](std::int64_t left) {
        if (left < 0) return;
        const Symbol& a = symbols[static_cast<std::size_t>(left)];
        if (a.next < 0) return;
        const Symbol& b = symbols[static_cast<std::size_t>(a.next)];
        const auto found = pieces_.find(text.substr(a.begin, a.length + b.length));
        if (found != pieces_.end())
            queue.push({scores_[static_cast<std::size_t>(found->second)], a.length, left, a.length + b.length});
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
        right.length = 0;
        left.next = right.next;
        if (left.next >= 0) symbols[static_cast<std::size_t>(left.next)].prev = best.left;
        consider(left.prev);
        consider(best.left);
    }

    for (std::int64_t i = symbols.empty() ? -1 : 0; i >= 0; i = symbols[static_cast<std::size_t>(i)].next) {
        const Symbol& s = symbols[static_cast<std::size_t>(i)];
        const auto found = pieces_.find(text.substr(s.begin, s.length));
        if (found != pieces_.end()) {
            ids.push_back(found->second);
            lengths.push_back(static_cast<std::uint32_t>(s.length));
            continue;
        }
        // Only single characters survive unmatched: merges always yield pieces.
        for (std::size_t b = s.begin; b < s.begin + s.length; ++b) {
            ids.push_back(byte_ids_[static_cast<unsigned char>(text[b])]);
            lengths.push_back(1);
        }
    }
}

}  // namespace kindred::text
