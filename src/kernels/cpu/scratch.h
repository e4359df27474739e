// kernels/cpu/scratch.h — per-thread buffers that grow to the largest size asked for and are then
// reused, so that a decode step or a training product allocates nothing; internal to kernels/cpu.
// Each (element type, Kind) pair is its own buffer on each thread. A kernel names the buffers it
// holds at the same time with enumerators of an enum in its own anonymous namespace (so no two
// kernels' kinds are ever the same buffer), e.g. thread_scratch<float, Scratch::Rows>(n). Every
// buffer starts on a cache line (core/aligned.h), as AMX tile rows and vector loads want.
#pragma once

#include <cstdint>

#include "core/aligned.h"

namespace kindred::kernels::cpu {

template <typename T, auto Kind>
T* thread_scratch(std::int64_t n) {
    thread_local GrowingBuffer<T> buffer;
    return buffer.at_least(n);
}

}  // namespace kindred::kernels::cpu
