#include "text/bpe.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <queue>

namespace kindred::text {

void MergeTable::reserve(std::size_t count) {
    // Load factor at most one half keeps probe chains short.
    const std::size_t capacity = std::bit_ceil(std::max<std::size_t>(16, count * 2));
    slots_.assign(capacity, Entry{});
    mask_ = capacity - 1;
    shift_ = 64 - std::countr_zero(capacity);
    size_ = 0;
}

void MergeTable::insert(std::int32_t left, std::int32_t right, std::int32_t rank, std::int32_t merged) {
    if ((size_ + 1) * 2 > slots_.size()) {
        std::vector<Entry> old = std::move(slots_);
        reserve(std::max<std::size_t>(16, old.size()));
        for (const Entry& entry : old) {
            if (entry.key != kEmpty) {
                insert(static_cast<std::int32_t>(entry.key >> 32), static_cast<std::int32_t>(entry.key & 0xFFFFFFFFu),
                       entry.rank, entry.merged);
            }
        }
    }
    const std::uint64_t key = pack(left, right);
    for (std::size_t slot = hash(key);; slot = (slot + 1) & mask_) {
        Entry& entry = slots_[slot];
        if (entry.key == key) {
            entry.rank = rank;
            entry.merged = merged;
            return;
        }
        if (entry.key == kEmpty) {
            entry = Entry{key, rank, merged};
            ++size_;
            return;
        }
    }
}

BpeModel::BpeModel(std::vector<std::int32_t> byte_ids, std::vector<std::uint32_t> token_lengths, MergeTable merges,
                   bool ignore_merges, WordMap whole_words)
    : byte_ids_(std::move(byte_ids)),
      token_lengths_(std::move(token_lengths)),
      merges_(std::move(merges)),
      ignore_merges_(ignore_merges),
      whole_words_(std::move(whole_words)) {
    encodes_every_byte_ = std::all_of(byte_ids_.begin(), byte_ids_.end(), [](std::int32_t id) { return id >= 0; });
}

namespace {

constexpr std::int32_t kNoRank = std::numeric_limits<std::int32_t>::max();
// Words up to this many symbols merge by rescanning a rank array (cache-friendly, no heap);
// longer ones use a priority queue so that a huge word stays O(n log n).
constexpr std::size_t kShortWord = 48;
// Bounds the shared cache's memory; past it new words are merged but not remembered.
constexpr std::size_t kCacheCapacity = 1u << 17;
// Words this long rarely recur; caching them would only cost memory.
constexpr std::size_t kMaxCachedWordBytes = 256;

}  // namespace

void BpeModel::merge_short(std::vector<std::int32_t>& ids) const {
    std::size_t count = ids.size();
    std::int32_t ranks[kShortWord];
    std::int32_t merged[kShortWord];
    const auto look = [&](std::size_t i) {
        const MergeTable::Entry* entry = merges_.find(ids[i], ids[i + 1]);
        ranks[i] = entry != nullptr ? entry->rank : kNoRank;
        merged[i] = entry != nullptr ? entry->merged : -1;
    };
    for (std::size_t i = 0; i + 1 < count; ++i) {
        look(i);
    }
    while (count > 1) {
        std::size_t best = 0;
        for (std::size_t i = 1; i + 1 < count; ++i) {
            if (ranks[i] < ranks[best]) {
                best = i;
            }
        }
        if (ranks[best] == kNoRank) {
            break;
        }
        // The lowest rank merges first; among equal ranks (the same pair) the leftmost.
        ids[best] = merged[best];
        for (std::size_t i = best + 1; i + 1 < count; ++i) {
            ids[i] = ids[i + 1];
            ranks[i] = ranks[i + 1];
            merged[i] = merged[i + 1];
        }
        --count;
        if (best > 0) {
            look(best - 1);
        }
        if (best + 1 < count) {
            look(best);
        }
    }
    ids.resize(count);
}

void BpeModel::merge_long(std::vector<std::int32_t>& ids) const {
    const std::size_t count = ids.size();
    struct Symbol {
        std::int32_t id;
        std::int64_t prev;
        std::int64_t next;
    };
    std::vector<Symbol> symbols(count);
    for (std::size_t i = 0; i < count; ++i) {
        symbols[i] = {ids[i], static_cast<std::int64_t>(i) - 1, i + 1 < count ? static_cast<std::int64_t>(i + 1) : -1};
    }
    struct Candidate {
        std::int32_t rank;
        std::int64_t pos;
        std::int32_t merged;
        bool operator>(const Candidate& other) const {
            return rank != other.rank ? rank > other.rank : pos > other.pos;
        }
    };
    std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
    // Queues the pair starting at symbol `pos` (the caller guarantees pos >= 0), if it merges.
    const auto push = [&](std::int64_t pos) {
        const Symbol& left = symbols[static_cast<std::size_t>(pos)];
        if (left.next < 0) return;
        const MergeTable::Entry* entry = merges_.find(left.id, symbols[static_cast<std::size_t>(left.next)].id);
        if (entry != nullptr) queue.push({entry->rank, pos, entry->merged});
    };
    for (std::size_t i = 0; i + 1 < count; ++i) {
        push(static_cast<std::int64_t>(i));
    }
    while (!queue.empty()) {
        const Candidate top = queue.top();
        queue.pop();
        Symbol& left = symbols[static_cast<std::size_t>(top.pos)];
        if (left.id < 0 || left.next < 0) continue;  // merged away, or now last
        Symbol& right = symbols[static_cast<std::size_t>(left.next)];
        // Stale entry: the pair at this position changed since it was queued.
        const MergeTable::Entry* entry = merges_.find(left.id, right.id);
        if (entry == nullptr || entry->merged != top.merged) continue;
        left.id = top.merged;
        const std::int64_t after = right.next;
        right.id = -1;
        left.next = after;
        if (after >= 0) symbols[static_cast<std::size_t>(after)].prev = top.pos;
        if (left.prev >= 0) push(left.prev);
        push(top.pos);
    }
    ids.clear();
    for (std::int64_t pos = 0; pos >= 0; pos = symbols[static_cast<std::size_t>(pos)].next) {
        ids.push_back(symbols[static_cast<std::size_t>(pos)].id);
    }
}

BpeModel::Session::Session(const BpeModel& model)
    : model_(model), lock_(model.cache_mutex_, std::try_to_lock), cache_(lock_.owns_lock() ? &model.cache_ : &local_) {}

std::uint64_t BpeModel::hash_word(std::string_view word) {
    // Eight bytes per multiply-xorshift round; words are short, so this beats byte-wise hashes.
    std::uint64_t hash = 0x9E3779B97F4A7C15ull ^ word.size();
    std::size_t pos = 0;
    for (; pos + 8 <= word.size(); pos += 8) {
        std::uint64_t chunk = 0;
        std::memcpy(&chunk, word.data() + pos, 8);
        hash = (hash ^ chunk) * 0xBF58476D1CE4E5B9ull;
        hash ^= hash >> 31;
    }
    std::uint64_t tail = 0;
    std::memcpy(&tail, word.data() + pos, word.size() - pos);
    hash = (hash ^ tail) * 0x94D049BB133111EBull;
    hash ^= hash >> 29;
    return hash | 1;
}

const std::int32_t* BpeModel::Cache::find(std::string_view word, std::uint64_t hash, std::size_t& count) const {
    if (slots_.empty()) return nullptr;
    const std::size_t mask = slots_.size() - 1;
    for (std::size_t slot = hash & mask;; slot = (slot + 1) & mask) {
        const Slot& entry = slots_[slot];
        if (entry.hash == 0) return nullptr;
        if (entry.hash == hash && entry.key_length == word.size() &&
            std::memcmp(keys_.data() + entry.key_offset, word.data(), word.size()) == 0) {
            count = entry.ids_count;
            return ids_.data() + entry.ids_offset;
        }
    }
}

void BpeModel::Cache::grow() {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(old.empty() ? 1024 : old.size() * 2, Slot{});
    const std::size_t mask = slots_.size() - 1;
    for (const Slot& entry : old) {
        if (entry.hash == 0) continue;
        std::size_t slot = entry.hash & mask;
        while (slots_[slot].hash != 0) slot = (slot + 1) & mask;
        slots_[slot] = entry;
    }
}

void BpeModel::Cache::insert(std::string_view word, std::uint64_t hash, const std::vector<std::int32_t>& ids) {
    if (size_ >= kCacheCapacity) return;
    if ((size_ + 1) * 2 > slots_.size()) grow();  // load factor at most one half
    const std::size_t mask = slots_.size() - 1;
    std::size_t slot = hash & mask;
    while (slots_[slot].hash != 0) slot = (slot + 1) & mask;
    slots_[slot] = Slot{hash, static_cast<std::uint32_t>(keys_.size()), static_cast<std::uint32_t>(word.size()),
                        static_cast<std::uint32_t>(ids_.size()), static_cast<std::uint32_t>(ids.size())};
    keys_.append(word);
    ids_.insert(ids_.end(), ids.begin(), ids.end());
    ++size_;
}

void BpeModel::Session::encode_word(std::string_view word, std::vector<std::int32_t>& out) {
    const bool cacheable = word.size() <= kMaxCachedWordBytes;
    const std::uint64_t hash = cacheable ? hash_word(word) : 0;
    if (cacheable) {
        std::size_t count = 0;
        if (const std::int32_t* ids = cache_->find(word, hash, count)) {
            out.insert(out.end(), ids, ids + count);
            return;
        }
    }
    scratch_.clear();
    bool whole = false;
    if (model_.ignore_merges_) {
        const auto hit = model_.whole_words_.find(word);
        if (hit != model_.whole_words_.end()) {
            scratch_.push_back(hit->second);
            whole = true;
        }
    }
    if (!whole) {
        for (const char c : word) {
            const std::int32_t id = model_.byte_ids_[static_cast<unsigned char>(c)];
            if (id >= 0) scratch_.push_back(id);
        }
        if (scratch_.empty()) {
            return;
        }
        if (scratch_.size() <= kShortWord) {
            model_.merge_short(scratch_);
        } else {
            model_.merge_long(scratch_);
        }
    }
    out.insert(out.end(), scratch_.begin(), scratch_.end());
    if (cacheable) cache_->insert(word, hash, scratch_);
}

}  // namespace kindred::text
