// kindred_bench_inference MODEL [--threads N] [--pp N] [--tg N] [--reps R]: the two numbers
// llama-bench reports, measured the same way so that run.sh can print them side by side:
//   ppN  one forward of N prompt tokens on an empty cache (batched prefill), tokens/s
//   tgN  N single-token forwards starting from an empty cache (decode), tokens/s
// Token ids are drawn from a fixed seed (the values do not change the arithmetic). Also prints
// the matmul+attention GFLOP/s each rate amounts to. Output: one JSON object per line.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "../bench_stats.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "infer/loaded_model.h"
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
    if (argc < 2) kindred::fail("usage: kindred_bench_inference MODEL [--threads N] [--pp N] [--tg N] [--reps R]");
    std::string model_path = argv[1];
    int threads = 2;
    std::int64_t pp = 512, tg = 128;
    int reps = 3;
    for (int i = 2; i + 1 < argc; i += 2) {
        const std::string flag = argv[i];
        const long long value = std::stoll(argv[i + 1]);
        if (flag == "--threads") threads = static_cast<int>(value);
        else if (flag == "--pp") pp = value;
        else if (flag == "--tg") tg = value;
        else if (flag == "--reps") reps = static_cast<int>(value);
        else kindred::fail("unknown flag {}", flag);
    }
    if (threads < 1 || pp < 1 || tg < 1 || reps < 1) kindred::fail("--threads, --pp, --tg and --reps must be >= 1");
    kindred::set_thread_count(threads);
    const auto model = kindred::infer::LoadedModel::open(model_path);
    auto& decoder = model->decoder();
    const ModelConfig& config = decoder.config();

    std::mt19937_64 rng(42);
    std::uniform_int_distribution<std::int32_t> pick(0, static_cast<std::int32_t>(config.vocab_size - 1));
    std::vector<std::int32_t> tokens(static_cast<std::size_t>(std::max(pp, tg)));
    for (auto& t : tokens) t = pick(rng);
    std::vector<float> logits(static_cast<std::size_t>(config.vocab_size));
    kindred::model::KvCache cache(config, std::max(pp, tg));

    const auto seconds = [](auto start) {
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    };
    const auto report = [&](const std::string& test, std::int64_t n, const std::vector<double>& rates) {
        double flops = 0.0;
        for (std::int64_t p = 0; p < n; ++p) flops += flops_per_token(config, static_cast<double>(p));
        const Stats s = stats_of(rates);
        const nlohmann::json line = {{"test", test}, {"threads", threads}, {"tokens_per_second", s.mean},
                                     {"stddev", s.stddev}, {"gflops", s.mean * flops / static_cast<double>(n) / 1e9}};
        fmt::print("{}\n", line.dump());
        std::fflush(stdout);
    };

    // One untimed warm-up of each kind: page in the mapped weights, spin up the thread pool.
    decoder.forward(std::span(tokens).first(static_cast<std::size_t>(std::min<std::int64_t>(pp, 16))), cache, logits);
    cache.clear();

    std::vector<double> rates;
    for (int r = 0; r < reps; ++r) {
        cache.clear();
        const auto start = std::chrono::steady_clock::now();
        decoder.forward(std::span(tokens).first(static_cast<std::size_t>(pp)), cache, logits);
        rates.push_back(static_cast<double>(pp) / seconds(start));
    }
    report(fmt::format("pp{}", pp), pp, rates);

    rates.clear();
    for (int r = 0; r < reps; ++r) {
        cache.clear();
        const auto start = std::chrono::steady_clock::now();
        for (std::int64_t i = 0; i < tg; ++i) decoder.forward(std::span(tokens).subspan(static_cast<std::size_t>(i), 1), cache, logits);
        rates.push_back(static_cast<double>(tg) / seconds(start));
    }
    report(fmt::format("tg{}", tg), tg, rates);
    return 0;
}

}  // namespace

int main(int argc, char** argv) { return kindred::bench::guarded_main("kindred_bench_inference", run, argc, argv); }
