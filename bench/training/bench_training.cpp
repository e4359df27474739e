// kindred_bench_training MODEL [--threads N] [--rows R] [--seq T] [--steps S] [--rank K] [--checkpoint 0|1]
//                        [--compute fp32|bf16]:
// QLoRA training throughput of the trainable decoder, measured the way bench_training_torch.py
// measures transformers + PEFT so that run.sh can print both side by side. One optimizer step is
// R rows of T random token ids (every position trained on the next id), forward + backward of each
// row (TrainableDecoder runs one row at a time), then gradient clipping and AdamW. One untimed
// warm-up step, then S timed steps. Prints one JSON line: tokens/s (each step's, their mean and stddev),
// the useful GFLOP/s they amount to (formula at flops_per_step), the process's CPU seconds per
// step and its peak RSS. --compute is the precision of the frozen products (kernels/matmul.h;
// bf16 falls back to fp32 on a CPU without AMX-BF16, and the JSON line says which ran, as it says
// which instruction sets and GEMM the kernels ran on: kernels/cpu_paths.h).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "../bench_main.h"
#include "../bench_stats.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "formats/gguf.h"
#include "kernels/cpu_paths.h"
#include "kernels/optimizer.h"
#include "model/decoder.h"
#include "model/lora_adapters.h"
#include "model/trainable_decoder.h"

namespace {

using kindred::ModelConfig;

// Useful floating-point operations of one training step over `rows` rows of `seq` tokens
// (recomputation under checkpointing is not counted: it is overhead, not work):
//   frozen linears  4·P per token: forward y = W·x (2·P) and backward dx = Wᵀ·dy (2·P); the
//                   weight-gradient GEMM (another 2·P) is skipped because W is frozen.
//                   P = weights touched per token = layers·(h·q + 2·h·kv + q·h + 3·h·ff) + h·vocab
//                   (the output head, whose backward also only needs dx).
//   adapters        6·r·(in + out) per token and adapter: forward, dx, and dA/dB.
//   attention       causal, per layer and sequence: forward QKᵀ and P·V are 2·2·q·Σ(t+1) flops,
//                   backward four products of the same size (dP, dV, dQ, dK) = twice that.
double flops_per_step(const ModelConfig& c, const kindred::model::LoraAdapters& adapters, double rows, double seq) {
    using kindred::model::LoraModule;
    const double h = static_cast<double>(c.hidden_size);
    const double q = static_cast<double>(c.num_heads * c.head_dim);
    const double kv = static_cast<double>(c.num_kv_heads * c.head_dim);
    const double ff = static_cast<double>(c.intermediate_size);
    const double layers = static_cast<double>(c.num_layers);
    const double frozen = layers * (h * q + 2.0 * h * kv + q * h + 3.0 * h * ff) + h * static_cast<double>(c.vocab_size);
    double adapter = 0.0;
    for (int m = 0; m < kindred::model::lora_module_count; ++m) {
        const auto module = static_cast<LoraModule>(m);
        if (!adapters.targets(module)) continue;
        adapter += 6.0 * static_cast<double>(adapters.config().rank) *
                   static_cast<double>(adapters.in_features(module) + adapters.out_features(module));
    }
    adapter *= layers;
    const double attention = 3.0 * layers * 4.0 * q * (seq * (seq + 1.0) / 2.0);
    return rows * (seq * (4.0 * frozen + adapter) + attention);
}

int run(int argc, char** argv) {
    if (argc < 2)
        kindred::fail("usage: kindred_bench_training MODEL [--threads N] [--rows R] [--seq T] [--steps S] [--rank K] "
                      "[--checkpoint 0|1] [--compute fp32|bf16]");
    const std::string model_path = argv[1];
    int threads = 2;
    std::int64_t rows = 4, seq = 512, steps = 3, rank = 16, checkpoint = 0;
    auto precision = kindred::kernels::Precision::F32;
    for (int i = 2; i < argc; i += 2) {
        const std::string flag = argv[i];
        if (i + 1 >= argc) kindred::fail("flag {} needs a value", flag);
        if (flag == "--compute") {
            const std::string name = argv[i + 1];
            if (name != "fp32" && name != "bf16") kindred::fail("--compute must be fp32 or bf16, got {}", name);
            precision = name == "bf16" ? kindred::kernels::Precision::BF16 : kindred::kernels::Precision::F32;
            continue;
        }
        const long long value = std::stoll(argv[i + 1]);
        if (flag == "--threads") threads = static_cast<int>(value);
        else if (flag == "--rows") rows = value;
        else if (flag == "--seq") seq = value;
        else if (flag == "--steps") steps = value;
        else if (flag == "--rank") rank = value;
        else if (flag == "--checkpoint") checkpoint = value;
        else kindred::fail("unknown flag {}", flag);
    }
    if (threads < 1 || rows < 1 || seq < 1 || steps < 1 || rank < 1)
        kindred::fail("--threads, --rows, --seq, --steps and --rank must be >= 1");
    kindred::set_thread_count(threads);

    const auto file = kindred::gguf::File::open(model_path);
    const auto base = kindred::model::Decoder::from_gguf(file);
    const ModelConfig& config = base.config();
    kindred::model::LoraConfig lora;  // alpha 32, no dropout, q,k,v,o,gate,up,down
    lora.rank = static_cast<int>(rank);
    kindred::model::LoraAdapters adapters(config, lora, base.weights().qk_interleaved);
    kindred::model::TrainableDecoder trainer(base, adapters, checkpoint != 0, seq, precision);

    // Random ids from a fixed seed: the values do not change the arithmetic.
    std::mt19937_64 rng(42);
    std::uniform_int_distribution<std::int32_t> pick(0, static_cast<std::int32_t>(config.vocab_size - 1));
    std::vector<kindred::model::TrainBatch> batches(static_cast<std::size_t>(rows));
    for (auto& batch : batches) {
        std::vector<std::int32_t> ids(static_cast<std::size_t>(seq + 1));
        for (auto& id : ids) id = pick(rng);
        batch.tokens.assign(ids.begin(), ids.end() - 1);
        batch.targets.assign(ids.begin() + 1, ids.end());
    }

    kindred::kernels::AdamWConfig adamw;
    adamw.lr = 1e-4;
    std::int64_t adam_step = 0;
    double last_loss = 0.0;
    const auto train_step = [&] {
        adapters.zero_grads();
        const float scale = 1.0f / static_cast<float>(rows * seq);
        double loss = 0.0;
        for (const auto& batch : batches) loss += trainer.forward_backward(batch, scale).loss;
        const std::span<float> grads[] = {adapters.grads()};
        kindred::kernels::clip_grad_norm(grads, 1.0);
        adapters.adamw_step(adamw, ++adam_step);
        last_loss = loss / static_cast<double>(rows * seq);
    };

    const auto now = [] { return std::chrono::steady_clock::now(); };
    auto start = now();
    train_step();  // warm-up: pages in the mapped weights, spins up the pool
    const double warmup_seconds = std::chrono::duration<double>(now() - start).count();
    std::vector<double> rates;
    const double cpu_start = kindred::bench::process_cpu_seconds();
    for (std::int64_t s = 0; s < steps; ++s) {
        start = now();
        train_step();
        rates.push_back(static_cast<double>(rows * seq) / std::chrono::duration<double>(now() - start).count());
    }
    const double cpu_per_step = (kindred::bench::process_cpu_seconds() - cpu_start) / static_cast<double>(steps);
    const auto [mean, stddev] = kindred::bench::mean_and_stddev(rates);
    const double flops = flops_per_step(config, adapters, static_cast<double>(rows), static_cast<double>(seq));

    const nlohmann::json line = {{"impl", "kindred"},
                                 {"threads", threads},
                                 {"rows", rows},
                                 {"seq", seq},
                                 {"steps", steps},
                                 {"checkpoint", checkpoint != 0},
                                 {"compute", kindred::kernels::precision_name(kindred::kernels::effective_precision(precision))},
                                 {"cpu_paths", kindred::kernels::describe_cpu_paths()},
                                 {"warmup_seconds", warmup_seconds},
                                 {"tokens_per_second", mean},
                                 {"stddev", stddev},
                                 {"rates", rates},
                                 {"gflops", mean / static_cast<double>(rows * seq) * flops / 1e9},
                                 {"gflop_per_step", flops / 1e9},
                                 {"cpu_seconds_per_step", cpu_per_step},
                                 {"loss", last_loss},
                                 {"trainable_params", adapters.params().size()},
                                 {"peak_rss_mb", kindred::bench::peak_rss_mb()}};
    fmt::print("{}\n", line.dump());
    return 0;
}

}  // namespace

int main(int argc, char** argv) { return bench_main("kindred_bench_training", run, argc, argv); }
