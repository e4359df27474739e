// train/sft.cpp — the SFT loop (see sft.h; the objective is documented in docs/training.md).
#include "train/sft.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <optional>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/metrics_log.h"
#include "core/progress.h"
#include "data/labels.h"
#include "data/style.h"
#include "eval/plot.h"
#include "formats/peft_adapter.h"
#include "kernels/loss.h"
#include "kernels/optimizer.h"
#include "model/heads.h"
#include "model/lora_adapters.h"
#include "model/trainable_decoder.h"
#include "train/batch.h"
#include "train/checkpoint.h"
#include "train/data_parallel.h"
#include "train/frozen_cache.h"
#include "train/safety_teacher.h"

namespace kindred::train {
namespace {

namespace fs = std::filesystem;

// TrainableDecoder's dropout stream advances by this per forward_backward call (trainable_decoder.h).
constexpr std::uint64_t kDropoutStride = 0x632BE59BD9B4E019ULL;

// The trained parameters as checkpoint tensors: the adapter's, then the heads' (when any), so a
// plain run's checkpoints are exactly what they were before heads existed.
std::vector<NamedTensor> named(const model::LoraAdapters& adapters, std::span<const float> adapter_values,
                               const model::Heads* heads, std::span<const float> head_values) {
    std::vector<NamedTensor> out;
    const auto add = [&](const std::string& name, std::vector<std::uint64_t> shape, std::span<const float> values,
                         std::int64_t offset, std::int64_t count) {
        const auto begin = values.begin() + offset;
        out.push_back({name, std::move(shape), std::vector<float>(begin, begin + count)});
    };
    for (const auto& info : adapters.tensors())
        add(info.name, {static_cast<std::uint64_t>(info.rows), static_cast<std::uint64_t>(info.cols)}, adapter_values,
            info.offset, info.rows * info.cols);
    if (heads != nullptr) {
        for (const auto& info : heads->tensors()) {
            std::vector<std::uint64_t> shape{static_cast<std::uint64_t>(info.rows)};
            if (!info.is_bias) shape.push_back(static_cast<std::uint64_t>(info.cols));
            add(info.name, std::move(shape), head_values, info.offset, info.rows * info.cols);
        }
    }
    return out;
}

// Inverse of named() for tensors whose layout check_adapter_layout has accepted.
void unpack(const model::LoraAdapters& adapters, const model::Heads* heads, const std::vector<NamedTensor>& tensors,
            std::span<float> adapter_values, std::span<float> head_values) {
    std::size_t i = 0;
    for (const auto& info : adapters.tensors()) {
        std::copy(tensors[i].values.begin(), tensors[i].values.end(), adapter_values.begin() + info.offset);
        ++i;
    }
    if (heads == nullptr) return;
    for (const auto& info : heads->tensors()) {
        std::copy(tensors[i].values.begin(), tensors[i].values.end(), head_values.begin() + info.offset);
        ++i;
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

// The loss terms as metrics.jsonl names them, with the legend text of loss_components.svg.
constexpr std::pair<const char*, const char*> kComponents[] = {
    {"loss_lm", "NLL"}, {"loss_emotion", "emotion CE"}, {"loss_strategy", "strategy CE"},
    {"loss_va", "valence/arousal SE"}, {"loss_safety", "safety KL"}};

// Dev metrics drawn in dev.svg (the names of train/dev_eval.h's JSON).
constexpr const char* kDevCurves[] = {"nll", "emotion_macro_f1", "emotion_multilabel_f1", "emotion_threshold_macro_f1",
                                      "strategy_accuracy", "strategy_macro_f1", "va_mse", "safe_kl"};

void write_charts(const std::string& run_dir, const std::string& metrics_path) {
    const auto records = read_metrics_log(metrics_path).records;
    const auto loss = metric_series(records, "step", "loss");
    const auto lr = metric_series(records, "step", "lr");
    eval::PlotOptions options;
    options.title = "training loss";
    options.x_label = "step";
    options.y_label = "loss (λ-weighted total per step)";
    options.smoothing = 0.6;
    eval::write_line_chart(run_dir + "/loss.svg", {{"loss", loss.x, loss.y, true}}, options);

    std::vector<eval::PlotSeries> components;
    for (const auto& [key, label] : kComponents) {
        auto series = metric_series(records, "step", key);
        if (!series.x.empty()) components.push_back({label, std::move(series.x), std::move(series.y), true});
    }
    // Log scale: the KL (~0.01) and the head CEs (~3) would not share a linear axis.
    options.title = "loss components (each normalised by its own count, before λ)";
    options.y_label = "loss (log scale)";
    options.log_y = true;
    eval::write_line_chart(run_dir + "/loss_components.svg", components, options);
    options.log_y = false;

    options.title = "learning rate";
    options.y_label = "lr";
    options.smoothing = 0.0;
    eval::write_line_chart(run_dir + "/lr.svg", {{"lr", lr.x, lr.y, false}}, options);

    std::vector<nlohmann::json> dev;  // {"step", metrics...} flattened from the dev records
    for (const auto& record : records) {
        if (!record.contains("dev") || !record["dev"].is_object()) continue;
        auto flat = record["dev"];
        flat["step"] = record["step"];
        dev.push_back(std::move(flat));
    }
    if (dev.empty()) return;
    std::vector<eval::PlotSeries> curves;
    for (const char* key : kDevCurves) {
        auto series = metric_series(dev, "step", key);
        if (!series.x.empty()) curves.push_back({key, std::move(series.x), std::move(series.y), false});
    }
    options.title = "dev metrics";
    options.y_label = "value";
    eval::write_line_chart(run_dir + "/dev.svg", curves, options);
}

model::TrainBatch row_batch(const MicroBatch& micro, std::size_t row) {
    const auto begin = static_cast<std::ptrdiff_t>(row * micro.seq_len);
    const auto end = begin + static_cast<std::ptrdiff_t>(micro.seq_len);
    return {{micro.tokens.begin() + begin, micro.tokens.begin() + end},
            {micro.targets.begin() + begin, micro.targets.begin() + end},
            {micro.positions.begin() + begin, micro.positions.begin() + end},
            {micro.segment_ids.begin() + begin, micro.segment_ids.begin() + end},
            {}};
}

// Per-element weight of each term's sum in one step: λ / (the term's count over the whole step),
// 0 when the term is inactive or its count is 0 (then it is not computed at all).
struct Scales {
    float lm = 0.0f, emotion = 0.0f, strategy = 0.0f, va = 0.0f, safety = 0.0f;
};

// Each term's unnormalised sum over the step.
struct Sums {
    double lm = 0.0, emotion = 0.0, strategy = 0.0, va = 0.0, safety = 0.0;
};

float scale_of(double lambda, std::size_t count) {
    // float λ / float count, so that λ = 1 gives exactly the 1/count plain SFT always used.
    return lambda > 0.0 && count > 0 ? static_cast<float>(lambda) / static_cast<float>(count) : 0.0f;
}

// The multi-objective forward and backward of one packed row: the trunk's hidden states, every
// active term's loss on them, their gradients summed into d(hidden) (heads' parameter gradients
// into the heads), then the trunk's backward. Scratch buffers live here, so a step allocates only
// while they grow.
class RowObjective {
public:
    // `emotion_weights`: one per emotion class (empty: unweighted); `residuals`: the frozen-layer
    // cache of `examples` (null: every forward starts from the tokens).
    RowObjective(std::span<const TokenizedExample> examples, std::int64_t hidden, std::int64_t vocab,
                 model::Heads* heads, SafetyTeacher* teacher, std::vector<float> emotion_weights,
                 const FrozenResiduals* residuals)
        : examples_(examples), hidden_(hidden), vocab_(vocab), heads_(heads), teacher_(teacher),
          emotion_weights_(std::move(emotion_weights)), residuals_(residuals) {}

    void run(model::TrainableDecoder& trainer, const MicroBatch& micro, std::size_t row, const Scales& scales,
             Sums& sums) {
        model::TrainBatch batch = row_batch(micro, row);
        if (residuals_ != nullptr) add_cached_residuals(batch, micro, row);
        const std::span<const float> hidden = trainer.forward(batch);
        dhidden_.assign(hidden.size(), 0.0f);
        if (scales.lm != 0.0f) {
            kernels::FusedCrossEntropyShape shape;
            shape.tokens = static_cast<std::int64_t>(micro.seq_len);
            shape.dim = hidden_;
            shape.vocab = vocab_;
            sums.lm += kernels::fused_cross_entropy(dhidden_.data(), nullptr, hidden.data(), trainer.output_rows(),
                                                    batch.targets.data(), nullptr, shape, scales.lm)
                           .loss;
        }
        if (scales.emotion != 0.0f || scales.strategy != 0.0f || scales.va != 0.0f) {
            collect_sites(micro, row);
            if (scales.emotion != 0.0f) sums.emotion += emotion(hidden, scales.emotion);
            if (scales.strategy != 0.0f) sums.strategy += strategy(hidden, scales.strategy);
            if (scales.va != 0.0f) sums.va += valence_arousal(hidden, scales.va);
        }
        if (scales.safety != 0.0f) sums.safety += safety(trainer, micro, row, hidden, scales.safety);
        trainer.backward(dhidden_);
    }

private:
    struct SiteRef {
        std::size_t position;  // in the row
        const HeadSite* site;
        std::size_t line;  // the example's, for errors
    };

    // The row's residual stream entering the adapters' first layer: each packed example's cached
    // block at its offset, zeros for the padding (a segment of its own that no loss reads).
    void add_cached_residuals(model::TrainBatch& batch, const MicroBatch& micro, std::size_t row) const {
        std::size_t filled = 0;
        for (const auto& placement : micro.placements) {
            if (placement.row != row) continue;
            FrozenResiduals::append_padding(batch, placement.offset - filled, hidden_);
            residuals_->append(batch, placement.example);
            filled = placement.offset + residuals_->tokens(placement.example);
        }
        FrozenResiduals::append_padding(batch, micro.seq_len - filled, hidden_);
    }

    // The row's head sites, with their positions shifted by their example's offset.
    void collect_sites(const MicroBatch& micro, std::size_t row) {
        sites_.clear();
        for (const auto& placement : micro.placements) {
            if (placement.row != row) continue;
            const auto& example = examples_[placement.example];
            for (const auto& site : example.sites) {
                const auto position = placement.offset + static_cast<std::size_t>(site.position);
                if (site.position < 0 || static_cast<std::size_t>(site.position) >= example.tokens.size() ||
                    position >= micro.seq_len)
                    fail("example at line {}: head site position {} outside its {} tokens", example.line, site.position,
                         example.tokens.size());
                sites_.push_back({position, &site, example.line});
            }
        }
    }

    // Gathers the hidden rows of the selected sites into pooled_ (n x hidden) and their positions.
    template <typename Select>
    std::int64_t gather(std::span<const float> hidden, Select select) {
        positions_.clear();
        pooled_.clear();
        for (const auto& ref : sites_) {
            if (!select(ref)) continue;
            positions_.push_back(ref.position);
            const auto row = hidden.begin() + static_cast<std::ptrdiff_t>(ref.position) * hidden_;
            pooled_.insert(pooled_.end(), row, row + hidden_);
        }
        return static_cast<std::int64_t>(positions_.size());
    }

    // Head forward is done by the caller into logits_; this runs the head's backward with dlogits_
    // and adds d(pooled) into the gathered hidden rows.
    void head_backward(model::Head head, std::int64_t n) {
        dpooled_.assign(pooled_.size(), 0.0f);
        heads_->backward(head, pooled_.data(), dlogits_.data(), n, dpooled_.data());
        scatter(dpooled_);
    }

    void scatter(const std::vector<float>& rows) {
        for (std::size_t i = 0; i < positions_.size(); ++i) {
            float* dst = dhidden_.data() + positions_[i] * static_cast<std::size_t>(hidden_);
            const float* src = rows.data() + i * static_cast<std::size_t>(hidden_);
            for (std::int64_t j = 0; j < hidden_; ++j) dst[j] += src[j];
        }
    }

    void run_head(model::Head head, std::int64_t n) {
        logits_.assign(static_cast<std::size_t>(n * heads_->outputs(head)), 0.0f);
        heads_->forward(head, pooled_.data(), n, logits_.data());
        dlogits_.assign(logits_.size(), 0.0f);
    }

    // Softmax head: soft cross-entropy against the uniform distribution over the site's labels,
    // each label's share multiplied by its class weight. Sigmoid head: binary cross-entropy per
    // label (1 for the site's labels, 0 for the rest), the class weight as the positive term's
    // weight (kernels/loss.h).
    double emotion(std::span<const float> hidden, float scale) {
        const std::int64_t n = gather(hidden, [](const SiteRef& ref) { return !ref.site->emotions.empty(); });
        if (n == 0) return 0.0;
        const std::int64_t classes = heads_->outputs(model::Head::Emotion);
        const bool sigmoid = heads_->config().emotion_activation == model::EmotionActivation::Sigmoid;
        soft_targets_.assign(static_cast<std::size_t>(n * classes), 0.0f);
        std::size_t i = 0;
        for (const auto& ref : sites_) {
            const auto& labels = ref.site->emotions;
            if (labels.empty()) continue;
            for (const auto label : labels) {
                if (label < 0 || label >= classes)
                    fail("example at line {}: emotion label id {} outside the head's {} classes", ref.line, label, classes);
                const auto at = i * static_cast<std::size_t>(classes) + static_cast<std::size_t>(label);
                if (sigmoid) {
                    soft_targets_[at] = 1.0f;
                } else {
                    const float weight = emotion_weights_.empty() ? 1.0f : emotion_weights_[static_cast<std::size_t>(label)];
                    soft_targets_[at] += weight / static_cast<float>(labels.size());
                }
            }
            ++i;
        }
        run_head(model::Head::Emotion, n);
        double loss = 0.0;
        if (sigmoid) {
            const float* pos_weight = emotion_weights_.empty() ? nullptr : emotion_weights_.data();
            loss = kernels::sigmoid_cross_entropy_forward(logits_.data(), soft_targets_.data(), pos_weight, n, classes);
            kernels::sigmoid_cross_entropy_backward(dlogits_.data(), logits_.data(), soft_targets_.data(), pos_weight, n,
                                                    classes, scale);
        } else {
            loss = kernels::soft_cross_entropy_forward(logits_.data(), soft_targets_.data(), n, classes);
            kernels::soft_cross_entropy_backward(dlogits_.data(), logits_.data(), soft_targets_.data(), n, classes, scale);
        }
        head_backward(model::Head::Emotion, n);
        return loss;
    }

    double strategy(std::span<const float> hidden, float scale) {
        const std::int64_t n = gather(hidden, [](const SiteRef& ref) { return ref.site->strategy >= 0; });
        if (n == 0) return 0.0;
        const std::int64_t classes = heads_->outputs(model::Head::Strategy);
        labels_.clear();
        for (const auto& ref : sites_) {
            if (ref.site->strategy < 0) continue;
            if (ref.site->strategy >= classes)
                fail("example at line {}: strategy id {} outside the head's {} classes", ref.line, ref.site->strategy, classes);
            labels_.push_back(ref.site->strategy);
        }
        run_head(model::Head::Strategy, n);
        const double loss =
            kernels::softmax_cross_entropy_forward(nullptr, logits_.data(), labels_.data(), nullptr, n, classes).loss;
        kernels::softmax_cross_entropy_backward(dlogits_.data(), logits_.data(), labels_.data(), nullptr, n, classes, scale);
        head_backward(model::Head::Strategy, n);
        return loss;
    }

    // (v̂ − v)² + (â − a)² per site.
    double valence_arousal(std::span<const float> hidden, float scale) {
        const std::int64_t n = gather(hidden, [](const SiteRef& ref) { return ref.site->has_va; });
        if (n == 0) return 0.0;
        soft_targets_.clear();
        for (const auto& ref : sites_) {
            if (!ref.site->has_va) continue;
            soft_targets_.push_back(ref.site->valence);
            soft_targets_.push_back(ref.site->arousal);
        }
        run_head(model::Head::ValenceArousal, n);
        const double loss = kernels::mse_forward(logits_.data(), soft_targets_.data(), 2 * n);
        kernels::mse_backward(dlogits_.data(), logits_.data(), soft_targets_.data(), 2 * n, scale);
        head_backward(model::Head::ValenceArousal, n);
        return loss;
    }

    // KL(teacher ‖ student at τ) at every target token of the row's examples, in one pass over the
    // vocabulary for the whole row (the output matrix is streamed once, not once per example).
    double safety(model::TrainableDecoder& trainer, const MicroBatch& micro, std::size_t row,
                  std::span<const float> hidden, float scale) {
        positions_.clear();
        ids_.clear();
        probs_.clear();
        residual_.clear();
        const std::int64_t k = teacher_->top_k();
        for (const auto& placement : micro.placements) {
            if (placement.row != row) continue;
            const auto& example = examples_[placement.example];
            if (example.target_count == 0) continue;
            const TeacherTargets& teacher = teacher_->targets(placement.example, example);
            if (teacher.targets() != example.target_count || teacher.k != k ||
                teacher.ids.size() != example.target_count * static_cast<std::size_t>(k))
                fail("example at line {}: the teacher gave {} target rows of top-{} for {} target tokens", example.line,
                     teacher.targets(), teacher.k, example.target_count);
            for (std::size_t t = 0; t < example.targets.size(); ++t)
                if (example.targets[t] != kIgnoreTarget) positions_.push_back(placement.offset + t);
            ids_.insert(ids_.end(), teacher.ids.begin(), teacher.ids.end());
            probs_.insert(probs_.end(), teacher.probs.begin(), teacher.probs.end());
            residual_.insert(residual_.end(), teacher.residual.begin(), teacher.residual.end());
        }
        const auto m = static_cast<std::int64_t>(positions_.size());
        if (m == 0) return 0.0;
        pooled_.clear();
        for (const auto position : positions_) {
            const auto begin = hidden.begin() + static_cast<std::ptrdiff_t>(position) * hidden_;
            pooled_.insert(pooled_.end(), begin, begin + hidden_);
        }
        dpooled_.assign(pooled_.size(), 0.0f);
        kernels::TopKTeacher topk;
        topk.ids = ids_.data();
        topk.probs = probs_.data();
        topk.residual = residual_.data();
        topk.k = k;
        kernels::FusedCrossEntropyShape shape;
        shape.tokens = m;
        shape.dim = hidden_;
        shape.vocab = vocab_;
        const double kl = kernels::fused_topk_kl(dpooled_.data(), pooled_.data(), trainer.output_rows(), topk, shape,
                                                 teacher_->temperature(), scale);
        scatter(dpooled_);
        return kl;
    }

    std::span<const TokenizedExample> examples_;
    std::int64_t hidden_, vocab_;
    model::Heads* heads_;
    SafetyTeacher* teacher_;
    std::vector<float> dhidden_;
    std::vector<SiteRef> sites_;
    std::vector<std::size_t> positions_;
    std::vector<float> pooled_, dpooled_, logits_, dlogits_, soft_targets_;
    std::vector<std::int32_t> labels_;
    std::vector<std::int32_t> ids_;
    std::vector<float> probs_, residual_;
    std::vector<float> emotion_weights_;
    const FrozenResiduals* residuals_;
};

std::vector<std::string> names_of(std::span<const std::string_view> names) { return {names.begin(), names.end()}; }

std::vector<std::string> emotion_names(data::EmotionSpace space) {
    const auto names = data::emotion_space_labels(space);
    return {names.begin(), names.end()};
}

// "<path> <size>": the model file's identity for the frozen-layer cache's fingerprint.
std::string model_identity(const std::string& path) {
    std::error_code error;
    const auto size = fs::file_size(path, error);
    return fmt::format("{} {}", path, error ? 0 : size);
}

// A term's normalised value for metrics: NaN when it was not computed this step.
double mean_or_nan(double sum, float scale, std::size_t count) {
    return scale != 0.0f ? sum / static_cast<double>(count) : std::nan("");
}

}  // namespace

std::vector<float> emotion_class_weights(std::span<const TokenizedExample> examples, std::int64_t classes,
                                         EmotionRebalance rebalance) {
    if (rebalance == EmotionRebalance::None) return {};
    std::vector<double> counts(static_cast<std::size_t>(classes), 0.0);
    double occurrences = 0.0;
    for (const auto& example : examples)
        for (const auto& site : example.sites)
            for (const auto label : site.emotions) {
                if (label < 0 || label >= classes)
                    fail("example at line {}: emotion label id {} outside the head's {} classes", example.line, label, classes);
                counts[static_cast<std::size_t>(label)] += 1.0;
                occurrences += 1.0;
            }
    std::vector<double> raw(counts.size(), 0.0);
    double weighted = 0.0;  // Σ_c n_c · raw_c
    for (std::size_t c = 0; c < counts.size(); ++c) {
        if (counts[c] == 0.0) continue;
        raw[c] = rebalance == EmotionRebalance::InverseFrequency ? 1.0 / counts[c] : 1.0 / std::sqrt(counts[c]);
        weighted += counts[c] * raw[c];
    }
    // A class never seen in training gets weight 1: it is never a positive, so its weight only
    // matters to a sigmoid head's (absent) positive term.
    std::vector<float> weights(counts.size(), 1.0f);
    for (std::size_t c = 0; c < counts.size(); ++c)
        if (counts[c] > 0.0) weights[c] = static_cast<float>(raw[c] * occurrences / weighted);
    return weights;
}

SftResult run_sft(const SftRecipe& recipe, model::Decoder& base, std::span<const TokenizedExample> examples,
                  const SftOptions& options) {
    if (recipe.max_seq_len > base.config().context_length)
        fail("data.max_seq_len {} exceeds the model's context length {}", recipe.max_seq_len, base.config().context_length);
    if (recipe.max_steps < 1) fail("optimisation.max_steps must be at least 1");
    const LrSchedule schedule = lr_schedule(recipe);
    validate(schedule);

    const DataParallel parallel(options.communicator);
    const std::string run_dir = options.run_dir;
    const std::string checkpoint_root = run_dir + "/checkpoints";
    const std::string metrics_path = run_dir + "/metrics.jsonl";
    if (parallel.root()) fs::create_directories(run_dir);
    if (parallel.active()) {  // the data's fingerprint reads every token: only when there is a rank to compare with
        parallel.require_same("the resolved recipe", recipe.resolved_yaml);
        parallel.require_same("the tokenized training data", examples_fingerprint(examples));
    }

    LoadedCheckpoint loaded;
    if (options.resume) {
        loaded = load_latest_checkpoint(checkpoint_root);
    } else if (fs::exists(checkpoint_root + "/latest")) {
        fail("{} already holds checkpoints: pass --resume to continue it, or choose another run name", run_dir);
    }
    const bool resuming = !loaded.directory.empty();
    const std::int64_t start_step = resuming ? loaded.state.step : 0;
    parallel.require_same("the checkpoint resumed from", resuming ? loaded.directory : "none (a fresh start)");
    const auto rows_per_step = static_cast<std::uint64_t>(recipe.micro_batch * recipe.grad_accumulation);

    // The dropout stream resumes at the call count already made (see sft.h).
    model::LoraConfig lora = recipe.adapter;
    lora.seed += static_cast<std::uint64_t>(start_step) * rows_per_step * kDropoutStride;
    model::LoraAdapters adapters(base.config(), lora, base.weights().qk_interleaved);
    std::vector<float> adam_m(adapters.params().size(), 0.0f);
    std::vector<float> adam_v(adapters.params().size(), 0.0f);

    // Heads exist only for active terms (a switched-off head is never created, so it is absent
    // from checkpoints and the adapter folder); no teacher unless the KL is active.
    std::optional<model::Heads> heads_storage;
    if (any_head_active(recipe)) {
        model::HeadsConfig config;
        config.emotion = emotion_active(recipe);
        config.emotion_classes = static_cast<std::int64_t>(data::emotion_space_labels(recipe.heads.emotion_space).size());
        config.emotion_activation = recipe.heads.emotion_activation;
        config.strategy = strategy_active(recipe);
        config.strategy_classes = static_cast<std::int64_t>(data::strategies().size());
        config.valence_arousal = valence_arousal_active(recipe);
        config.seed = recipe.seed;
        heads_storage.emplace(base.config().hidden_size, config);
    }
    model::Heads* heads = heads_storage ? &*heads_storage : nullptr;
    const auto head_params = [&] { return heads ? heads->params() : std::span<float>(); };
    const auto head_m = [&] { return heads ? heads->first_moments() : std::span<float>(); };
    const auto head_v = [&] { return heads ? heads->second_moments() : std::span<float>(); };
    std::optional<SafetyTeacher> teacher;
    if (safety_active(recipe) && recipe.safety.top_k > base.config().vocab_size)
        fail("safety.top_k {} exceeds the model's vocabulary of {}", recipe.safety.top_k, base.config().vocab_size);
    if (safety_active(recipe))
        teacher.emplace(base, static_cast<float>(recipe.safety.temperature), recipe.safety.top_k);

    std::int64_t adam_step = 0;
    DataPosition position;
    if (resuming) {
        const auto expected = named(adapters, adapters.params(), heads, head_params());
        check_adapter_layout(loaded.state, expected);
        if (loaded.state.schedule.total_steps != schedule.total_steps || loaded.state.schedule.peak_lr != schedule.peak_lr)
            fail("{}: the checkpoint's schedule (lr {}, {} steps) differs from the recipe's (lr {}, {} steps)",
                 loaded.directory, loaded.state.schedule.peak_lr, loaded.state.schedule.total_steps, schedule.peak_lr,
                 schedule.total_steps);
        unpack(adapters, heads, loaded.state.adapter, adapters.params(), head_params());
        unpack(adapters, heads, loaded.state.adam_m, adam_m, head_m());
        unpack(adapters, heads, loaded.state.adam_v, adam_v, head_v());
        adam_step = loaded.state.adam_step;
        position = loaded.state.data;
        if (parallel.root()) truncate_metrics(metrics_path, start_step);
    }
    if (parallel.root()) write_file_atomically(run_dir + "/config.yaml", recipe.resolved_yaml);

    PackingOptions packing;
    packing.seq_len = static_cast<std::size_t>(recipe.max_seq_len);
    packing.rows_per_micro_batch = static_cast<std::size_t>(recipe.micro_batch);
    packing.micro_batches_per_step = static_cast<std::size_t>(recipe.grad_accumulation);
    packing.seed = recipe.seed;
    packing.pad_id = options.pad_id;
    Packer packer(examples, packing, position);
    model::TrainableDecoder trainer(base, adapters, recipe.checkpoint_activations, recipe.max_seq_len, recipe.compute);
    std::span<const TokenizedExample> dev = options.dev;
    if (recipe.evaluation.max_examples > 0 && dev.size() > static_cast<std::size_t>(recipe.evaluation.max_examples))
        dev = dev.first(static_cast<std::size_t>(recipe.evaluation.max_examples));

    // Partial fine-tuning: the frozen layers run once per example (train/frozen_cache.h).
    std::optional<FrozenResiduals> train_residuals, dev_residuals;
    if (adapters.first_layer() > 0 && recipe.cache_frozen_layers) {
        FrozenCacheOptions cache;
        cache.dir = (fs::path(recipe.output_dir) / "frozen-cache").string();
        cache.model_identity = model_identity(options.base_model);
        cache.precision = kernels::precision_name(kernels::effective_precision(recipe.compute));
        cache.max_seq_len = static_cast<std::size_t>(recipe.max_seq_len);
        cache.progress = recipe.progress && parallel.root();
        cache.label = "cache train";
        train_residuals = FrozenResiduals::open_or_build(trainer, examples, adapters.first_layer(), cache);
        if (!dev.empty()) {
            cache.label = "cache dev";
            dev_residuals = FrozenResiduals::open_or_build(trainer, dev, adapters.first_layer(), cache);
        }
    }
    std::vector<float> emotion_weights;
    if (heads != nullptr && heads->enabled(model::Head::Emotion))
        emotion_weights = emotion_class_weights(examples, heads->outputs(model::Head::Emotion), recipe.heads.emotion_rebalance);
    RowObjective objective(examples, base.config().hidden_size, base.config().vocab_size, heads,
                           teacher ? &*teacher : nullptr, std::move(emotion_weights),
                           train_residuals ? &*train_residuals : nullptr);
    std::optional<MetricsLog> metrics;
    if (parallel.root()) metrics.emplace(metrics_path);

    // The dev set's teacher of its own (a teacher caches by example index) unless the caller lends
    // one that already knows this dev set.
    std::optional<SafetyTeacher> own_dev_teacher;
    SafetyTeacher* dev_teacher = nullptr;
    if (teacher && !dev.empty()) {
        if (options.dev_teacher != nullptr) {
            if (options.dev_teacher->temperature() != teacher->temperature() || options.dev_teacher->top_k() != teacher->top_k())
                fail("the dev teacher given (temperature {}, top_k {}) differs from the recipe's safety settings "
                     "(temperature {}, top_k {})", options.dev_teacher->temperature(), options.dev_teacher->top_k(),
                     teacher->temperature(), teacher->top_k());
            dev_teacher = options.dev_teacher;
        } else {
            dev_teacher = &own_dev_teacher.emplace(base, teacher->temperature(), teacher->top_k());
        }
    }

    std::optional<Progress> progress;
    if (recipe.progress && parallel.root()) {
        ProgressOptions progress_options;
        progress_options.label = "train";
        progress_options.unit = "tok";
        progress.emplace(recipe.max_steps, progress_options);
        if (resuming) progress->message(fmt::format("resuming {} at step {}", loaded.directory, start_step));
        if (parallel.active())
            progress->message(fmt::format("data parallel over {} ranks ({})", parallel.size(), options.communicator->backend()));
        for (const auto& rejected : loaded.rejected) progress->message("skipped checkpoint " + rejected);
        if (kernels::effective_precision(recipe.compute) != recipe.compute)
            progress->message(fmt::format("model.compute_dtype {}: this CPU has no AMX-BF16, computing in {}",
                                          kernels::precision_name(recipe.compute),
                                          kernels::precision_name(kernels::effective_precision(recipe.compute))));
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
        state.adapter = named(adapters, adapters.params(), heads, head_params());
        state.adam_m = named(adapters, adam_m, heads, head_m());
        state.adam_v = named(adapters, adam_v, heads, head_v());
        state.adam_step = adam_step;
        state.rng = fmt::format("dropout-calls {}", static_cast<std::uint64_t>(step) * rows_per_step);
        state.data = packer.position();
        state.schedule = schedule;
        state.config_text = recipe.resolved_yaml;
        save_checkpoint(checkpoint_root, state, static_cast<std::size_t>(recipe.keep_last));
    };
    const auto evaluate = [&](std::int64_t step) {
        const DevMetrics dev_metrics =
            evaluate_dev(trainer, heads, dev_teacher, dev, static_cast<std::size_t>(recipe.max_seq_len),
                         dev_residuals ? &*dev_residuals : nullptr);
        const auto json = to_json(dev_metrics);
        if (metrics) metrics->write({{"step", step}, {"dev", json}});
        if (progress) progress->message(fmt::format("dev at step {}: {}", step, json.dump()));
        return dev_metrics;
    };

    const ObjectiveWeights& lambda = recipe.objective;
    for (std::int64_t step = start_step; step < recipe.max_steps; ++step) {
        const double step_start = clock();
        const StepBatch batch = packer.next_step();
        // Every normaliser is the whole step's count, known before the first backward.
        Scales scales;
        scales.lm = scale_of(lambda.lm, batch.target_tokens);
        scales.emotion = scale_of(heads && heads->enabled(model::Head::Emotion) ? lambda.emotion : 0.0, batch.emotion_sites);
        scales.strategy =
            scale_of(heads && heads->enabled(model::Head::Strategy) ? lambda.strategy : 0.0, batch.strategy_sites);
        scales.va = scale_of(heads && heads->enabled(model::Head::ValenceArousal) ? lambda.valence_arousal : 0.0,
                             batch.va_sites);
        scales.safety = scale_of(teacher ? lambda.safety_kl : 0.0, batch.target_tokens);
        if (scales.lm == 0.0f && scales.emotion == 0.0f && scales.strategy == 0.0f && scales.va == 0.0f &&
            scales.safety == 0.0f)
            fail("step {}: the batch has no target tokens and no head site labelled for an active head", step + 1);

        adapters.zero_grads();
        if (heads) heads->zero_grads();
        Sums sums;
        std::size_t step_tokens = 0;
        std::size_t step_row = 0;  // the row's index in the step, over its micro-batches
        for (const auto& micro : batch.micro_batches) {
            for (std::size_t row = 0; row < micro.rows; ++row, ++step_row) {
                if (!parallel.runs_row(step_row)) continue;
                // Each row's dropout masks are those of its place in a one-process run.
                trainer.set_training_forwards(static_cast<std::uint64_t>(step - start_step) * rows_per_step + step_row);
                objective.run(trainer, micro, row, scales, sums);
            }
            step_tokens += micro.rows * micro.seq_len;
        }
        double communication_s = 0.0;
        if (parallel.active()) {
            const double reduce_start = clock();
            parallel.sum(adapters.grads());
            if (heads) parallel.sum(heads->grads());
            std::array<double, 5> totals{sums.lm, sums.emotion, sums.strategy, sums.va, sums.safety};
            parallel.sum(totals);
            sums = {totals[0], totals[1], totals[2], totals[3], totals[4]};
            communication_s = clock() - reduce_start;
        }
        StepLosses losses;
        losses.lm = mean_or_nan(sums.lm, scales.lm, batch.target_tokens);
        losses.emotion = mean_or_nan(sums.emotion, scales.emotion, batch.emotion_sites);
        losses.strategy = mean_or_nan(sums.strategy, scales.strategy, batch.strategy_sites);
        losses.valence_arousal = mean_or_nan(sums.va, scales.va, batch.va_sites);
        losses.safety = mean_or_nan(sums.safety, scales.safety, batch.target_tokens);
        // A computed term that came out NaN must make the total NaN (nan_policy), so only terms
        // that were not computed are left out.
        losses.total = 0.0;
        if (scales.lm != 0.0f) losses.total += lambda.lm * losses.lm;
        if (scales.emotion != 0.0f) losses.total += lambda.emotion * losses.emotion;
        if (scales.strategy != 0.0f) losses.total += lambda.strategy * losses.strategy;
        if (scales.va != 0.0f) losses.total += lambda.valence_arousal * losses.valence_arousal;
        if (scales.safety != 0.0f) losses.total += lambda.safety_kl * losses.safety;
        const double loss = losses.total;

        std::vector<std::span<float>> grads{adapters.grads()};
        std::vector<std::span<const float>> const_grads{adapters.grads()};
        if (heads) {
            grads.push_back(heads->grads());
            const_grads.push_back(std::as_const(*heads).grads());
        }
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
            if (heads) {
                kernels::AdamWConfig head_adamw = adamw;
                head_adamw.lr = lr * recipe.heads.lr_multiplier;
                heads->adamw_step(head_adamw, adam_step);
            }
        }
        const double now = clock();
        tokens_done += static_cast<double>(step_tokens);
        result.losses.push_back(finite ? loss : std::nan(""));
        result.components.push_back(losses);
        result.last_step = step + 1;
        const std::int64_t done = step + 1;
        if (done % recipe.log_every == 0 || done == recipe.max_steps || !finite) {
            nlohmann::json record = {{"step", done},
                                     {"loss", loss},
                                     {"loss_lm", losses.lm},
                                     {"loss_emotion", losses.emotion},
                                     {"loss_strategy", losses.strategy},
                                     {"loss_va", losses.valence_arousal},
                                     {"loss_safety", losses.safety},
                                     {"lr", lr},
                                     {"grad_norm", grad_norm},
                                     {"tokens_per_s", static_cast<double>(step_tokens) / std::max(now - step_start, 1e-9)},
                                     {"elapsed", now - started},
                                     {"target_tokens", batch.target_tokens},
                                     {"emotion_sites", batch.emotion_sites},
                                     {"strategy_sites", batch.strategy_sites},
                                     {"va_sites", batch.va_sites}};
            if (!finite) record["skipped"] = true;
            if (parallel.active()) record["allreduce_s"] = communication_s;
            if (metrics) metrics->write(record);
        }
        if (progress) {
            std::vector<ProgressField> fields{{"loss", loss}};
            const std::pair<const char*, double> shown[] = {{"lm", losses.lm},         {"emo", losses.emotion},
                                                            {"strat", losses.strategy}, {"va", losses.valence_arousal},
                                                            {"kl", losses.safety}};
            // With the NLL alone the total says it all.
            if (heads || teacher)
                for (const auto& [name, value] : shown)
                    if (std::isfinite(value)) fields.emplace_back(name, value);
            fields.emplace_back("lr", lr);
            progress->update(done, std::move(fields), tokens_done);
        }
        // Dev before the checkpoint: a run resumed from this step keeps this step's dev record.
        const bool last = done == recipe.max_steps;
        if (!dev.empty() && (last || (recipe.evaluation.every > 0 && done % recipe.evaluation.every == 0))) {
            const DevMetrics dev_metrics = evaluate(done);
            if (last) result.final_dev = dev_metrics;
        }
        if (parallel.root() && (done % recipe.checkpoint_every == 0 || last)) save(done);
        if (options.on_step && !options.on_step(done, loss)) break;
    }
    result.elapsed_s = clock() - started;
    result.tokens_per_s = tokens_done / std::max(result.elapsed_s, 1e-9);
    if (teacher) result.teacher_cached_bytes = teacher->cached_bytes();
    if (progress) progress->finish();
    if (result.last_step == recipe.max_steps && parallel.root()) {
        peft::write_adapter(run_dir + "/adapter", peft_adapter(adapters, options.base_model));
        if (heads) {
            // The multi-label decision threshold chosen on dev goes with the head (eval/multilabel.h).
            if (result.final_dev && std::isfinite(result.final_dev->emotion_threshold))
                heads->set_emotion_threshold(result.final_dev->emotion_threshold);
            heads->set_emotion_system_prompt(options.emotion_system_prompt);
            const auto emotions = heads->enabled(model::Head::Emotion) ? emotion_names(recipe.heads.emotion_space)
                                                                       : std::vector<std::string>{};
            const auto strategies =
                heads->enabled(model::Head::Strategy) ? names_of(data::strategies()) : std::vector<std::string>{};
            model::write_heads(run_dir + "/adapter", *heads, emotions, strategies);
        }
        if (!options.styles.empty()) data::write_trained_styles(run_dir + "/adapter", options.styles);
    }
    result.finished = result.last_step == recipe.max_steps;
    if (parallel.root()) write_charts(run_dir, metrics_path);
    parallel.barrier();
    return result;
}

}  // namespace kindred::train
