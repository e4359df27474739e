// kindred_bench_int8_dot [--reps R] [--max-tokens T] [--only TEXT]: microseconds per kernels::matmul_forward of
// 1, 2, 4, ... T tokens against quantized weights of the shapes the seed models decode with (and
// SmolLM2's with an NF4 base quantized at load, which has no integer dot: its Int8 rows are fp32), in
// Precision::F32 (fp32 mat-vec below 4 tokens, dequantized panels and sgemm from 4) and
// Precision::Int8 (8-bit activations, integer dots), on core/thread_pool's threads (KINDRED_THREADS).
// Each cell is the best of R runs in wall time. Output: one JSON object per line.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "../bench_main.h"
#include "core/cpu_isa.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/matmul.h"

namespace {

using kindred::DType;
using kindred::kernels::Precision;

struct Shape {
    const char* what;
    DType type;
    std::int64_t rows, cols;
};

constexpr Shape shapes[] = {
    {"SmolLM2 q/o (Q4_1)", DType::Q4_1, 576, 576},
    {"SmolLM2 gate/up (Q4_1)", DType::Q4_1, 1536, 576},
    {"SmolLM2 down (Q4_1)", DType::Q4_1, 576, 1536},
    {"gpt-oss attention (Q8_0)", DType::Q8_0, 4096, 2880},
    {"gpt-oss expert (MXFP4)", DType::MXFP4, 2880, 2880},
    {"Qwen3-30B-A3B expert gate/up (Q4_K)", DType::Q4_K, 768, 2048},
    {"Qwen3-30B-A3B expert down (Q4_K)", DType::Q4_K, 2048, 768},
    {"Qwen3-30B-A3B output, 8192 rows (Q6_K)", DType::Q6_K, 8192, 2048},
    {"SmolLM2 q/o (NF4)", DType::NF4, 576, 576},
    {"SmolLM2 gate/up (NF4)", DType::NF4, 1536, 576},
    {"SmolLM2 down (NF4)", DType::NF4, 576, 1536},
};

int run(int argc, char** argv) {
    int reps = 20;
    std::int64_t max_tokens = 32;
    std::string only;  // measure only the shapes whose description contains this
    for (int i = 1; i + 1 < argc; i += 2) {
        if (std::strcmp(argv[i], "--reps") == 0) reps = std::stoi(argv[i + 1]);
        else if (std::strcmp(argv[i], "--max-tokens") == 0) max_tokens = std::stoll(argv[i + 1]);
        else if (std::strcmp(argv[i], "--only") == 0) only = argv[i + 1];
        else kindred::fail("unknown flag {}", argv[i]);
    }
    fmt::print("{}\n", nlohmann::json{{"cpu", kindred::describe(kindred::cpu_isa())},
                                      {"threads", kindred::thread_pool().size()}}
                           .dump());
    std::mt19937 rng(7);
    for (const Shape& s : shapes) {
        if (std::string_view(s.what).find(only) == std::string_view::npos) continue;
        // Bytes in [0x30, 0x3f]: every fp16, fp32 and e8m0 scale field is then an ordinary normal number.
        std::vector<std::uint8_t> weights(kindred::matrix_bytes(s.type, static_cast<std::uint64_t>(s.rows * s.cols)));
        for (auto& b : weights) b = static_cast<std::uint8_t>(0x30 + rng() % 16);
        const kindred::kernels::Matrix w{s.type, s.rows, s.cols, weights.data()};
        std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
        std::vector<float> x(static_cast<std::size_t>(max_tokens * s.cols)), y(static_cast<std::size_t>(max_tokens * s.rows));
        for (auto& v : x) v = unit(rng);
        for (std::int64_t tokens = 1; tokens <= max_tokens; tokens *= 2)
            for (Precision precision : {Precision::F32, Precision::Int8}) {
                double best = 1e30;
                for (int r = 0; r < reps + 1; ++r) {  // the first run warms caches and scratch
                    const auto start = std::chrono::steady_clock::now();
                    kindred::kernels::matmul_forward(y.data(), x.data(), w, nullptr, tokens, precision);
                    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
                    if (r > 0) best = std::min(best, seconds);
                }
                fmt::print("{}\n", nlohmann::json{{"shape", s.what}, {"rows", s.rows}, {"cols", s.cols},
                                                  {"tokens", tokens}, {"precision", kindred::kernels::precision_name(precision)},
                                                  {"us", best * 1e6}}
                                       .dump());
            }
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) { return bench_main("kindred_bench_int8_dot", run, argc, argv); }
