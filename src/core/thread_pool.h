// core/thread_pool.h — the one pool of worker threads that CPU kernels split their work over.
// Kernels run hundreds of short parallel regions per decoded token, so a region must start in
// microseconds: workers spin briefly on a generation counter before sleeping on it, and a region
// is a plain function pointer plus context (no std::function, no allocation per call).
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace kindred {

class ThreadPool {
public:
    // `threads` counts the calling thread too; 1 means everything runs inline.
    explicit ThreadPool(int threads);
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    int size() const { return static_cast<int>(workers_.size()) + 1; }

    // Calls fn(thread, threads) once on each of `threads` threads (the caller is thread 0) and
    // returns when all calls have returned. A call from inside a region runs inline on one thread.
    // When calls throw, the first exception is rethrown here after every thread has finished.
    template <typename F>
    void run(F&& fn) {
        auto trampoline = [](void* context, int thread, int threads) {
            (*static_cast<std::remove_reference_t<F>*>(context))(thread, threads);
        };
        dispatch(trampoline, &fn);
    }

    // Splits [0, n) into contiguous chunks, a whole number of `grain` items each (except the
    // last), one chunk per thread; fn(begin, end) is called for every non-empty chunk.
    template <typename F>
    void parallel_for(std::int64_t n, std::int64_t grain, F&& fn) {
        if (n <= 0) return;
        const std::int64_t units = (n + grain - 1) / grain;
        if (units == 1 || size() == 1) {
            fn(std::int64_t{0}, n);
            return;
        }
        run([&](int thread, int threads) {
            const std::int64_t per = (units + threads - 1) / threads;
            const std::int64_t begin = std::min(n, thread * per * grain);
            const std::int64_t end = std::min(n, (thread + 1) * per * grain);
            if (begin < end) fn(begin, end);
        });
    }

private:
    using Task = void (*)(void* context, int thread, int threads);
    void dispatch(Task task, void* context);
    void worker_loop(int index);
    void run_guarded(Task task, void* context, int thread);

    std::vector<std::thread> workers_;
    std::mutex dispatch_mutex_;  // one region at a time when several threads share the pool
    Task task_ = nullptr;
    void* context_ = nullptr;
    std::atomic<std::uint32_t> generation_{0};
    std::atomic<int> pending_{0};
    std::atomic<bool> stop_{false};
    std::mutex error_mutex_;
    std::exception_ptr error_;  // first exception of the current region
};

// The process-wide pool kernels use. Its size is KINDRED_THREADS when set, else every core.
ThreadPool& thread_pool();
// Replaces the process-wide pool (call before any kernel runs, e.g. from a --threads flag).
void set_thread_count(int threads);

}  // namespace kindred
