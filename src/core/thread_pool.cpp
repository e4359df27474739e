// core/thread_pool.cpp — spin-then-sleep workers behind ThreadPool (see the header for why).
#include "core/thread_pool.h"

#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>

#include "core/error.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define KINDRED_PAUSE() _mm_pause()
#else
#define KINDRED_PAUSE() ((void)0)
#endif

namespace kindred {
namespace {

// Waiting has three phases: a short spin (the next region of a decode step usually comes within
// microseconds), then yielding the core for a while (when cores are oversubscribed, the thread
// we wait for may need ours to run), then sleeping on the atomic.
constexpr int spin_iterations = 256;
constexpr auto yield_period = std::chrono::microseconds(200);

thread_local bool inside_region = false;

template <typename T, typename Done>
void wait_until(const std::atomic<T>& word, Done done) {
    for (int i = 0; i < spin_iterations; ++i) {
        if (done()) return;
        KINDRED_PAUSE();
    }
    const auto yield_until = std::chrono::steady_clock::now() + yield_period;
    while (std::chrono::steady_clock::now() < yield_until) {
        if (done()) return;
        std::this_thread::yield();
    }
    for (;;) {
        const T seen = word.load(std::memory_order_acquire);
        if (done()) return;
        word.wait(seen, std::memory_order_acquire);
    }
}

}  // namespace

ThreadPool::ThreadPool(int threads) {
    if (threads < 1) fail("thread pool: thread count must be at least 1, got {}", threads);
    workers_.reserve(static_cast<std::size_t>(threads - 1));
    for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
    stop_.store(true, std::memory_order_release);
    generation_.fetch_add(1, std::memory_order_acq_rel);
    generation_.notify_all();
    for (auto& worker : workers_) worker.join();
}

void ThreadPool::dispatch(Task task, void* context) {
    if (workers_.empty() || inside_region) {
        task(context, 0, 1);
        return;
    }
    std::lock_guard lock(dispatch_mutex_);
    task_ = task;
    context_ = context;
    pending_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_acq_rel);
    generation_.notify_all();
    inside_region = true;
    run_guarded(task, context, 0);
    inside_region = false;
    // The last worker to finish wakes the caller in case it went to sleep on pending_.
    wait_until(pending_, [&] { return pending_.load(std::memory_order_acquire) == 0; });
    if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
}

void ThreadPool::run_guarded(Task task, void* context, int thread) {
    try {
        task(context, thread, size());
    } catch (...) {
        std::lock_guard lock(error_mutex_);
        if (!error_) error_ = std::current_exception();
    }
}

void ThreadPool::worker_loop(int index) {
    inside_region = true;  // a kernel called from a worker never fans out again
    // Regions start from generation 0 (the constructor's), not from whatever the counter holds when
    // this thread gets going: a region dispatched before the thread ran must still be seen.
    std::uint32_t seen = 0;
    for (;;) {
        wait_until(generation_, [&] { return generation_.load(std::memory_order_acquire) != seen; });
        seen = generation_.load(std::memory_order_acquire);
        if (stop_.load(std::memory_order_acquire)) return;
        run_guarded(task_, context_, index);
        if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) pending_.notify_one();
    }
}

namespace {

int default_thread_count() {
    if (const char* value = std::getenv("KINDRED_THREADS")) {
        char* end = nullptr;
        const long parsed = std::strtol(value, &end, 10);
        if (end == value || *end != '\0' || parsed < 1 || parsed > 1024)
            fail("KINDRED_THREADS: expected a thread count between 1 and 1024, got '{}'", value);
        return static_cast<int>(parsed);
    }
    const unsigned cores = std::thread::hardware_concurrency();
    return cores == 0 ? 1 : static_cast<int>(cores);
}

std::unique_ptr<ThreadPool>& global_pool() {
    static std::unique_ptr<ThreadPool> pool;
    return pool;
}

std::mutex global_mutex;

}  // namespace

ThreadPool& thread_pool() {
    std::lock_guard lock(global_mutex);
    auto& pool = global_pool();
    if (!pool) pool = std::make_unique<ThreadPool>(default_thread_count());
    return *pool;
}

void set_thread_count(int threads) {
    std::lock_guard lock(global_mutex);
    global_pool() = std::make_unique<ThreadPool>(threads);
}

}  // namespace kindred
