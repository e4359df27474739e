// bench/cuda/bench_cuda.cpp — throughput of the CUDA backend (kernels/cuda_backend.h) on the GEMM
// shapes of SmolLM2-135M and of 20B-class layers, against two ceilings measured in the same run: a
// device-to-device copy (bytes read + written) and cuBLAS fp16/bf16 GEMMs of 8192³ on random data.
// Each time is the median of many repeats between CUDA events after warm-up; inputs that would fit
// in L2 rotate among several copies so that repeats do not measure the cache. Each row also shows
// the floor max(FLOP / GEMM ceiling, bytes / copy ceiling) and how far the measured time is above
// it. Usage: kindred_bench_cuda [--reps N] [--csv FILE].
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/dtype.h"
#include "core/error.h"
#include "core/half.h"
#include "kernels/cuda_backend.h"

namespace kindred {
namespace {

using cuda::DeviceBuffer;
using cuda::GemmPrecision;

void check(cudaError_t status, const char* call, int line) {
    if (status != cudaSuccess)
        fail("CUDA error at {}:{}: {} failed: {}", __FILE__, line, call, cudaGetErrorString(status));
}
#define BENCH_CHECK(call) check((call), #call, __LINE__)

struct Stats {
    double median_ms = 0.0;
    double min_ms = 0.0;
};

int g_reps = 30;

// Median and minimum of g_reps timed calls of fn(rep) after 3 warm-up calls, each between events.
template <typename Fn>
Stats time_it(Fn&& fn) {
    cudaEvent_t start, stop;
    BENCH_CHECK(cudaEventCreate(&start));
    BENCH_CHECK(cudaEventCreate(&stop));
    for (int i = 0; i < 3; ++i) fn(i);
    cuda::synchronize();
    std::vector<double> times;
    for (int rep = 0; rep < g_reps; ++rep) {
        BENCH_CHECK(cudaEventRecord(start));
        fn(rep);
        BENCH_CHECK(cudaEventRecord(stop));
        BENCH_CHECK(cudaEventSynchronize(stop));
        float ms = 0.0f;
        BENCH_CHECK(cudaEventElapsedTime(&ms, start, stop));
        times.push_back(ms);
    }
    cuda::synchronize();  // surfaces any asynchronous fault of the timed work
    BENCH_CHECK(cudaEventDestroy(start));
    BENCH_CHECK(cudaEventDestroy(stop));
    std::sort(times.begin(), times.end());
    return {times[times.size() / 2], times.front()};
}

// Fills a device buffer by tiling one random host chunk of about 1 MiB (generating gigabytes on the
// host would take longer than the benchmark); `chunk` must tile the buffer's layout.
void upload_tiled(DeviceBuffer& buffer, const std::vector<std::uint8_t>& chunk) {
    for (std::size_t offset = 0; offset < buffer.bytes(); offset += chunk.size())
        buffer.upload(chunk.data(), std::min(chunk.size(), buffer.bytes() - offset), offset);
}

DeviceBuffer random_floats(std::size_t count, std::uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
    std::vector<std::uint8_t> chunk((std::size_t{1} << 18) * sizeof(float));
    for (std::size_t i = 0; i < chunk.size(); i += sizeof(float)) {
        const float v = unit(rng);
        std::memcpy(chunk.data() + i, &v, sizeof v);
    }
    DeviceBuffer buffer(count * sizeof(float));
    upload_tiled(buffer, chunk);
    return buffer;
}

// Random stored weights: random quant bytes with finite, model-like fp16 scales (random bits
// could be inf/NaN), as tests/kernels/kernel_test_util.h builds them.
DeviceBuffer random_weight(DType type, std::int64_t elements, std::uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
    const auto& info = dtype_info(type);
    const std::size_t blocks_per_chunk = (std::size_t{1} << 20) / info.block_bytes;
    std::vector<std::uint8_t> chunk(blocks_per_chunk * info.block_bytes);
    for (auto& b : chunk) b = static_cast<std::uint8_t>(rng());
    auto put16 = [&](std::size_t offset, std::uint16_t bits) { std::memcpy(chunk.data() + offset, &bits, 2); };
    for (std::size_t b = 0; b < blocks_per_chunk; ++b) {
        const std::size_t base = b * info.block_bytes;
        const float scale = 0.01f + 0.05f * std::abs(unit(rng));
        switch (type) {
            case DType::F32: {
                const float v = unit(rng);
                std::memcpy(chunk.data() + base, &v, sizeof v);
                break;
            }
            case DType::F16: put16(base, fp32_to_fp16(unit(rng))); break;
            case DType::BF16: put16(base, fp32_to_bf16(unit(rng))); break;
            case DType::Q4_0:
            case DType::Q8_0: put16(base, fp32_to_fp16(scale)); break;
            case DType::Q4_1:
                put16(base, fp32_to_fp16(scale));
                put16(base + 2, fp32_to_fp16(-0.3f * std::abs(unit(rng))));
                break;
            case DType::Q4_K:
                put16(base, fp32_to_fp16(scale / 20.0f));
                put16(base + 2, fp32_to_fp16(scale / 20.0f));
                break;
            case DType::Q6_K: put16(base + 208, fp32_to_fp16(scale / 5.0f)); break;
            case DType::MXFP4: chunk[base] = static_cast<std::uint8_t>(120 + rng() % 8); break;
            default: fail("bench: no generator for {}", dtype_name(type));
        }
    }
    DeviceBuffer buffer(row_bytes(type, static_cast<std::uint64_t>(elements)));
    upload_tiled(buffer, chunk);
    return buffer;
}

struct Ceilings {
    double copy_gbs = 0.0;  // bytes read + written per second, 1e9
    double f16_tflops = 0.0;
    double bf16_tflops = 0.0;
    double tf32_tflops = 0.0;
    double gemm(GemmPrecision precision) const {
        return precision == GemmPrecision::F16 ? f16_tflops : precision == GemmPrecision::BF16 ? bf16_tflops : tf32_tflops;
    }
};

struct Row {
    std::string what;
    std::string shape;
    Stats stats;
    double flop = 0.0;
    double bytes = 0.0;
    double ceiling_tflops = 0.0;  // 0: a memory-bound op
};

std::vector<Row> g_rows;
std::string g_csv;
Ceilings g_ceilings;

void report(const Row& row) {
    const double seconds = row.stats.median_ms * 1e-3;
    const double tflops = row.flop / seconds * 1e-12;
    const double gbs = row.bytes / seconds * 1e-9;
    const double floor_ms = 1e3 * std::max(row.ceiling_tflops > 0 ? row.flop / (row.ceiling_tflops * 1e12) : 0.0,
                                           row.bytes / (g_ceilings.copy_gbs * 1e9));
    std::printf("%-34s %-22s %9.4f %9.4f %8.1f %8.0f %9.4f %6.2fx\n", row.what.c_str(), row.shape.c_str(),
                row.stats.median_ms, row.stats.min_ms, tflops, gbs, floor_ms, row.stats.median_ms / floor_ms);
    std::fflush(stdout);
    g_csv += fmt::format("{},{},{:.5f},{:.5f},{:.2f},{:.1f},{:.5f}\n", row.what, row.shape, row.stats.median_ms,
                         row.stats.min_ms, tflops, gbs, floor_ms);
    g_rows.push_back(row);
}

void print_header(const char* title) {
    std::printf("\n== %s ==\n%-34s %-22s %9s %9s %8s %8s %9s %7s\n", title, "op", "shape", "med_ms", "min_ms", "TFLOP/s",
                "GB/s", "floor_ms", "/floor");
}

Ceilings measure_ceilings() {
    Ceilings c;
    print_header("ceilings (same run)");
    {
        const std::size_t bytes = std::size_t{1} << 30;
        DeviceBuffer src = random_floats(bytes / 4, 1), dst(bytes);
        const Stats s = time_it([&](int) {
            BENCH_CHECK(cudaMemcpyAsync(dst.data(), src.data(), bytes, cudaMemcpyDeviceToDevice));
        });
        c.copy_gbs = 2.0 * static_cast<double>(bytes) / (s.median_ms * 1e-3) * 1e-9;
        std::printf("%-34s %-22s %9.4f %9.4f %8s %8.0f\n", "copy d2d (read+write)", "1 GiB", s.median_ms, s.min_ms,
                    "-", c.copy_gbs);
    }
    cuda::Matmul matmul;
    const std::int64_t n = 8192;
    DeviceBuffer out(static_cast<std::size_t>(n * n) * sizeof(float));
    for (GemmPrecision precision : {GemmPrecision::F16, GemmPrecision::BF16, GemmPrecision::TF32}) {
        // Operands: random fp32 converted on the device by the backend's own dequantizer (F32 -> f16/bf16).
        const auto type = cuda::operand_type(precision);
        const std::size_t width = type == cuda::OutputType::F32 ? 4 : 2;
        DeviceBuffer a(static_cast<std::size_t>(n * n) * width), b(a.bytes());
        {
            DeviceBuffer fa = random_floats(static_cast<std::size_t>(n * n), 2);
            DeviceBuffer fb = random_floats(static_cast<std::size_t>(n * n), 3);
            cuda::dequantize(DType::F32, fa.data(), a.data(), type, n * n);
            cuda::dequantize(DType::F32, fb.data(), b.data(), type, n * n);
            cuda::synchronize();
        }
        const Stats s = time_it([&](int) { matmul.gemm(out.as<float>(), a.data(), b.data(), n, n, n, true, precision, 0.0f); });
        const double tflops = 2.0 * n * n * n / (s.median_ms * 1e-3) * 1e-12;
        (precision == GemmPrecision::F16 ? c.f16_tflops : precision == GemmPrecision::BF16 ? c.bf16_tflops : c.tf32_tflops) = tflops;
        std::printf("%-34s %-22s %9.4f %9.4f %8.1f\n", fmt::format("cublas gemm {}", cuda::precision_name(precision)).c_str(),
                    "8192^3", s.median_ms, s.min_ms, tflops);
    }
    g_csv += fmt::format("ceiling,copy_gbs,{:.1f}\nceiling,f16_tflops,{:.1f}\nceiling,bf16_tflops,{:.1f}\nceiling,tf32_tflops,{:.1f}\n",
                         c.copy_gbs, c.f16_tflops, c.bf16_tflops, c.tf32_tflops);
    return c;
}

// How many copies of `bytes` keep the repeats' working set above three L2s (at most 32).
int rotation(std::size_t bytes, std::size_t l2_bytes) {
    return static_cast<int>(std::clamp<std::size_t>(3 * l2_bytes / std::max<std::size_t>(bytes, 1) + 1, 1, 32));
}

void bench_dequantize() {
    // 58.7 M elements: input and output are each larger than L2 already, so nothing rotates.
    print_header("dequantize 14336 x 4096 (read stored + write output)");
    const std::int64_t n = std::int64_t{14336} * 4096;
    for (DType type : {DType::Q4_0, DType::Q4_1, DType::Q8_0, DType::Q4_K, DType::Q6_K, DType::MXFP4, DType::F16,
                       DType::BF16}) {
        DeviceBuffer src = random_weight(type, n, 7);
        for (auto out : {cuda::OutputType::F16, cuda::OutputType::F32}) {
            const std::size_t width = out == cuda::OutputType::F32 ? 4 : 2;
            DeviceBuffer dst(static_cast<std::size_t>(n) * width);
            Row row{fmt::format("dequant {} -> {}", dtype_name(type), width == 4 ? "f32" : "f16"), "14336x4096",
                    time_it([&](int) { cuda::dequantize(type, src.data(), dst.data(), out, n); }), 0.0,
                    static_cast<double>(src.bytes() + dst.bytes()), 0.0};
            report(row);
        }
    }
}

struct Shape {
    const char* name;
    std::int64_t rows;  // outputs (weight rows)
    std::int64_t cols;  // inputs (weight columns)
    std::vector<std::int64_t> tokens;
};

void bench_matmul(std::size_t l2_bytes) {
    const Shape shapes[] = {
        {"smollm2 q/o 576x576", 576, 576, {512, 2048}},
        {"smollm2 up 1536x576", 1536, 576, {512, 2048}},
        {"smollm2 down 576x1536", 576, 1536, {512, 2048}},
        {"smollm2 lm_head 49152x576", 49152, 576, {1, 512, 2048}},
        {"gpt-oss 2880x2880", 2880, 2880, {512, 2048}},
        {"llama up 14336x4096", 14336, 4096, {1, 512, 2048}},
        {"llama down 4096x14336", 4096, 14336, {512, 2048}},
    };
    const DType type = DType::Q4_1;  // the default model's weights
    cuda::Matmul matmul;
    print_header("matmul, Q4_1 weights (fwd/bwd = dequantize + round + cuBLAS; gemm = cuBLAS alone; matvec = fused, <= 4 tokens)");
    for (const Shape& shape : shapes) {
        const std::int64_t elements = shape.rows * shape.cols;
        const std::size_t weight_bytes = row_bytes(type, static_cast<std::uint64_t>(elements));
        const int sets = rotation(weight_bytes, l2_bytes);
        std::vector<DeviceBuffer> weights;
        for (int s = 0; s < sets; ++s) weights.push_back(random_weight(type, elements, 100 + static_cast<std::uint32_t>(s)));
        for (std::int64_t tokens : shape.tokens) {
            const std::string dims = fmt::format("{}x{}x{}", tokens, shape.rows, shape.cols);
            DeviceBuffer x = random_floats(static_cast<std::size_t>(tokens * shape.cols), 11);
            DeviceBuffer dy = random_floats(static_cast<std::size_t>(tokens * shape.rows), 12);
            DeviceBuffer y(static_cast<std::size_t>(tokens * shape.rows) * sizeof(float));
            DeviceBuffer dx = random_floats(static_cast<std::size_t>(tokens * shape.cols), 13);
            const double flop = 2.0 * static_cast<double>(tokens) * static_cast<double>(elements);
            // Fewest bytes: the stored weight once, the fp32 activations in and out.
            const double fwd_bytes = static_cast<double>(weight_bytes) + 4.0 * static_cast<double>(tokens * (shape.cols + shape.rows));
            const double bwd_bytes = static_cast<double>(weight_bytes) + 4.0 * static_cast<double>(tokens * (shape.rows + 2 * shape.cols));
            auto w = [&](int rep) {
                return kindred::kernels::Matrix{type, shape.rows, shape.cols, weights[static_cast<std::size_t>(rep % sets)].data()};
            };
            if (tokens <= 4) {
                // The fused fp32 mat-vec: bound by the stored weight's bytes, so no GEMM ceiling.
                report({fmt::format("{} fwd matvec", shape.name), dims,
                        time_it([&](int rep) { matmul.forward(y.as<float>(), x.as<float>(), w(rep), nullptr, tokens, GemmPrecision::F32); }),
                        flop, fwd_bytes, 0.0});
            } else {
                for (GemmPrecision precision : {GemmPrecision::BF16, GemmPrecision::F16}) {
                    const std::string p(cuda::precision_name(precision));
                    report({fmt::format("{} fwd {}", shape.name, p), dims,
                            time_it([&](int rep) { matmul.forward(y.as<float>(), x.as<float>(), w(rep), nullptr, tokens, precision); }),
                            flop, fwd_bytes, g_ceilings.gemm(precision)});
                }
            }
            report({fmt::format("{} bwd_in bf16", shape.name), dims,
                    time_it([&](int rep) { matmul.backward_input(dx.as<float>(), dy.as<float>(), w(rep), tokens, GemmPrecision::BF16); }),
                    flop, bwd_bytes, g_ceilings.bf16_tflops});
            if (tokens > 1) {
                // The GEMM alone on operands already in bf16: what the dequantize-and-round passes cost
                // is the difference to the fwd row.
                DeviceBuffer wb(static_cast<std::size_t>(elements) * 2), xb(static_cast<std::size_t>(tokens * shape.cols) * 2);
                cuda::dequantize(type, weights[0].data(), wb.data(), cuda::OutputType::BF16, elements);
                cuda::dequantize(DType::F32, x.data(), xb.data(), cuda::OutputType::BF16, tokens * shape.cols);
                report({fmt::format("{} gemm bf16", shape.name), dims,
                        time_it([&](int) { matmul.gemm(y.as<float>(), xb.data(), wb.data(), tokens, shape.rows, shape.cols, true, GemmPrecision::BF16, 0.0f); }),
                        flop, 2.0 * static_cast<double>(elements + tokens * shape.cols) + 4.0 * static_cast<double>(tokens * shape.rows),
                        g_ceilings.bf16_tflops});
            }
        }
    }
}

void bench_rmsnorm(std::size_t l2_bytes) {
    print_header("rmsnorm forward (read x + write out)");
    struct NormShape { std::int64_t rows, dim; };
    for (const NormShape s : {NormShape{16384, 576}, NormShape{8192, 2880}, NormShape{4096, 4096}}) {
        const std::size_t bytes = static_cast<std::size_t>(s.rows * s.dim) * sizeof(float);
        const int sets = rotation(bytes, l2_bytes);
        std::vector<DeviceBuffer> xs;
        for (int i = 0; i < sets; ++i) xs.push_back(random_floats(static_cast<std::size_t>(s.rows * s.dim), 20 + static_cast<std::uint32_t>(i)));
        DeviceBuffer w = random_floats(static_cast<std::size_t>(s.dim), 30), out(bytes), rstd(static_cast<std::size_t>(s.rows) * 4);
        report({"rmsnorm fwd", fmt::format("{}x{}", s.rows, s.dim),
                time_it([&](int rep) {
                    cuda::rmsnorm_forward(out.as<float>(), rstd.as<float>(), xs[static_cast<std::size_t>(rep % sets)].as<float>(),
                                          w.as<float>(), s.rows, s.dim, 1e-5f, false);
                }),
                0.0, 2.0 * static_cast<double>(bytes), 0.0});
    }
}

void print_summary() {
    // The lines a reader needs first, repeated last so that they end the log.
    std::printf("\n== bench summary (median ms; TFLOP/s; GB/s; x above floor) ==\n");
    std::printf("ceilings: copy %.0f GB/s, cuBLAS fp16 %.1f / bf16 %.1f / tf32 %.1f TFLOP/s (8192^3)\n",
                g_ceilings.copy_gbs, g_ceilings.f16_tflops, g_ceilings.bf16_tflops, g_ceilings.tf32_tflops);
    for (const Row& row : g_rows) {
        const bool key = row.what.find("fwd bf16") != std::string::npos || row.what.find("matvec") != std::string::npos ||
                         row.what.find("bwd_in") != std::string::npos ||
                         row.what.find("rmsnorm") != std::string::npos || row.what.find("Q4_1 -> f16") != std::string::npos;
        if (!key) continue;
        const double seconds = row.stats.median_ms * 1e-3;
        const double floor_ms = 1e3 * std::max(row.ceiling_tflops > 0 ? row.flop / (row.ceiling_tflops * 1e12) : 0.0,
                                               row.bytes / (g_ceilings.copy_gbs * 1e9));
        std::printf("%-34s %-18s %8.3f ms %7.1f TF %6.0f GB/s %5.2fx\n", row.what.c_str(), row.shape.c_str(),
                    row.stats.median_ms, row.flop / seconds * 1e-12, row.bytes / seconds * 1e-9,
                    row.stats.median_ms / floor_ms);
    }
}

int run(int argc, char** argv) {
    std::string csv_path;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--reps" && i + 1 < argc) {
            g_reps = std::max(1, std::atoi(argv[++i]));
        } else if (arg == "--csv" && i + 1 < argc) {
            csv_path = argv[++i];
        } else {
            std::fprintf(stderr, "usage: kindred_bench_cuda [--reps N] [--csv FILE]\n");
            return 2;
        }
    }
    if (cuda::device_count() == 0) {
        std::fprintf(stderr, "kindred_bench_cuda: no CUDA device\n");
        return 1;
    }
    const auto info = cuda::device_info();
    std::printf("device: %s, sm_%d%d, %d SMs, %zu MiB, L2 %zu MiB; %d timed repeats (median)\n", info.name.c_str(),
                info.compute_major, info.compute_minor, info.multiprocessors, info.global_bytes >> 20,
                info.l2_bytes >> 20, g_reps);
    g_csv = "op,shape,median_ms,min_ms,tflops,gbs,floor_ms\n";
    g_ceilings = measure_ceilings();
    bench_dequantize();
    bench_matmul(info.l2_bytes);
    bench_rmsnorm(info.l2_bytes);
    print_summary();
    if (!csv_path.empty()) {
        std::ofstream out(csv_path);
        out << g_csv;
        if (!out) fail("kindred_bench_cuda: cannot write {}", csv_path);
    }
    return 0;
}

}  // namespace
}  // namespace kindred

int main(int argc, char** argv) {
    try {
        return kindred::run(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "kindred_bench_cuda: %s\n", e.what());
        return 1;
    }
}
