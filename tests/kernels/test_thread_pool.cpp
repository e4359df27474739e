// Tests for core/thread_pool.h (lives with the kernels that depend on it).
#include <gtest/gtest.h>

#include <atomic>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"

namespace kindred {
namespace {

TEST(ThreadPool, EveryThreadRunsOncePerRegion) {
    ThreadPool pool(3);
    for (int round = 0; round < 1000; ++round) {
        std::vector<std::atomic<int>> calls(3);
        pool.run([&](int thread, int threads) {
            EXPECT_EQ(threads, 3);
            calls[static_cast<std::size_t>(thread)].fetch_add(1);
        });
        for (auto& c : calls) ASSERT_EQ(c.load(), 1);
    }
}

TEST(ThreadPool, ParallelForCoversRangeExactlyOnceInGrainChunks) {
    ThreadPool pool(4);
    for (std::int64_t n : {1, 5, 16, 17, 1000}) {
        std::vector<std::atomic<int>> hits(static_cast<std::size_t>(n));
        pool.parallel_for(n, 8, [&](std::int64_t begin, std::int64_t end) {
            EXPECT_TRUE(begin % 8 == 0);
            for (std::int64_t i = begin; i < end; ++i) hits[static_cast<std::size_t>(i)].fetch_add(1);
        });
        for (auto& h : hits) ASSERT_EQ(h.load(), 1);
    }
}

TEST(ThreadPool, NestedRegionsRunInline) {
    ThreadPool pool(2);
    std::atomic<int> inner{0};
    pool.run([&](int, int) { pool.run([&](int, int threads) { EXPECT_EQ(threads, 1); inner.fetch_add(1); }); });
    EXPECT_EQ(inner.load(), 2);
}

TEST(ThreadPool, ExceptionsReachTheCallerAfterEveryThreadFinished) {
    ThreadPool pool(3);
    std::atomic<int> finished{0};
    EXPECT_THROW(pool.run([&](int thread, int) {
        finished.fetch_add(1);
        if (thread != 0) fail("worker {} failed", thread);
    }),
                 Error);
    EXPECT_EQ(finished.load(), 3);
    // The pool stays usable.
    std::atomic<int> calls{0};
    pool.run([&](int, int) { calls.fetch_add(1); });
    EXPECT_EQ(calls.load(), 3);
}

TEST(ThreadPool, RejectsZeroThreads) { EXPECT_THROW(ThreadPool(0), Error); }

}  // namespace
}  // namespace kindred
