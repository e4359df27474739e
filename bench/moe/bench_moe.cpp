// kindred_bench_moe MODEL.gguf [--threads N] [--pp N] [--tg N] [--train-seq T] [--train-steps S] [--rank K]:
// what a mixture-of-experts model costs on this machine, one phase after another in one process
// (the file is memory-mapped, never read whole), each printed as one JSON line:
//   load      seconds to map the file and bind every tensor, peak RSS after it
//   warmup    an untimed forward of N random tokens, as llama-bench runs before it times (the
//             pages of the mapped file come in here, not in ppN)
//   ppN       one forward of N random prompt tokens on an empty cache, tokens/s
//   tgN       N single-token forwards after that prompt, tokens/s
//   train     S LoRA steps (after one untimed warm-up step) on one row of T random tokens: forward,
//             backward, AdamW; adapters of rank K on q, k, v, o and both expert stacks (fp32 compute)
// Every line carries the process's peak RSS so far (getrusage) and the load average. Token ids come
// from a fixed seed (the values do not change the arithmetic, only which experts run).
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../bench_main.h"
#include "../bench_products.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "formats/gguf.h"
#include "kernels/cpu_paths.h"
#include "kernels/optimizer.h"
#include "model/decoder.h"
#include "model/kv_cache.h"
#include "model/lora_adapters.h"
#include "model/trainable_decoder.h"

namespace {

double peak_rss_mb() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return static_cast<double>(usage.ru_maxrss) / 1024.0;  // Linux reports KiB
}

std::string load_average() {
    std::ifstream in("/proc/loadavg");
    std::string one, five, fifteen;
    in >> one >> five >> fifteen;
    return one + " " + five + " " + fifteen;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void print(nlohmann::json line) {
    line["peak_rss_mb"] = peak_rss_mb();
    line["load_average"] = load_average();
    std::printf("%s\n", line.dump().c_str());
    std::fflush(stdout);
}

int run(int argc, char** argv) {
    if (argc < 2)
        kindred::fail("usage: kindred_bench_moe MODEL.gguf [--threads N] [--pp N] [--tg N] [--train-seq T] "
                      "[--train-steps S] [--rank K] [--products int8|fp32]");
    const std::string model_path = argv[1];
    long long threads = 2, pp = 64, tg = 16, train_seq = 512, train_steps = 1, rank = 16;
    auto products = kindred::kernels::Precision::Int8;  // as `kindred generate` by default
    for (int i = 2; i < argc; i += 2) {
        const std::string flag = argv[i];
        if (i + 1 >= argc) kindred::fail("flag {} needs a value", flag);
        if (flag == "--products") {
            products = kindred::bench::products(argv[i + 1]);
            continue;
        }
        const long long value = std::stoll(argv[i + 1]);
        if (flag == "--threads") threads = value;
        else if (flag == "--pp") pp = value;
        else if (flag == "--tg") tg = value;
        else if (flag == "--train-seq") train_seq = value;
        else if (flag == "--train-steps") train_steps = value;
        else if (flag == "--rank") rank = value;
        else kindred::fail("unknown flag {}", flag);
    }
    if (threads < 1 || pp < 1 || tg < 1 || train_seq < 2 || train_steps < 0 || rank < 1)
        kindred::fail("--threads, --pp, --tg and --rank must be >= 1, --train-seq >= 2, --train-steps >= 0");
    kindred::set_thread_count(static_cast<int>(threads));

    auto start = std::chrono::steady_clock::now();
    const auto file = kindred::gguf::File::open(model_path);
    auto decoder = kindred::model::Decoder::from_gguf(file);
    decoder.set_products(products);
    const auto& config = decoder.config();
    print({{"phase", "load"}, {"model", model_path}, {"seconds", seconds_since(start)}, {"threads", threads},
           {"architecture", kindred::architecture_name(config.architecture)}, {"layers", config.num_layers},
           {"experts", config.num_experts}, {"experts_per_token", config.num_experts_per_token},
           {"cpu_paths", kindred::kernels::describe_cpu_paths()}, {"products", kindred::kernels::precision_name(products)}});

    std::mt19937_64 rng(42);
    std::uniform_int_distribution<std::int32_t> pick(0, static_cast<std::int32_t>(config.vocab_size - 1));
    const auto random_ids = [&](long long n) {
        std::vector<std::int32_t> ids(static_cast<std::size_t>(n));
        for (auto& id : ids) id = pick(rng);
        return ids;
    };

    std::vector<float> logits(static_cast<std::size_t>(config.vocab_size));
    {  // Untimed, as llama-bench warms up before it times: the mapped experts' pages come in.
        kindred::model::KvCache warmup_cache(config, pp);
        start = std::chrono::steady_clock::now();
        decoder.forward(random_ids(pp), warmup_cache, logits);
        print({{"phase", "warmup"}, {"seconds", seconds_since(start)}});
    }
    kindred::model::KvCache cache(config, pp + tg);
    const auto prompt = random_ids(pp);
    start = std::chrono::steady_clock::now();
    decoder.forward(prompt, cache, logits);
    const double prefill = seconds_since(start);
    print({{"phase", "pp" + std::to_string(pp)}, {"tokens_per_second", static_cast<double>(pp) / prefill},
           {"seconds", prefill}});
    const auto generated = random_ids(tg);
    start = std::chrono::steady_clock::now();
    for (const std::int32_t id : generated) decoder.forward(std::span(&id, 1), cache, logits);
    const double decode = seconds_since(start);
    print({{"phase", "tg" + std::to_string(tg)}, {"tokens_per_second", static_cast<double>(tg) / decode},
           {"seconds", decode}});

    if (train_steps == 0) return 0;
    kindred::model::LoraConfig lora;
    lora.rank = static_cast<int>(rank);
    lora.targets = {"q", "k", "v", "o", "experts_gate_up", "experts_down"};
    kindred::model::LoraAdapters adapters(config, lora, decoder.weights().qk_interleaved);
    kindred::model::TrainableDecoder trainer(decoder, adapters, /*checkpoint_activations=*/true, train_seq);
    kindred::model::TrainBatch batch;
    const auto ids = random_ids(train_seq + 1);
    batch.tokens.assign(ids.begin(), ids.end() - 1);
    batch.targets.assign(ids.begin() + 1, ids.end());
    kindred::kernels::AdamWConfig adamw;
    adamw.lr = 1e-4;
    double loss = 0.0;
    // Step 0 is an untimed warm-up (the experts' pages come in, the buffers grow).
    for (long long step = 0; step <= train_steps; ++step) {
        if (step <= 1) start = std::chrono::steady_clock::now();
        adapters.zero_grads();
        loss = trainer.forward_backward(batch, 1.0f / static_cast<float>(train_seq)).loss / static_cast<double>(train_seq);
        adapters.adamw_step(adamw, step + 1);
        if (step == 0)
            print({{"phase", "train_warmup"}, {"seconds", seconds_since(start)}, {"loss", loss},
                   {"adapter_parameters", adapters.params().size()}});
    }
    const double trained = seconds_since(start);
    print({{"phase", "train"}, {"seq", train_seq}, {"steps", train_steps}, {"rank", rank}, {"checkpointing", true},
           {"tokens_per_second", static_cast<double>(train_seq * train_steps) / trained},
           {"seconds_per_step", trained / static_cast<double>(train_steps)}, {"loss", loss}});
    return 0;
}

}  // namespace

int main(int argc, char** argv) { return bench_main("kindred_bench_moe", run, argc, argv); }
