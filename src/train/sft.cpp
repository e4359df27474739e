// train/sft.cpp — the SFT loop (see sft.h; the objective is documented in docs/training.md).
#include "train/sft.h"

#include <array>
#include <cmath>
#include <filesystem>
#include <optional>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/labels.h"
#include "kernels/loss.h"
#include "model/heads.h"
#include "model/trainable_decoder.h"
#include "train/batch.h"
#include "train/frozen_cache.h"
#include "train/head_losses.h"
#include "train/safety_teacher.h"
#include "train/training_run.h"

namespace kindred::train {
namespace {

// The charts of an SFT run (metrics.jsonl keys; the dev ones are train/dev_eval.h's JSON names).
std::vector<RunChart> sft_charts() {
    return {
        {"loss.svg", "training loss", "loss (λ-weighted total per step)", {{"loss", "loss"}}, 0.6},
        // Log scale: the KL (~0.01) and the head CEs (~3) would not share a linear axis.
        {"loss_components.svg",
         "loss components (each normalised by its own count, before λ)",
         "loss (log scale)",
         {{"loss_lm", "NLL"},
          {"loss_emotion", "emotion CE"},
          {"loss_strategy", "strategy CE"},
          {"loss_va", "valence/arousal SE"},
          {"loss_safety", "safety KL"}},
         0.6,
         true},
        {"lr.svg", "learning rate", "lr", {{"lr", "lr"}}},
        {"dev.svg",
         "dev metrics",
         "value",
         {{"nll", "nll"},
          {"emotion_macro_f1", "emotion_macro_f1"},
          {"emotion_multilabel_f1", "emotion_multilabel_f1"},
          {"emotion_threshold_macro_f1", "emotion_threshold_macro_f1"},
          {"strategy_accuracy", "strategy_accuracy"},
          {"strategy_macro_f1", "strategy_macro_f1"},
          {"va_mse", "va_mse"},
          {"safe_kl", "safe_kl"}},
         0.0,
         false,
         true},
    };
}

// Per-element weight of each term's sum in one step: λ / (the term's count over the whole step),
// 0 when the term is inactive or its count is 0 (then it is not computed at all).
struct Scales {
    float lm = 0.0f, safety = 0.0f;
    HeadScales heads;
};

// Each term's unnormalised sum over the step.
struct Sums {
    double lm = 0.0, safety = 0.0;
    HeadSums heads;
};

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
        : examples_(examples), hidden_(hidden), vocab_(vocab), heads_(examples, hidden, heads, std::move(emotion_weights)),
          teacher_(teacher), residuals_(residuals) {}

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
        heads_.run(micro, row, hidden, dhidden_, scales.heads, sums.heads);
        if (scales.safety != 0.0f) sums.safety += safety(trainer, micro, row, hidden, scales.safety);
        trainer.backward(dhidden_);
    }

private:
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
        add_rows_at(dhidden_, hidden_, positions_, dpooled_);
        return kl;
    }

    std::span<const TokenizedExample> examples_;
    std::int64_t hidden_, vocab_;
    HeadLosses heads_;
    SafetyTeacher* teacher_;
    std::vector<float> dhidden_;
    std::vector<std::size_t> positions_;
    std::vector<float> pooled_, dpooled_;
    std::vector<std::int32_t> ids_;
    std::vector<float> probs_, residual_;
    const FrozenResiduals* residuals_;
};

// The examples with targets a step will run that the teacher has not seen, each with the rank
// that runs its (first) row: the same list on every rank, since every rank packs the same step and
// the teachers' caches are kept equal.
struct TeacherShare {
    std::vector<std::size_t> examples;
    std::vector<int> owners;
};

TeacherShare uncached_examples(const SafetyTeacher& teacher, const StepBatch& batch, std::span<const TokenizedExample> examples,
                               const DataParallel& parallel) {
    TeacherShare share;
    std::size_t first_row = 0;  // the micro-batch's first row's index in the step
    for (const auto& micro : batch.micro_batches) {
        for (const auto& placement : micro.placements) {
            const std::size_t index = placement.example;
            if (examples[index].target_count == 0 || teacher.cached(index) ||
                std::find(share.examples.begin(), share.examples.end(), index) != share.examples.end())
                continue;
            share.examples.push_back(index);
            share.owners.push_back(parallel.rank_of_row(first_row + placement.row));
        }
        first_row += micro.rows;
    }
    return share;
}

std::vector<std::string> emotion_label_names(data::EmotionSpace space) {
    const auto names = data::emotion_space_labels(space);
    return {names.begin(), names.end()};
}

// "<path> <size>": the model file's identity for the frozen-layer cache's fingerprint.
std::string model_identity(const std::string& path) {
    std::error_code error;
    const auto size = std::filesystem::file_size(path, error);
    return fmt::format("{} {}", path, error ? 0 : size);
}

std::vector<std::string> strategy_names() {
    const auto names = data::strategies();
    return {names.begin(), names.end()};
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
    // Heads exist only for active terms (a switched-off head is never created, so it is absent
    // from checkpoints and the adapter folder); no teacher unless the KL is active.
    RunHeads run_heads;
    if (any_head_active(recipe)) {
        model::HeadsConfig config;
        config.emotion = emotion_active(recipe);
        config.emotion_classes = static_cast<std::int64_t>(data::emotion_space_labels(recipe.heads.emotion_space).size());
        config.emotion_activation = recipe.heads.emotion_activation;
        config.strategy = strategy_active(recipe);
        config.strategy_classes = static_cast<std::int64_t>(data::strategies().size());
        config.valence_arousal = valence_arousal_active(recipe);
        config.seed = recipe.seed;
        run_heads.heads.emplace(base.config().hidden_size, config);
        run_heads.trained = true;
        if (config.emotion) run_heads.emotion_labels = emotion_label_names(recipe.heads.emotion_space);
        if (config.strategy) run_heads.strategy_labels = strategy_names();
    }
    RunOptions run_options;
    run_options.run_dir = options.run_dir;
    run_options.resume = options.resume;
    run_options.base_model = options.base_model;
    run_options.on_step = options.on_step;
    run_options.communicator = options.communicator;
    run_options.styles = options.styles;
    if (safety_active(recipe) && recipe.safety.top_k > base.config().vocab_size)
        fail("safety.top_k {} exceeds the model's vocabulary of {}", recipe.safety.top_k, base.config().vocab_size);
    TrainingRun run(recipe, base, run_options, std::move(run_heads));
    if (run.parallel().active())  // the data's fingerprint reads every token: only when there is a rank to compare with
        run.parallel().require_same("the tokenized training data", examples_fingerprint(examples));
    model::Heads* heads = run.heads();
    std::optional<SafetyTeacher> teacher;
    if (safety_active(recipe))
        teacher.emplace(base, static_cast<float>(recipe.safety.temperature), recipe.safety.top_k);

    PackingOptions packing;
    packing.seq_len = static_cast<std::size_t>(recipe.max_seq_len);
    packing.rows_per_micro_batch = static_cast<std::size_t>(recipe.micro_batch);
    packing.micro_batches_per_step = static_cast<std::size_t>(recipe.grad_accumulation);
    packing.seed = recipe.seed;
    packing.pad_id = options.pad_id;
    Packer packer(examples, packing, run.data_position());
    model::TrainableDecoder trainer(base, run.adapters(), recipe.checkpoint_activations, recipe.max_seq_len,
                                    recipe.compute);
    std::span<const TokenizedExample> dev = options.dev;
    if (recipe.evaluation.max_examples > 0 && dev.size() > static_cast<std::size_t>(recipe.evaluation.max_examples))
        dev = dev.first(static_cast<std::size_t>(recipe.evaluation.max_examples));

    // Partial fine-tuning: the frozen layers run once per example (train/frozen_cache.h).
    std::optional<FrozenResiduals> train_residuals, dev_residuals;
    if (run.adapters().first_layer() > 0 && recipe.cache_frozen_layers) {
        FrozenCacheOptions cache;
        cache.dir = (std::filesystem::path(recipe.output_dir) / "frozen-cache").string();
        cache.model_identity = model_identity(options.base_model);
        cache.precision = kernels::precision_name(kernels::effective_precision(recipe.compute));
        cache.max_seq_len = static_cast<std::size_t>(recipe.max_seq_len);
        cache.progress = recipe.progress && run.parallel().root();
        cache.label = "cache train";
        train_residuals = FrozenResiduals::open_or_build(trainer, examples, run.adapters().first_layer(), cache);
        if (!dev.empty()) {
            cache.label = "cache dev";
            dev_residuals = FrozenResiduals::open_or_build(trainer, dev, run.adapters().first_layer(), cache);
        }
    }
    std::vector<float> emotion_weights;
    if (heads != nullptr && heads->enabled(model::Head::Emotion))
        emotion_weights = emotion_class_weights(examples, heads->outputs(model::Head::Emotion), recipe.heads.emotion_rebalance);
    RowObjective objective(examples, base.config().hidden_size, base.config().vocab_size, heads,
                           teacher ? &*teacher : nullptr, std::move(emotion_weights),
                           train_residuals ? &*train_residuals : nullptr);

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
    run.start_progress();

    SftResult result;
    result.first_step = run.start_step();
    result.last_step = run.start_step();
    std::function<nlohmann::json(std::int64_t)> evaluate;
    if (!dev.empty()) {
        evaluate = [&](std::int64_t step) {
            const DevMetrics dev_metrics =
                evaluate_dev(trainer, heads, dev_teacher, dev, static_cast<std::size_t>(recipe.max_seq_len),
                             dev_residuals ? &*dev_residuals : nullptr, run.parallel());
            if (step == recipe.max_steps) result.final_dev = dev_metrics;
            return to_json(dev_metrics);
        };
    }

    const ObjectiveWeights& lambda = recipe.objective;
    for (std::int64_t step = run.start_step(); step < recipe.max_steps; ++step) {
        const double step_start = TrainingRun::now_s();
        const StepBatch batch = packer.next_step();
        // Every normaliser is the whole step's count, known before the first backward.
        Scales scales;
        scales.lm = scale_of(lambda.lm, batch.target_tokens);
        scales.heads.emotion =
            scale_of(heads && heads->enabled(model::Head::Emotion) ? lambda.emotion : 0.0, batch.emotion_sites);
        scales.heads.strategy =
            scale_of(heads && heads->enabled(model::Head::Strategy) ? lambda.strategy : 0.0, batch.strategy_sites);
        scales.heads.va = scale_of(heads && heads->enabled(model::Head::ValenceArousal) ? lambda.valence_arousal : 0.0,
                                   batch.va_sites);
        scales.safety = scale_of(teacher ? lambda.safety_kl : 0.0, batch.target_tokens);
        if (scales.lm == 0.0f && !scales.heads.any() && scales.safety == 0.0f)
            fail("step {}: the batch has no target tokens and no head site labelled for an active head", step + 1);

        run.zero_grads();
        const TeacherShare teacher_share =
            scales.safety != 0.0f && run.parallel().active() ? uncached_examples(*teacher, batch, examples, run.parallel())
                                                              : TeacherShare{};
        Sums sums;
        std::size_t step_tokens = 0;
        std::size_t step_row = 0;  // the row's index in the step, over its micro-batches
        for (const auto& micro : batch.micro_batches) {
            for (std::size_t row = 0; row < micro.rows; ++row, ++step_row) {
                if (!run.parallel().runs_row(step_row)) continue;
                // Each row's dropout masks are those of its place in a one-process run.
                trainer.set_training_forwards(static_cast<std::uint64_t>(step - run.start_step()) * run.rows_per_step() +
                                              step_row);
                objective.run(trainer, micro, row, scales, sums);
            }
            step_tokens += micro.rows * micro.seq_len;
        }
        if (!teacher_share.examples.empty())
            teacher->share(teacher_share.examples, teacher_share.owners, examples, run.parallel());
        std::array<double, 5> totals{sums.lm, sums.safety, sums.heads.emotion, sums.heads.strategy, sums.heads.va};
        run.all_reduce(totals);
        sums = {totals[0], totals[1], {totals[2], totals[3], totals[4]}};
        StepLosses losses;
        losses.lm = mean_or_nan(sums.lm, scales.lm, batch.target_tokens);
        losses.emotion = mean_or_nan(sums.heads.emotion, scales.heads.emotion, batch.emotion_sites);
        losses.strategy = mean_or_nan(sums.heads.strategy, scales.heads.strategy, batch.strategy_sites);
        losses.valence_arousal = mean_or_nan(sums.heads.va, scales.heads.va, batch.va_sites);
        losses.safety = mean_or_nan(sums.safety, scales.safety, batch.target_tokens);
        // A computed term that came out NaN must make the total NaN (nan_policy), so only terms
        // that were not computed are left out.
        losses.total = 0.0;
        if (scales.lm != 0.0f) losses.total += lambda.lm * losses.lm;
        if (scales.heads.emotion != 0.0f) losses.total += lambda.emotion * losses.emotion;
        if (scales.heads.strategy != 0.0f) losses.total += lambda.strategy * losses.strategy;
        if (scales.heads.va != 0.0f) losses.total += lambda.valence_arousal * losses.valence_arousal;
        if (scales.safety != 0.0f) losses.total += lambda.safety_kl * losses.safety;
        const double loss = losses.total;

        const nlohmann::json record = {{"loss_lm", losses.lm},
                                       {"loss_emotion", losses.emotion},
                                       {"loss_strategy", losses.strategy},
                                       {"loss_va", losses.valence_arousal},
                                       {"loss_safety", losses.safety},
                                       {"target_tokens", batch.target_tokens},
                                       {"emotion_sites", batch.emotion_sites},
                                       {"strategy_sites", batch.strategy_sites},
                                       {"va_sites", batch.va_sites}};
        std::vector<ProgressField> fields{{"loss", loss}};
        const std::pair<const char*, double> shown[] = {{"lm", losses.lm},         {"emo", losses.emotion},
                                                        {"strat", losses.strategy}, {"va", losses.valence_arousal},
                                                        {"kl", losses.safety}};
        // With the NLL alone the total says it all.
        if (heads || teacher)
            for (const auto& [name, value] : shown)
                if (std::isfinite(value)) fields.emplace_back(name, value);
        const auto end = run.end_step(step, loss, record, std::move(fields), step_tokens, step_start, packer.position(),
                                      evaluate);
        result.losses.push_back(end.finite ? loss : std::nan(""));
        result.components.push_back(losses);
        result.last_step = step + 1;
        if (end.stop) break;
    }
    result.elapsed_s = run.elapsed_s();
    result.tokens_per_s = run.tokens_per_s();
    result.skipped_steps = run.skipped_steps();
    if (teacher) {
        result.teacher_cached_bytes = teacher->cached_bytes();
        result.teacher_forwarded_tokens = teacher->forwarded_tokens();
        result.teacher_reused_tokens = teacher->reused_tokens();
    }
    if (heads) {
        // The multi-label decision threshold chosen on dev goes with the head (eval/multilabel.h).
        if (result.final_dev && std::isfinite(result.final_dev->emotion_threshold))
            heads->set_emotion_threshold(result.final_dev->emotion_threshold);
        heads->set_emotion_system_prompt(options.emotion_system_prompt);
    }
    result.finished = run.finish(result.last_step, sft_charts());
    return result;
}

}  // namespace kindred::train
