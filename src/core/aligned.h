// core/aligned.h — arrays that start on a 64-byte cache line. Vector and AMX tile loads read whole
// 64-byte rows; a row that straddles two lines costs two loads (one thread's bf16 product of
// 2048 x 448 x 576 on AMX: 530 GFLOP/s from std::vector's 16-byte-aligned storage, 1470 from
// line-aligned storage).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <vector>

#include "core/error.h"

namespace kindred {

constexpr std::int64_t cache_line_bytes = 64;

struct FreeDeleter {
    void operator()(void* p) const { std::free(p); }
};

template <typename T>
using AlignedArray = std::unique_ptr<T[], FreeDeleter>;

// At least `bytes` (and one line) starting on a cache line, rounded up to whole lines as
// aligned_alloc requires; null when the memory is not there.
inline void* allocate_lines(std::size_t bytes) {
    const std::size_t lines = std::max<std::size_t>((bytes + cache_line_bytes - 1) / cache_line_bytes, 1);
    return std::aligned_alloc(cache_line_bytes, lines * cache_line_bytes);
}

// n elements of T, not initialized (pages become resident only as they are written), starting
// on a cache line; throws Error when the memory is not there.
template <typename T>
AlignedArray<T> aligned_array(std::int64_t n) {
    static_assert(std::is_trivially_copyable_v<T>, "aligned_array holds plain data");
    const auto bytes = static_cast<std::size_t>(std::max<std::int64_t>(n, 1)) * sizeof(T);
    auto* p = static_cast<T*>(allocate_lines(bytes));
    if (p == nullptr) fail("cannot allocate {} bytes", bytes);
    return AlignedArray<T>(p);
}

// std::allocator's counterpart whose storage starts on a cache line, for buffers that change
// size with their contents (AlignedVector).
template <typename T>
struct CacheLineAllocator {
    using value_type = T;
    CacheLineAllocator() = default;
    template <typename U>
    CacheLineAllocator(const CacheLineAllocator<U>&) {}
    T* allocate(std::size_t n) {
        void* p = allocate_lines(n * sizeof(T));
        if (p == nullptr) throw std::bad_alloc();
        return static_cast<T*>(p);
    }
    void deallocate(T* p, std::size_t) { std::free(p); }
    template <typename U>
    bool operator==(const CacheLineAllocator<U>&) const {
        return true;
    }
};

template <typename T>
using AlignedVector = std::vector<T, CacheLineAllocator<T>>;

// A buffer that grows to the largest size asked for and keeps its contents' prefix when it
// grows; new elements are zero.
template <typename T>
class GrowingBuffer {
public:
    T* at_least(std::int64_t n) {
        if (n > size_) {
            AlignedArray<T> bigger = aligned_array<T>(n);
            if (size_ > 0) std::memcpy(bigger.get(), data_.get(), static_cast<std::size_t>(size_) * sizeof(T));
            std::memset(static_cast<void*>(bigger.get() + size_), 0, static_cast<std::size_t>(n - size_) * sizeof(T));
            data_ = std::move(bigger);
            size_ = n;
        }
        return data_.get();
    }

private:
    AlignedArray<T> data_;
    std::int64_t size_ = 0;
};

}  // namespace kindred
