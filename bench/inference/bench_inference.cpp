// kindred_bench_inference MODEL [--threads N] [--pp N] [--tg N] [--reps R] [--products int8|fp32]
// [--kv-cache f32|f16|q8_0] [--depth D]: the two numbers llama-bench reports, measured the same way
// so that run.sh can print them side by side:
//   ppN  one forward of N prompt tokens on an empty cache (batched prefill), tokens/s
//   tgN  N single-token forwards starting from an empty cache (decode), tokens/s; with --depth D
//        (llama-bench's -d) both start after D tokens already in the cache (prefilled untimed), the
//        long-context case where the KV cache's element type (--kv-cache, model/kv_cache.h) matters
// Token ids are drawn from a fixed seed (the values do not change the arithmetic). Also prints
// the matmul+attention GFLOP/s each rate amounts to, and for decode the bytes it must read per
// token (every weight matrix once, the output head included, plus the KV cache up to the
// position) as a fraction of the machine's read bandwidth, measured first by a STREAM-like kernel
// (each thread sums its part of a buffer far larger than the caches; best of several passes) with
// one thread and with --threads. Output: one JSON object per line, the first
// naming the instruction sets and kernels that ran (kernels/cpu_paths.h).
#include <algorithm>
#include <chrono>
#include <memory>
#include <cmath>
#include <cstdio>
#include <random>
#include <span>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#ifdef __AVX2__
#include <immintrin.h>
#endif

#include "../bench_main.h"
#include "../bench_products.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "formats/gguf.h"
#include "infer/loaded_model.h"
#include "kernels/cpu_paths.h"
#include "model/kv_cache.h"

namespace {

using kindred::ModelConfig;

// Multiply-adds x 2 for one token at position `position`: the weight matmuls (q, k, v, o, gate,
// up, down per layer, then the output head) plus attention scores and the weighted sum of values.
double flops_per_token(const ModelConfig& c, double position) {
    const double h = static_cast<double>(c.hidden_size);
    const double q = static_cast<double>(c.num_heads * c.head_dim);
    const double kv = static_cast<double>(c.num_kv_heads * c.head_dim);
    const double ff = static_cast<double>(c.intermediate_size);
    const double layers = static_cast<double>(c.num_layers);
    const double matmuls = layers * (h * q + 2.0 * h * kv + q * h + 3.0 * h * ff) + h * static_cast<double>(c.vocab_size);
    const double attention = layers * 2.0 * q * (position + 1.0);
    return 2.0 * (matmuls + attention);
}

// Bytes one decode step at `position` reads: every weight matrix once (the embedding table only
// when it doubles as the output head; otherwise one row of it, not counted) plus the keys and
// values of positions 0..position in every layer, in the cache's element type.
double decode_bytes_per_token(const kindred::gguf::File& file, const ModelConfig& c, kindred::DType kv_cache,
                              double position) {
    double weights = 0.0;
    for (const auto& tensor : file.tensors())
        if (tensor.name != "token_embd.weight" || c.tie_word_embeddings)
            weights += static_cast<double>(tensor.data.size());
    const double kv = static_cast<double>(c.num_layers * 2 * c.num_kv_heads) *
                      static_cast<double>(kindred::row_bytes(kv_cache, static_cast<std::uint64_t>(c.head_dim)));
    return weights + kv * (position + 1.0);
}

// Sum of n floats with independent vector accumulators, so that loads, not adds, bound it.
float sum_floats(const float* x, std::int64_t n) {
    std::int64_t i = 0;
    float total = 0.0f;
#ifdef __AVX2__
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_add_ps(a0, _mm256_load_ps(x + i));
        a1 = _mm256_add_ps(a1, _mm256_load_ps(x + i + 8));
        a2 = _mm256_add_ps(a2, _mm256_load_ps(x + i + 16));
        a3 = _mm256_add_ps(a3, _mm256_load_ps(x + i + 24));
    }
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (const float lane : lanes) total += lane;
#endif
    for (; i < n; ++i) total += x[i];
    return total;
}

// Read bandwidth in GB/s with the pool's threads: each pass, every thread sums its contiguous
// share of a 512 MiB buffer (32x this machine's L3, 6x the default model); the best of `passes`.
double read_bandwidth(int passes) {
    constexpr std::int64_t floats = std::int64_t{128} << 20;
    const std::unique_ptr<float[], decltype(&std::free)> buffer(
        static_cast<float*>(std::aligned_alloc(64, floats * sizeof(float))), &std::free);
    if (!buffer) kindred::fail("read bandwidth: cannot allocate its buffer");
    kindred::thread_pool().parallel_for(floats, 1 << 16, [&](std::int64_t b, std::int64_t e) {
        std::fill(buffer.get() + b, buffer.get() + e, 1.0f);  // each thread faults in its own pages
    });
    double best = 0.0;
    std::vector<float> sums(static_cast<std::size_t>(kindred::thread_pool().size()));
    for (int pass = 0; pass < passes; ++pass) {
        const auto start = std::chrono::steady_clock::now();
        kindred::thread_pool().run([&](int thread, int threads) {
            const std::int64_t per = floats / threads;
            sums[static_cast<std::size_t>(thread)] = sum_floats(buffer.get() + thread * per, per);
        });
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        best = std::max(best, static_cast<double>(floats) * sizeof(float) / seconds / 1e9);
    }
    float total = 0.0f;
    for (const float s : sums) total += s;
    if (total <= 0.0f) kindred::fail("read bandwidth: the buffer did not sum to its size");
    return best;
}

struct Stats {
    double mean = 0.0;
    double stddev = 0.0;
};

Stats stats_of(const std::vector<double>& values) {
    Stats s;
    for (const double v : values) s.mean += v;
    s.mean /= static_cast<double>(values.size());
    for (const double v : values) s.stddev += (v - s.mean) * (v - s.mean);
    s.stddev = values.size() > 1 ? std::sqrt(s.stddev / static_cast<double>(values.size() - 1)) : 0.0;
    return s;
}

int run(int argc, char** argv) {
    if (argc < 2)
        kindred::fail("usage: kindred_bench_inference MODEL [--threads N] [--pp N] [--tg N] [--reps R] [--products int8|fp32] "
                      "[--kv-cache f32|f16|q8_0] [--depth D]");
    std::string model_path = argv[1];
    int threads = 2;
    std::int64_t pp = 512, tg = 128, depth = 0;
    int reps = 3;
    auto products = kindred::kernels::Precision::Int8;  // as `kindred generate` by default
    kindred::DType kv_cache = kindred::DType::F32;
    for (int i = 2; i + 1 < argc; i += 2) {
        const std::string flag = argv[i];
        if (flag == "--products") {
            products = kindred::bench::products(argv[i + 1]);
            continue;
        }
        if (flag == "--kv-cache") {
            const auto type = kindred::model::kv_cache_type_from_name(argv[i + 1]);
            if (!type) kindred::fail("--kv-cache must be f32, f16 or q8_0, got '{}'", argv[i + 1]);
            kv_cache = *type;
            continue;
        }
        const long long value = std::stoll(argv[i + 1]);
        if (flag == "--threads") threads = static_cast<int>(value);
        else if (flag == "--pp") pp = value;
        else if (flag == "--tg") tg = value;
        else if (flag == "--reps") reps = static_cast<int>(value);
        else if (flag == "--depth") depth = value;
        else kindred::fail("unknown flag {}", flag);
    }
    if (threads < 1 || pp < 1 || tg < 1 || reps < 1 || depth < 0)
        kindred::fail("--threads, --pp, --tg and --reps must be >= 1, --depth >= 0");
    fmt::print("{}\n", nlohmann::json{{"cpu_paths", kindred::kernels::describe_cpu_paths()},
                                      {"products", kindred::kernels::precision_name(products)},
                                      {"kv_cache", kindred::model::kv_cache_type_name(kv_cache)},
                                      {"depth", depth}}
                           .dump());
    double bandwidth = 0.0;  // ends as the one at `threads`
    for (const int t : threads > 1 ? std::vector<int>{1, threads} : std::vector<int>{1}) {
        kindred::set_thread_count(t);
        bandwidth = read_bandwidth(5);
        fmt::print("{}\n",
                   nlohmann::json{{"test", "read_bandwidth"}, {"threads", t}, {"gb_per_second", bandwidth}}.dump());
    }
    kindred::set_thread_count(threads);
    const auto model = kindred::infer::LoadedModel::open(model_path);
    auto& decoder = model->decoder();
    decoder.set_products(products);
    decoder.set_kv_cache_type(kv_cache);
    const ModelConfig& config = decoder.config();

    std::mt19937_64 rng(42);
    std::uniform_int_distribution<std::int32_t> pick(0, static_cast<std::int32_t>(config.vocab_size - 1));
    std::vector<std::int32_t> tokens(static_cast<std::size_t>(depth + std::max(pp, tg)));
    for (auto& t : tokens) t = pick(rng);
    const std::span<const std::int32_t> context = std::span(tokens).first(static_cast<std::size_t>(depth));
    const std::span<const std::int32_t> measured = std::span(tokens).subspan(static_cast<std::size_t>(depth));
    std::vector<float> logits(static_cast<std::size_t>(config.vocab_size));
    kindred::model::KvCache cache = decoder.kv_cache(depth + std::max(pp, tg));
    // Back to the `depth` context tokens, prefilled once (untimed) and kept across repetitions.
    const auto rewind = [&] {
        if (depth == 0 || cache.size() < depth) {
            cache.clear();
            if (depth > 0) decoder.forward(context, cache, logits);
        }
        cache.truncate(depth);
    };

    const auto seconds = [](auto start) {
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    };
    const auto file = kindred::gguf::File::open(model->path());
    const auto report = [&](const std::string& test, std::int64_t n, const std::vector<double>& rates) {
        double flops = 0.0, bytes = 0.0;
        for (std::int64_t p = depth; p < depth + n; ++p) {
            flops += flops_per_token(config, static_cast<double>(p));
            bytes += decode_bytes_per_token(file, config, kv_cache, static_cast<double>(p));
        }
        const Stats s = stats_of(rates);
        nlohmann::json line = {{"test", test}, {"threads", threads}, {"depth", depth},
                               {"kv_cache", kindred::model::kv_cache_type_name(kv_cache)}, {"tokens_per_second", s.mean},
                               {"stddev", s.stddev}, {"gflops", s.mean * flops / static_cast<double>(n) / 1e9}};
        if (test.starts_with("tg")) {
            // Decode reads its bytes once per token; prefill reads the weights once per batch.
            const double gb_per_second = s.mean * bytes / static_cast<double>(n) / 1e9;
            line["bytes_per_token"] = bytes / static_cast<double>(n);
            line["read_gb_per_second"] = gb_per_second;
            line["fraction_of_bandwidth"] = gb_per_second / bandwidth;
        }
        fmt::print("{}\n", line.dump());
        std::fflush(stdout);
    };

    // One untimed warm-up of each kind: page in the mapped weights, spin up the thread pool.
    rewind();
    decoder.forward(measured.first(static_cast<std::size_t>(std::min<std::int64_t>(pp, 16))), cache, logits);

    std::vector<double> rates;
    for (int r = 0; r < reps; ++r) {
        rewind();
        const auto start = std::chrono::steady_clock::now();
        decoder.forward(measured.first(static_cast<std::size_t>(pp)), cache, logits);
        rates.push_back(static_cast<double>(pp) / seconds(start));
    }
    report(fmt::format("pp{}", pp), pp, rates);

    rates.clear();
    for (int r = 0; r < reps; ++r) {
        rewind();
        const auto start = std::chrono::steady_clock::now();
        for (std::int64_t i = 0; i < tg; ++i) decoder.forward(measured.subspan(static_cast<std::size_t>(i), 1), cache, logits);
        rates.push_back(static_cast<double>(tg) / seconds(start));
    }
    report(fmt::format("tg{}", tg), tg, rates);
    return 0;
}

}  // namespace

int main(int argc, char** argv) { return bench_main("kindred_bench_inference", run, argc, argv); }
