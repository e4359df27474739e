// text/bpe.h — the byte-level BPE model: vocabulary ids of the 256 bytes, merges ranked by
// their order in the file, and the merge loop over one pre-token word. Results are cached
// per word, since natural text repeats its words far more often than it invents new ones.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace kindred::text {

// Open-addressing map from a pair of token ids to (rank, merged id); built once, read-only.
class MergeTable {
public:
    struct Entry {
        std::uint64_t key = kEmpty;
        std::int32_t rank = 0;
        std::int32_t merged = 0;
    };
    static constexpr std::uint64_t kEmpty = ~std::uint64_t{0};

    void reserve(std::size_t count);
    // A later duplicate pair replaces the earlier one (HF builds its map the same way).
    void insert(std::int32_t left, std::int32_t right, std::int32_t rank, std::int32_t merged);
    const Entry* find(std::int32_t left, std::int32_t right) const {
        const std::uint64_t key = pack(left, right);
        for (std::size_t slot = hash(key);; slot = (slot + 1) & mask_) {
            const Entry& entry = slots_[slot];
            if (entry.key == key) return &entry;
            if (entry.key == kEmpty) return nullptr;
        }
    }
    std::size_t size() const { return size_; }

private:
    static std::uint64_t pack(std::int32_t left, std::int32_t right) {
        return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(left)) << 32) | static_cast<std::uint32_t>(right);
    }
    std::size_t hash(std::uint64_t key) const {
        return static_cast<std::size_t>((key * 0x9E3779B97F4A7C15ull) >> shift_) & mask_;
    }
    std::vector<Entry> slots_;
    std::size_t mask_ = 0;
    int shift_ = 64;
    std::size_t size_ = 0;
};

struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

class BpeModel {
public:
    using WordMap = std::unordered_map<std::string, std::int32_t, StringHash, std::equal_to<>>;
    // byte_ids[b]: the vocabulary id of the single byte b, or -1 when the vocabulary has none
    // (SmolLM2 lacks 21 bytes; HF drops such bytes from the word, and so do we, so that the
    // ids agree). token_lengths[id]: the byte length of token id. whole_words: the vocabulary
    // by bytes, consulted first when ignore_merges (gpt-oss) is set.
    BpeModel(std::vector<std::int32_t> byte_ids, std::vector<std::uint32_t> token_lengths, MergeTable merges,
             bool ignore_merges, WordMap whole_words);

    // Words seen before and their ids: open addressing over arenas of word bytes and ids, so
    // that a hit costs one hash of the word and, usually, one probe.
    class Cache {
    public:
        // The ids of `word`, or nullptr when it is not cached.
        const std::int32_t* find(std::string_view word, std::uint64_t hash, std::size_t& count) const;
        // Ignored once the cache holds its capacity of words.
        void insert(std::string_view word, std::uint64_t hash, const std::vector<std::int32_t>& ids);

    private:
        struct Slot {
            std::uint64_t hash = 0;  // 0 marks an empty slot (hashes are forced odd)
            std::uint32_t key_offset = 0;
            std::uint32_t key_length = 0;
            std::uint32_t ids_offset = 0;
            std::uint32_t ids_count = 0;
        };
        void grow();
        std::vector<Slot> slots_;
        std::size_t size_ = 0;
        std::string keys_;
        std::vector<std::int32_t> ids_;
    };

    // One encode call's view of the model: it holds the shared cache for the whole call when
    // no other thread does, else falls back to a cache of its own (it never waits).
    class Session {
    public:
        explicit Session(const BpeModel& model);
        // Appends the ids of one word (raw bytes, never empty) to out; bytes without a token
        // add nothing.
        void encode_word(std::string_view word, std::vector<std::int32_t>& out);

    private:
        const BpeModel& model_;
        std::unique_lock<std::mutex> lock_;
        Cache local_;
        Cache* cache_;
        std::vector<std::int32_t> scratch_;
    };

    bool encodes_byte(unsigned char byte) const { return byte_ids_[byte] >= 0; }
    bool encodes_every_byte() const { return encodes_every_byte_; }
    std::uint32_t token_length(std::int32_t id) const { return token_lengths_[static_cast<std::size_t>(id)]; }
    std::size_t merge_count() const { return merges_.size(); }

private:
    void merge_short(std::vector<std::int32_t>& ids) const;
    void merge_long(std::vector<std::int32_t>& ids) const;

    static std::uint64_t hash_word(std::string_view word);

    std::vector<std::int32_t> byte_ids_;
    std::vector<std::uint32_t> token_lengths_;
    MergeTable merges_;
    bool ignore_merges_ = false;
    bool encodes_every_byte_ = true;
    WordMap whole_words_;
    mutable std::mutex cache_mutex_;
    mutable Cache cache_;
};

}  // namespace kindred::text
