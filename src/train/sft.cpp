// train/sft.cpp — the SFT loop (see sft.h).
#include "train/sft.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/metrics_log.h"
#include "core/progress.h"
#include "eval/plot.h"
#include "formats/peft_adapter.h"
#include "kernels/optimizer.h"
#include "model/lora_adapters.h"
#include "model/trainable_decoder.h"
#include "train/batch.h"
#include "train/checkpoint.h"

namespace kindred::train {
namespace {

namespace fs = std::filesystem;

// TrainableDecoder's dropout stream advances by this per forward_backward call (trainable_decoder.h).
constexpr std::uint64_t kDropoutStride = 0x632BE59BD9B4E019ULL;

std::vector<NamedTensor> named(const model::LoraAdapters& adapters, std::span<const float> values) {
    std::vector<NamedTensor> out;
    out.reserve(adapters.tensors().size());
    for (const auto& info : adapters.tensors()) {
        const auto begin = values.begin() + info.offset;
        out.push_back({info.name,
                       {static_cast<std::uint64_t>(info.rows), static_cast<std::uint64_t>(info.cols)},
                       std::vector<float>(begin, begin + info.rows * info.cols)});
    }
    return out;
}

void unpack(const model::LoraAdapters& adapters, const std::vector<NamedTensor>& tensors, std::span<float> values) {
    for (std::size_t i = 0; i < tensors.size(); ++i) {
        const auto& info = adapters.tensors()[i];
        std::copy(tensors[i].values.begin(), tensors[i].values.end(), values.begin() + info.offset);
    }
}

peft::Adapter peft_adapter(const model::LoraAdapters& adapters, const std::string& base_model) {
    peft::Adapter adapter;
    const auto& config = adapters.config();
    adapter.config.base_model = base_model;
    adapter.config.r = static_cast<std::uint32_t>(config.rank);
    adapter.config.lora_alpha = config.alpha;
    adapter.config.lora_dropout = config.dropout;
    adapter.config.use_rslora = config.rslora;
    for (const auto& target : config.targets) adapter.config.target_modules.push_back(target + "_proj");
    for (const auto& info : adapters.tensors()) {
        peft::LoraTensor tensor{info.name, {static_cast<std::uint64_t>(info.rows), static_cast<std::uint64_t>(info.cols)}, {}};
        tensor.values.resize(static_cast<std::size_t>(info.rows * info.cols));
        adapters.get_hf(info.name, tensor.values);  // HF row order (undoes GGUF's q/k permutation)
        adapter.tensors.push_back(std::move(tensor));
    }
    return adapter;
}

// Keeps the records of steps up to `step` (a resumed run redoes the ones after its checkpoint).
void truncate_metrics(const std::string& path, std::int64_t step) {
    if (!fs::exists(path)) return;
    std::string kept;
    for (const auto& record : read_metrics_log(path).records) {
        if (record.contains("step") && record["step"].is_number() && record["step"].get<std::int64_t>() > step) continue;
        kept += record.dump() + "\n";
    }
    write_file_atomically(path, kept);
}

void write_charts(const std::string& run_dir, const std::string& metrics_path) {
    const auto records = read_metrics_log(metrics_path).records;
    const auto loss = metric_series(records, "step", "loss");
    const auto lr = metric_series(records, "step", "lr");
    eval::PlotOptions options;
    options.title = "training loss";
    options.x_label = "step";
    options.y_label = "loss (mean NLL per target token)";
    options.smoothing = 0.6;
    eval::write_line_chart(run_dir + "/loss.svg", {{"loss", loss.x, loss.y, true}}, options);
    options.title = "learning rate";
    options.y_label = "lr";
    options.smoothing = 0.0;
    eval::write_line_chart(run_dir + "/lr.svg", {{"lr", lr.x, lr.y, false}}, options);
}

model::TrainBatch row_batch(const MicroBatch& micro, std::size_t row) {
    const auto begin = static_cast<std::ptrdiff_t>(row * micro.seq_len);
    const auto end = begin + static_cast<std::ptrdiff_t>(micro.seq_len);
    return {{micro.tokens.begin() + begin, micro.tokens.begin() + end},
            {micro.targets.begin() + begin, micro.targets.begin() + end},
            {micro.positions.begin() + begin, micro.positions.begin() + end},
            {micro.segment_ids.begin() + begin, micro.segment_ids.begin() + end}};
}

}  // namespace

SftResult run_sft(const SftRecipe& recipe, const model::Decoder& base, std::span<const TokenizedExample> examples,
                  const SftOptions& options) {
    if (recipe.max_seq_len > base.config().context_length)
        fail("data.max_seq_len {} exceeds the model's context length {}", recipe.max_seq_len, base.config().context_length);
    if (recipe.max_steps < 1) fail("optimisation.max_steps must be at least 1");
    const LrSchedule schedule = lr_schedule(recipe);
    validate(schedule);

    const std::string run_dir = options.run_dir;
    const std::string checkpoint_root = run_dir + "/checkpoints";
    const std::string metrics_path = run_dir + "/metrics.jsonl";
    fs::create_directories(run_dir);

    LoadedCheckpoint loaded;
    if (options.resume) {
        loaded = load_latest_checkpoint(checkpoint_root);
    } else if (fs::exists(checkpoint_root + "/latest")) {
        fail("{} already holds checkpoints: pass --resume to continue it, or choose another run name", run_dir);
    }
    const bool resuming = !loaded.directory.empty();
    const std::int64_t start_step = resuming ? loaded.state.step : 0;
    const auto rows_per_step = static_cast<std::uint64_t>(recipe.micro_batch * recipe.grad_accumulation);

    // The dropout stream resumes at the call count already made (see sft.h).
    model::LoraConfig lora = recipe.adapter;
    lora.seed += static_cast<std::uint64_t>(start_step) * rows_per_step * kDropoutStride;
    model::LoraAdapters adapters(base.config(), lora, base.weights().qk_interleaved);
    std::vector<float> adam_m(adapters.params().size(), 0.0f);
    std::vector<float> adam_v(adapters.params().size(), 0.0f);
    std::int64_t adam_step = 0;
    DataPosition position;
    if (resuming) {
        const auto expected = named(adapters, adapters.params());
        check_adapter_layout(loaded.state, expected);
        if (loaded.state.schedule.total_steps != schedule.total_steps || loaded.state.schedule.peak_lr != schedule.peak_lr)
            fail("{}: the checkpoint's schedule (lr {}, {} steps) differs from the recipe's (lr {}, {} steps)",
                 loaded.directory, loaded.state.schedule.peak_lr, loaded.state.schedule.total_steps, schedule.peak_lr,
                 schedule.total_steps);
        unpack(adapters, loaded.state.adapter, adapters.params());
        unpack(adapters, loaded.state.adam_m, adam_m);
        unpack(adapters, loaded.state.adam_v, adam_v);
        adam_step = loaded.state.adam_step;
        position = loaded.state.data;
        truncate_metrics(metrics_path, start_step);
    }
    write_file_atomically(run_dir + "/config.yaml", recipe.resolved_yaml);

    PackingOptions packing;
    packing.seq_len = static_cast<std::size_t>(recipe.max_seq_len);
    packing.rows_per_micro_batch = static_cast<std::size_t>(recipe.micro_batch);
    packing.micro_batches_per_step = static_cast<std::size_t>(recipe.grad_accumulation);
    packing.seed = recipe.seed;
    packing.pad_id = options.pad_id;
    Packer packer(examples, packing, position);
    model::TrainableDecoder trainer(base, adapters, recipe.checkpoint_activations, recipe.max_seq_len);
    MetricsLog metrics(metrics_path);

    std::optional<Progress> progress;
    if (recipe.progress) {
        ProgressOptions progress_options;
        progress_options.label = "train";
        progress_options.unit = "tok";
        progress.emplace(recipe.max_steps, progress_options);
        if (resuming) progress->message(fmt::format("resuming {} at step {}", loaded.directory, start_step));
        for (const auto& rejected : loaded.rejected) progress->message("skipped checkpoint " + rejected);
    }

    SftResult result;
    result.first_step = start_step;
    result.last_step = start_step;
    const auto clock = [] { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); };
    const double started = clock();
    double tokens_done = 0.0;
    const auto save = [&](std::int64_t step) {
        TrainState state;
        state.step = step;
        state.adapter = named(adapters, adapters.params());
        state.adam_m = named(adapters, adam_m);
        state.adam_v = named(adapters, adam_v);
        state.adam_step = adam_step;
        state.rng = fmt::format("dropout-calls {}", static_cast<std::uint64_t>(step) * rows_per_step);
        state.data = packer.position();
        state.schedule = schedule;
        state.config_text = recipe.resolved_yaml;
        save_checkpoint(checkpoint_root, state, static_cast<std::size_t>(recipe.keep_last));
    };

    for (std::int64_t step = start_step; step < recipe.max_steps; ++step) {
        const double step_start = clock();
        const StepBatch batch = packer.next_step();
        if (batch.target_tokens == 0) fail("step {}: the batch has no target tokens", step + 1);
        const float scale = 1.0f / static_cast<float>(batch.target_tokens);
        adapters.zero_grads();
        double loss_sum = 0.0;
        std::size_t step_tokens = 0;
        for (const auto& micro : batch.micro_batches) {
            for (std::size_t row = 0; row < micro.rows; ++row) {
                loss_sum += trainer.forward_backward(row_batch(micro, row), scale).loss;
            }
            step_tokens += micro.rows * micro.seq_len;
        }
        const double loss = loss_sum / static_cast<double>(batch.target_tokens);
        const std::span<float> grads[] = {adapters.grads()};
        const std::span<const float> const_grads[] = {adapters.grads()};
        const double grad_norm = recipe.max_grad_norm > 0.0 ? kernels::clip_grad_norm(grads, recipe.max_grad_norm)
                                                            : kernels::global_grad_norm(const_grads);
        const double lr = learning_rate(schedule, step);
        const bool finite = std::isfinite(loss) && std::isfinite(grad_norm);
        if (!finite) {
            const std::string what = fmt::format("step {}: non-finite {} (loss {}, grad norm {})", step + 1,
                                                 std::isfinite(loss) ? "gradient norm" : "loss", loss, grad_norm);
            if (recipe.nan_policy == NanPolicy::Stop)
                fail("{}; stopped (nan_policy: stop), nothing of this step was saved{}", what,
                     step > 0 ? fmt::format("; the last checkpoint is in {}", checkpoint_root) : "");
            ++result.skipped_steps;
            if (progress) progress->message(what + "; update skipped (nan_policy: skip)");
        } else {
            kernels::AdamWConfig adamw{lr, recipe.beta1, recipe.beta2, recipe.eps, recipe.weight_decay};
            ++adam_step;
            kernels::adamw_step(adapters.params().data(), adapters.grads().data(), adam_m.data(), adam_v.data(),
                                static_cast<std::int64_t>(adam_m.size()), adamw, adam_step);
        }
        const double now = clock();
        tokens_done += static_cast<double>(step_tokens);
        result.losses.push_back(finite ? loss : std::nan(""));
        result.last_step = step + 1;
        const std::int64_t done = step + 1;
        if (done % recipe.log_every == 0 || done == recipe.max_steps || !finite) {
            nlohmann::json record = {{"step", done},
                                     {"loss", loss},
                                     {"lr", lr},
                                     {"grad_norm", grad_norm},
                                     {"tokens_per_s", static_cast<double>(step_tokens) / std::max(now - step_start, 1e-9)},
                                     {"elapsed", now - started},
                                     {"target_tokens", batch.target_tokens}};
            if (!finite) record["skipped"] = true;
            metrics.write(record);
        }
        if (progress) {
            progress->update(done, {{"loss", loss}, {"lr", lr}}, tokens_done);
        }
        if (done % recipe.checkpoint_every == 0 || done == recipe.max_steps) save(done);
        if (options.on_step && !options.on_step(done, loss)) break;
    }
    result.elapsed_s = clock() - started;
    result.tokens_per_s = tokens_done / std::max(result.elapsed_s, 1e-9);
    if (progress) progress->finish();
    if (result.last_step == recipe.max_steps) {
        peft::write_adapter(run_dir + "/adapter", peft_adapter(adapters, options.base_model));
        result.finished = true;
    }
    write_charts(run_dir, metrics_path);
    return result;
}

}  // namespace kindred::train
