// train/training_run.cpp — the run directory, checkpoints and optimizer step shared by the
// training loops (see training_run.h).
#include "train/training_run.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <utility>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "eval/plot.h"
#include "kernels/optimizer.h"

namespace kindred::train {
namespace {

namespace fs = std::filesystem;

// TrainableDecoder's dropout stream advances by this per training forward (trainable_decoder.h).
constexpr std::uint64_t kDropoutStride = 0x632BE59BD9B4E019ULL;

}  // namespace

double TrainingRun::now_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

TrainingRun::TrainingRun(const SftRecipe& recipe, const model::Decoder& base, const RunOptions& options, RunHeads heads,
                         const std::function<void(model::LoraAdapters&)>& initialise)
    : recipe_(recipe), options_(options), parallel_(options.communicator), heads_(std::move(heads)) {
    if (recipe.max_seq_len > base.config().context_length)
        fail("data.max_seq_len {} exceeds the model's context length {}", recipe.max_seq_len, base.config().context_length);
    if (recipe.max_steps < 1) fail("optimisation.max_steps must be at least 1");
    schedule_ = lr_schedule(recipe);
    validate(schedule_);
    if (heads_.trained && !heads_.heads) fail("training run: trained heads were announced but none given");

    const std::string& run_dir = options_.run_dir;
    checkpoint_root_ = run_dir + "/checkpoints";
    metrics_path_ = run_dir + "/metrics.jsonl";
    if (parallel_.root()) fs::create_directories(run_dir);
    if (parallel_.active()) parallel_.require_same("the resolved recipe", recipe.resolved_yaml);
    if (options_.resume) {
        loaded_ = load_latest_checkpoint(checkpoint_root_);
    } else if (fs::exists(checkpoint_root_ + "/latest")) {
        fail("{} already holds checkpoints: pass --resume to continue it, or choose another run name", run_dir);
    }
    start_step_ = resuming() ? loaded_.state.step : 0;
    parallel_.require_same("the checkpoint resumed from", resuming() ? loaded_.directory : "none (a fresh start)");
    rows_per_step_ = static_cast<std::uint64_t>(recipe.micro_batch * recipe.grad_accumulation);

    // The dropout stream resumes at the call count already made (one training forward per row).
    model::LoraConfig lora = recipe.adapter;
    lora.seed += static_cast<std::uint64_t>(start_step_) * rows_per_step_ * kDropoutStride;
    adapters_ = std::make_unique<model::LoraAdapters>(base.config(), lora, base.weights().qk_interleaved);
    adam_m_.assign(adapters_->params().size(), 0.0f);
    adam_v_.assign(adapters_->params().size(), 0.0f);
    if (!resuming() && initialise) initialise(*adapters_);

    if (resuming()) {
        model::Heads* trained = trained_heads();
        const auto expected = named(adapters_->params(), trained ? trained->params() : std::span<float>());
        check_adapter_layout(loaded_.state, expected);
        if (loaded_.state.schedule.total_steps != schedule_.total_steps || loaded_.state.schedule.peak_lr != schedule_.peak_lr)
            fail("{}: the checkpoint's schedule (lr {}, {} steps) differs from the recipe's (lr {}, {} steps)",
                 loaded_.directory, loaded_.state.schedule.peak_lr, loaded_.state.schedule.total_steps, schedule_.peak_lr,
                 schedule_.total_steps);
        unpack(loaded_.state.adapter, adapters_->params(), trained ? trained->params() : std::span<float>());
        unpack(loaded_.state.adam_m, adam_m_, trained ? trained->first_moments() : std::span<float>());
        unpack(loaded_.state.adam_v, adam_v_, trained ? trained->second_moments() : std::span<float>());
        adam_step_ = loaded_.state.adam_step;
        position_ = loaded_.state.data;
        if (parallel_.root()) truncate_metrics(metrics_path_, start_step_);
    }
    if (parallel_.root()) {
        write_file_atomically(run_dir + "/config.yaml", recipe.resolved_yaml);
        metrics_.emplace(metrics_path_);
    }
    started_s_ = now_s();
}

// The trained parameters as checkpoint tensors: the adapter's, then the trained heads' (when any),
// so a plain run's checkpoints are exactly what they were before heads existed.
std::vector<NamedTensor> TrainingRun::named(std::span<const float> adapter_values,
                                            std::span<const float> head_values) const {
    std::vector<NamedTensor> out;
    const auto add = [&](const std::string& name, std::vector<std::uint64_t> shape, std::span<const float> values,
                         std::int64_t offset, std::int64_t count) {
        const auto begin = values.begin() + offset;
        out.push_back({name, std::move(shape), std::vector<float>(begin, begin + count)});
    };
    for (const auto& info : adapters_->tensors())
        add(info.name, {static_cast<std::uint64_t>(info.rows), static_cast<std::uint64_t>(info.cols)}, adapter_values,
            info.offset, info.rows * info.cols);
    if (heads_.trained) {
        for (const auto& info : heads_.heads->tensors()) {
            std::vector<std::uint64_t> shape{static_cast<std::uint64_t>(info.rows)};
            if (!info.is_bias) shape.push_back(static_cast<std::uint64_t>(info.cols));
            add(info.name, std::move(shape), head_values, info.offset, info.rows * info.cols);
        }
    }
    return out;
}

// Inverse of named() for tensors whose layout check_adapter_layout has accepted.
void TrainingRun::unpack(const std::vector<NamedTensor>& tensors, std::span<float> adapter_values,
                         std::span<float> head_values) const {
    std::size_t i = 0;
    for (const auto& info : adapters_->tensors()) {
        std::copy(tensors[i].values.begin(), tensors[i].values.end(), adapter_values.begin() + info.offset);
        ++i;
    }
    if (!heads_.trained) return;
    for (const auto& info : heads_.heads->tensors()) {
        std::copy(tensors[i].values.begin(), tensors[i].values.end(), head_values.begin() + info.offset);
        ++i;
    }
}

double TrainingRun::learning_rate(std::int64_t step) const { return train::learning_rate(schedule_, step); }

void TrainingRun::start_progress() {
    if (!parallel_.root()) return;
    if (!recipe_.progress) {
        // A refused newer checkpoint means steps are trained again: said even without the display.
        for (const auto& rejected : loaded_.rejected) std::fprintf(stderr, "warning: skipped checkpoint %s\n", rejected.c_str());
        return;
    }
    ProgressOptions progress_options;
    progress_options.label = options_.progress_label;
    progress_options.unit = "tok";
    progress_.emplace(recipe_.max_steps, progress_options);
    if (resuming()) progress_->message(fmt::format("resuming {} at step {}", loaded_.directory, start_step_));
    if (parallel_.active())
        progress_->message(fmt::format("data parallel over {} ranks ({})", parallel_.size(), options_.communicator->backend()));
    for (const auto& rejected : loaded_.rejected) progress_->message("warning: skipped checkpoint " + rejected);
    if (kernels::effective_precision(recipe_.compute) != recipe_.compute)
        progress_->message(fmt::format("model.compute_dtype {}: this CPU has no AMX-BF16, computing in {}",
                                       kernels::precision_name(recipe_.compute),
                                       kernels::precision_name(kernels::effective_precision(recipe_.compute))));
}

void TrainingRun::message(const std::string& text) {
    if (progress_) {
        progress_->message(text);
    } else if (recipe_.progress && parallel_.root()) {
        std::fprintf(stderr, "%s\n", text.c_str());
    }
}

void TrainingRun::zero_grads() {
    adapters_->zero_grads();
    if (model::Heads* heads = trained_heads()) heads->zero_grads();
}

void TrainingRun::all_reduce(std::span<double> loss_sums) {
    if (!parallel_.active()) return;
    const double start = now_s();
    parallel_.sum(adapters_->grads());
    if (model::Heads* heads = trained_heads()) parallel_.sum(heads->grads());
    parallel_.sum(loss_sums);
    allreduce_s_ = now_s() - start;
}

void TrainingRun::save(std::int64_t step, DataPosition position) {
    model::Heads* trained = trained_heads();
    const std::span<float> none;
    TrainState state;
    state.step = step;
    state.adapter = named(adapters_->params(), trained ? trained->params() : none);
    state.adam_m = named(adam_m_, trained ? trained->first_moments() : none);
    state.adam_v = named(adam_v_, trained ? trained->second_moments() : none);
    state.adam_step = adam_step_;
    state.rng = fmt::format("dropout-calls {}", static_cast<std::uint64_t>(step) * rows_per_step_);
    state.data = position;
    state.schedule = schedule_;
    state.config_text = recipe_.resolved_yaml;
    save_checkpoint(checkpoint_root_, state, static_cast<std::size_t>(recipe_.keep_last));
}

TrainingRun::StepEnd TrainingRun::end_step(std::int64_t step, double loss, nlohmann::json record,
                                           std::vector<ProgressField> fields, std::size_t tokens, double step_start_s,
                                           DataPosition position,
                                           const std::function<nlohmann::json(std::int64_t)>& evaluate) {
    model::Heads* trained = trained_heads();
    std::vector<std::span<float>> grads{adapters_->grads()};
    std::vector<std::span<const float>> const_grads{adapters_->grads()};
    if (trained) {
        grads.push_back(trained->grads());
        const_grads.push_back(std::as_const(*trained).grads());
    }
    StepEnd end;
    end.grad_norm = recipe_.max_grad_norm > 0.0 ? kernels::clip_grad_norm(grads, recipe_.max_grad_norm)
                                                : kernels::global_grad_norm(const_grads);
    end.lr = learning_rate(step);
    end.finite = std::isfinite(loss) && std::isfinite(end.grad_norm);
    if (!end.finite) {
        const std::string what = fmt::format("step {}: non-finite {} (loss {}, grad norm {})", step + 1,
                                             std::isfinite(loss) ? "gradient norm" : "loss", loss, end.grad_norm);
        if (recipe_.nan_policy == NanPolicy::Stop)
            fail("{}; stopped (nan_policy: stop), nothing of this step was saved{}", what,
                 step > 0 ? fmt::format("; the last checkpoint is in {}", checkpoint_root_) : "");
        ++skipped_;
        if (progress_) progress_->message(what + "; update skipped (nan_policy: skip)");
    } else {
        kernels::AdamWConfig adamw{end.lr, recipe_.beta1, recipe_.beta2, recipe_.eps, recipe_.weight_decay};
        ++adam_step_;
        kernels::adamw_step(adapters_->params().data(), adapters_->grads().data(), adam_m_.data(), adam_v_.data(),
                            static_cast<std::int64_t>(adam_m_.size()), adamw, adam_step_);
        if (trained) {
            kernels::AdamWConfig head_adamw = adamw;
            head_adamw.lr = end.lr * recipe_.heads.lr_multiplier;
            trained->adamw_step(head_adamw, adam_step_);
        }
    }
    const double now = now_s();
    tokens_done_ += static_cast<double>(tokens);
    const std::int64_t done = step + 1;
    if (done % recipe_.log_every == 0 || done == recipe_.max_steps || !end.finite) {
        record["step"] = done;
        record["loss"] = loss;
        record["lr"] = end.lr;
        record["grad_norm"] = end.grad_norm;
        record["tokens_per_s"] = static_cast<double>(tokens) / std::max(now - step_start_s, 1e-9);
        record["elapsed"] = now - started_s_;
        if (!end.finite) record["skipped"] = true;
        if (allreduce_s_ >= 0.0) record["allreduce_s"] = allreduce_s_;
        if (metrics_) metrics_->write(record);
    }
    allreduce_s_ = -1.0;
    if (progress_) {
        fields.emplace_back("lr", end.lr);
        progress_->update(done, std::move(fields), tokens_done_);
    }
    // Dev before the checkpoint: a run resumed from this step keeps this step's dev record.
    const bool last = done == recipe_.max_steps;
    if (evaluate && (last || (recipe_.evaluation.every > 0 && done % recipe_.evaluation.every == 0))) {
        const nlohmann::json dev = evaluate(done);
        if (metrics_) metrics_->write({{"step", done}, {"dev", dev}});
        if (progress_) progress_->message(fmt::format("dev at step {}: {}", done, dev.dump()));
    }
    if (parallel_.root() && (done % recipe_.checkpoint_every == 0 || last)) save(done, position);
    end.stop = options_.on_step && !options_.on_step(done, loss);
    return end;
}

bool TrainingRun::finish(std::int64_t last_step, const std::vector<RunChart>& charts) {
    ended_s_ = now_s();
    if (progress_) progress_->finish();
    const bool finished = last_step == recipe_.max_steps;
    if (parallel_.root()) {
        if (finished) {
            const std::string dir = options_.run_dir + "/adapter";
            peft::write_adapter(dir, peft_adapter(*adapters_, options_.base_model));
            if (heads_.heads) model::write_heads(dir, *heads_.heads, heads_.emotion_labels, heads_.strategy_labels);
            if (!options_.styles.empty()) data::write_trained_styles(dir, options_.styles);
        }
        write_run_charts(options_.run_dir, metrics_path_, charts);
    }
    parallel_.barrier();
    return finished;
}

double TrainingRun::elapsed_s() const { return (ended_s_ >= 0.0 ? ended_s_ : now_s()) - started_s_; }

double TrainingRun::tokens_per_s() const { return tokens_done_ / std::max(elapsed_s(), 1e-9); }

std::string run_directory(const SftRecipe& recipe, bool resume) {
    if (!recipe.name.empty()) return (fs::path(recipe.output_dir) / recipe.name).string();
    if (!resume) {
        const auto now = std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now());
        return (fs::path(recipe.output_dir) / fmt::format("{:%Y%m%d-%H%M%S}", now)).string();
    }
    std::string newest;
    if (fs::is_directory(recipe.output_dir)) {
        for (const auto& entry : fs::directory_iterator(recipe.output_dir)) {
            if (fs::exists(entry.path() / "checkpoints") && entry.path().string() > newest) newest = entry.path().string();
        }
    }
    if (newest.empty()) fail("--resume: no run with checkpoints under {} (set `name` to pick one)", recipe.output_dir);
    return newest;
}

void truncate_metrics(const std::string& path, std::int64_t step) {
    if (!fs::exists(path)) return;
    std::string kept;
    for (const auto& record : read_metrics_log(path).records) {
        if (record.contains("step") && record["step"].is_number() && record["step"].get<std::int64_t>() > step) continue;
        kept += record.dump() + "\n";
    }
    write_file_atomically(path, kept);
}

peft::Adapter peft_adapter(const model::LoraAdapters& adapters, const std::string& base_model) {
    peft::Adapter adapter;
    const auto& config = adapters.config();
    adapter.config.base_model = base_model;
    adapter.config.r = static_cast<std::uint32_t>(config.rank);
    adapter.config.lora_alpha = config.alpha;
    adapter.config.lora_dropout = config.dropout;
    adapter.config.use_rslora = config.rslora;
    for (const auto& target : config.targets) {
        if (target == model::lora_module_name(model::LoraModule::ExpertsGateUp)) continue;  // below, in PEFT's order
        if (target == model::lora_module_name(model::LoraModule::ExpertsDown)) continue;
        adapter.config.target_modules.push_back(target + "_proj");
    }
    // gate_up before down: the nesting model::LoraAdapters names the tensors by.
    for (const auto module : {model::LoraModule::ExpertsGateUp, model::LoraModule::ExpertsDown})
        if (adapters.targets(module))
            adapter.config.target_parameters.emplace_back(
                peft::kExpertParameters[module == model::LoraModule::ExpertsGateUp ? 0 : 1]);
    for (std::int64_t layer = config.first_layer; config.first_layer > 0 && layer < adapters.layers(); ++layer)
        adapter.config.layers_to_transform.push_back(static_cast<std::uint32_t>(layer));
    for (const auto& info : adapters.tensors()) {
        peft::LoraTensor tensor{info.name, {static_cast<std::uint64_t>(info.rows), static_cast<std::uint64_t>(info.cols)}, {}};
        tensor.values.resize(static_cast<std::size_t>(info.rows * info.cols));
        adapters.get_hf(info.name, tensor.values);  // HF row order (undoes GGUF's q/k permutation)
        adapter.tensors.push_back(std::move(tensor));
    }
    return adapter;
}

void write_run_charts(const std::string& run_dir, const std::string& metrics_path, const std::vector<RunChart>& charts) {
    const auto records = read_metrics_log(metrics_path).records;
    std::vector<nlohmann::json> dev;  // {"step", metrics...} flattened from the dev records
    for (const auto& record : records) {
        if (!record.contains("dev") || !record["dev"].is_object()) continue;
        auto flat = record["dev"];
        flat["step"] = record["step"];
        dev.push_back(std::move(flat));
    }
    for (const auto& chart : charts) {
        if (chart.dev && dev.empty()) continue;
        std::vector<eval::PlotSeries> series;
        for (const auto& [key, legend] : chart.series) {
            auto points = metric_series(chart.dev ? dev : records, "step", key);
            if (!points.x.empty()) series.push_back({legend, std::move(points.x), std::move(points.y), chart.smoothing > 0.0});
        }
        eval::PlotOptions options;
        options.title = chart.title;
        options.x_label = "step";
        options.y_label = chart.y_label;
        options.smoothing = chart.smoothing;
        options.log_y = chart.log_y;
        eval::write_line_chart(run_dir + "/" + chart.file, series, options);
    }
}

}  // namespace kindred::train
