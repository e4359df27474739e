// kindred_bench_dpo MODEL [--threads N] [--pairs P] [--prompt T] [--completion C] [--steps S] [--rank K]
//                   [--compute fp32|bf16]:
// DPO step throughput of the preference stage, measured the way bench_dpo_trl.py measures TRL's
// DPOTrainer + PEFT so that run.sh prints both side by side. P pairs of random token ids (a prompt
// of T tokens, chosen and rejected completions of C tokens each); one optimizer step is train/dpo.h's
// step: every pair packed whole into one row of 2·(T + C) tokens (its two sequences as segments;
// the layers run the shared prompt once, T + 2C tokens: train/shared_prefix.h),
// the training forward, the sigmoid DPO loss against reference log-probs computed once before
// timing (as TRL's precompute_ref_log_probs), the backward, clip_grad_norm(1.0) and AdamW. LoRA r=K,
// alpha=2K on q,k,v,o,gate,up,down, B = 0 as PEFT initialises it. One untimed warm-up step, then S
// timed steps. Prints one JSON line: sequence tokens/s (2·P·(T + C) per step: each step's, their
// mean and stddev), the process's CPU seconds per step and its peak RSS.
#include <chrono>
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
#include "kernels/optimizer.h"
#include "model/decoder.h"
#include "model/lora_adapters.h"
#include "model/trainable_decoder.h"
#include "train/batch.h"
#include "train/dpo.h"

namespace {

using namespace kindred;

int run(int argc, char** argv) {
    if (argc < 2)
        fail("usage: kindred_bench_dpo MODEL [--threads N] [--pairs P] [--prompt T] [--completion C] [--steps S] "
             "[--rank K] [--compute fp32|bf16]");
    const std::string model_path = argv[1];
    int threads = 2;
    std::int64_t pairs = 4, prompt = 192, completion = 64, steps = 3, rank = 16;
    auto precision = kernels::Precision::F32;
    for (int i = 2; i < argc; i += 2) {
        const std::string flag = argv[i];
        if (i + 1 >= argc) fail("flag {} needs a value", flag);
        if (flag == "--compute") {
            const std::string name = argv[i + 1];
            if (name != "fp32" && name != "bf16") fail("--compute must be fp32 or bf16, got {}", name);
            precision = name == "bf16" ? kernels::Precision::BF16 : kernels::Precision::F32;
            continue;
        }
        const long long value = std::stoll(argv[i + 1]);
        if (flag == "--threads") threads = static_cast<int>(value);
        else if (flag == "--pairs") pairs = value;
        else if (flag == "--prompt") prompt = value;
        else if (flag == "--completion") completion = value;
        else if (flag == "--steps") steps = value;
        else if (flag == "--rank") rank = value;
        else fail("unknown flag {}", flag);
    }
    if (threads < 1 || pairs < 1 || prompt < 1 || completion < 1 || steps < 1 || rank < 1)
        fail("--threads, --pairs, --prompt, --completion, --steps and --rank must be >= 1");
    set_thread_count(threads);

    const auto file = gguf::File::open(model_path);
    const auto base = model::Decoder::from_gguf(file);
    const ModelConfig& config = base.config();
    model::LoraConfig lora;
    lora.rank = static_cast<int>(rank);
    lora.alpha = 2.0 * static_cast<double>(rank);
    model::LoraAdapters adapters(config, lora, base.weights().qk_interleaved);
    const std::int64_t row = 2 * (prompt + completion);
    model::TrainableDecoder trainer(base, adapters, false, row, precision);

    // Random ids from a fixed seed: the values do not change the arithmetic.
    std::mt19937_64 rng(42);
    std::uniform_int_distribution<std::int32_t> pick(0, static_cast<std::int32_t>(config.vocab_size - 1));
    train::PairDataset dataset;
    dataset.path = "bench";
    const auto random_ids = [&](std::int64_t n) {
        std::vector<std::int32_t> ids(static_cast<std::size_t>(n));
        for (auto& id : ids) id = pick(rng);
        return ids;
    };
    for (std::int64_t p = 0; p < pairs; ++p) {
        const auto prompt_ids = random_ids(prompt);
        train::PairInfo info;
        dataset.examples.push_back(train::tokenized_pair(prompt_ids, random_ids(completion), random_ids(completion),
                                                         static_cast<std::size_t>(p + 1), info));
        dataset.pairs.push_back(info);
    }
    // The reference log-probs, once, before timing (the frozen reference = the start, B = 0).
    const auto reference = train::score_pairs(trainer, dataset, static_cast<std::size_t>(row));

    train::PackingOptions packing;
    packing.seq_len = static_cast<std::size_t>(row);
    packing.rows_per_micro_batch = static_cast<std::size_t>(pairs);
    train::Packer packer(dataset.examples, packing);
    const train::MicroBatch micro = packer.next_micro_batch();
    const train::DpoLossSettings loss;
    train::DpoRows rows(dataset, reference, loss, config.hidden_size, config.vocab_size, nullptr);
    kernels::AdamWConfig adamw;
    adamw.lr = 1e-4;
    std::int64_t adam_step = 0;
    double last_loss = 0.0;
    const auto train_step = [&] {
        adapters.zero_grads();
        std::vector<train::PairLogProbs> logps;
        std::vector<train::PairLoss> losses;
        train::HeadSums unused;
        for (std::size_t r = 0; r < micro.rows; ++r)
            rows.run(trainer, micro, r, 1.0f / static_cast<float>(pairs), {}, unused, logps, losses);
        const std::span<float> grads[] = {adapters.grads()};
        kernels::clip_grad_norm(grads, 1.0);
        adapters.adamw_step(adamw, ++adam_step);
        last_loss = train::dpo_batch_metrics(logps, losses).loss;
    };

    const auto now = [] { return std::chrono::steady_clock::now(); };
    auto start = now();
    train_step();  // warm-up: pages in the mapped weights, spins up the pool
    const double warmup_seconds = std::chrono::duration<double>(now() - start).count();
    const double tokens = static_cast<double>(pairs * row);
    std::vector<double> rates;
    const double cpu_start = bench::process_cpu_seconds();
    for (std::int64_t s = 0; s < steps; ++s) {
        start = now();
        train_step();
        rates.push_back(tokens / std::chrono::duration<double>(now() - start).count());
    }
    const double cpu_per_step = (bench::process_cpu_seconds() - cpu_start) / static_cast<double>(steps);
    const auto [mean, stddev] = bench::mean_and_stddev(rates);
    const nlohmann::json line = {{"impl", "kindred"},
                                 {"threads", threads},
                                 {"pairs", pairs},
                                 {"prompt", prompt},
                                 {"completion", completion},
                                 {"steps", steps},
                                 {"compute", kernels::precision_name(kernels::effective_precision(precision))},
                                 {"warmup_seconds", warmup_seconds},
                                 {"tokens_per_second", mean},
                                 {"stddev", stddev},
                                 {"rates", rates},
                                 {"cpu_seconds_per_step", cpu_per_step},
                                 {"loss", last_loss},
                                 {"peak_rss_mb", bench::peak_rss_mb()}};
    fmt::print("{}\n", line.dump());
    return 0;
}

}  // namespace

int main(int argc, char** argv) { return bench_main("kindred_bench_dpo", run, argc, argv); }
