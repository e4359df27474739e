// train/dpo.cpp — the DPO recipe, the reference log-prob cache and the DPO loop (see dpo.h).
#include "train/dpo.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <limits>

#include <fmt/format.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json.h"
#include "core/mapped_file.h"
#include "data/split.h"
#include "data/style.h"
#include "infer/loaded_model.h"
#include "kernels/loss.h"
#include "model/heads.h"
#include "train/batch.h"
#include "train/head_losses.h"

namespace kindred::train {
namespace {

namespace fs = std::filesystem;

constexpr const char* kCacheFormat = "kindred-reference-logps";
constexpr int kCacheVersion = 1;

std::string hex(std::uint64_t value) { return fmt::format("{:016x}", value); }

// The charts of a DPO run (TRL's metric names).
std::vector<RunChart> dpo_charts() {
    return {
        {"loss.svg", "DPO loss", "loss per step (mean over the step's pairs)", {{"loss", "loss"}}, 0.6},
        {"rewards.svg",
         "implicit rewards β·(log πθ − log πref)",
         "reward (nats · β)",
         {{"rewards/chosen", "chosen"}, {"rewards/rejected", "rejected"}, {"rewards/margins", "margin"}},
         0.6},
        {"accuracy.svg", "reward accuracy (chosen reward > rejected reward)", "share of pairs",
         {{"rewards/accuracies", "rewards/accuracies"}}, 0.6},
        {"logps.svg", "policy log-probabilities of the completions (summed over tokens)", "log π",
         {{"logps/chosen", "chosen"}, {"logps/rejected", "rejected"}}, 0.6},
        {"lr.svg", "learning rate", "lr", {{"lr", "lr"}}},
        {"dev.svg",
         "dev preference metrics",
         "value",
         {{"rewards/accuracies", "reward accuracy"},
          {"rewards/margins", "reward margin"},
          {"preference_accuracy", "log π(y+) > log π(y−)"},
          {"loss", "loss"}},
         0.0,
         false,
         true},
    };
}

double sum_scored(std::span<const float> logprob, std::span<const std::int32_t> targets, std::size_t begin,
                  std::size_t end) {
    double sum = 0.0;
    for (std::size_t t = begin; t < end; ++t)
        if (targets[t] != kIgnoreTarget) sum += logprob[t];
    return sum;
}

}  // namespace

DpoRows::DpoRows(const PairDataset& pairs, std::span<const SequenceLogProbs> reference, const DpoLossSettings& loss,
                 std::int64_t hidden, std::int64_t vocab, model::Heads* heads)
    : pairs_(pairs), reference_(reference), loss_(loss), hidden_(hidden), vocab_(vocab),
      heads_(pairs.examples, hidden, heads) {
    if (reference.size() != pairs.pairs.size())
        fail("{}: {} reference log-probs for {} pairs", pairs.path, reference.size(), pairs.pairs.size());
}

void DpoRows::run(model::TrainableDecoder& trainer, const MicroBatch& micro, std::size_t row, float pair_scale,
                  const HeadScales& head_scales, HeadSums& head_sums, std::vector<PairLogProbs>& logps,
                  std::vector<PairLoss>& losses) {
    const model::TrainBatch batch = row_batch(micro, row);
    placed_.clear();
    for (const auto& placement : micro.placements)
        if (placement.row == row) placed_.push_back({placement.offset, placement.example});
    const SharedPrefixRow shared(batch, placed_, pairs_, trainer.shares_prefixes_exactly(/*train=*/true));
    shared.expand(trainer.forward(shared.batch()), states_, hidden_);
    const std::span<const float> hidden = states_;
    const auto tokens = static_cast<std::int64_t>(micro.seq_len);
    logprob_.resize(static_cast<std::size_t>(tokens));
    const kernels::FusedCrossEntropyShape shape{tokens, hidden_, vocab_};
    ce_.forward(logprob_.data(), hidden.data(), trainer.output_rows(), batch.targets.data(), nullptr, shape);
    weights_.assign(static_cast<std::size_t>(tokens), 0.0f);
    for (const auto& placement : micro.placements) {
        if (placement.row != row) continue;
        const PairInfo& info = pairs_.pairs[placement.example];
        const std::size_t length = pairs_.examples[placement.example].tokens.size();
        const std::size_t begin = placement.offset, middle = begin + info.chosen_length, end = begin + length;
        PairLogProbs pair;
        pair.chosen = sum_scored(logprob_, batch.targets, begin, middle);
        pair.rejected = sum_scored(logprob_, batch.targets, middle, end);
        pair.ref_chosen = reference_[placement.example].chosen;
        pair.ref_rejected = reference_[placement.example].rejected;
        pair.chosen_tokens = info.chosen_targets;
        pair.rejected_tokens = info.rejected_targets;
        pair.chosen_violates = info.chosen_violates;
        const PairLoss loss = dpo_pair_loss(pair, loss_);
        // d loss/d(−log p(token)) = −d loss/d log π(sequence) for every scored token of it.
        for (std::size_t t = begin; t < end; ++t) {
            if (batch.targets[t] == kIgnoreTarget) continue;
            weights_[t] = static_cast<float>(t < middle ? -loss.dchosen : -loss.drejected);
        }
        logps.push_back(pair);
        losses.push_back(loss);
    }
    dhidden_.assign(hidden.size(), 0.0f);
    ce_.backward(dhidden_.data(), weights_.data(), pair_scale);
    heads_.run(micro, row, hidden, dhidden_, head_scales, head_sums);
    shared.fold(dhidden_, dcompact_, hidden_);
    trainer.backward(dcompact_);
}

DpoRecipe read_dpo_recipe(Config& config) {
    DpoRecipe r;
    read_model_keys(config, r.run);
    r.reference = config.get<std::string>("reference.adapter");
    if (!fs::is_directory(r.reference))
        config.fail_at("reference.adapter", fmt::format("folder '{}' not found (the SFT run's adapter/ folder)", r.reference));
    // TRL disables dropout in DPO by default (disable_dropout=True); so does this default.
    r.run.adapter.dropout = read_adapter_dropout(config);
    r.pairs = read_pairs_settings(config);
    read_data_keys(config, r.run, DataFiles{.must_exist = false, .path_fallback = r.pairs.out, .dev_path_fallback = r.pairs.dev_out});
    r.max_pairs = static_cast<std::size_t>(read_at_least(config, "data.max_pairs", 0, 0));

    const auto loss = config.get<std::string>("dpo.loss", "sigmoid");
    try {
        r.loss.type = parse_dpo_loss(loss);
    } catch (const Error& error) {
        config.fail_at("dpo.loss", error.what());
    }
    // β: TRL's default 0.1; above 1000 the sigmoid saturates for any log-ratio of a token.
    r.loss.beta = read_in_range(config, "dpo.beta", 0.1, 1e-6, 1000.0);
    r.loss.label_smoothing = read_in_range(config, "dpo.label_smoothing", 0.0, 0.0, 0.4999);
    if (r.loss.label_smoothing > 0.0 && r.loss.type != DpoLossType::Robust)
        config.fail_at("dpo.label_smoothing", "applies to the robust loss only (set dpo.loss: robust)");
    r.loss.violation_penalty = read_weight(config, "dpo.violation_penalty", 0.0);

    // LoRA DPO moves far less than SFT: TRL's default 1e-6 is for full fine-tuning, 5e-5 is the
    // usual order for adapters.
    read_optimisation_keys(config, r.run, 5e-5);
    read_head_keys(config, r.run);
    read_head_switches(config, r.run);
    r.run.objective.lm = 0.0;
    r.run.objective.safety_kl = 0.0;
    r.run.safety.enabled = false;
    read_evaluation_keys(config, r.run);
    config.finish();
    r.run.resolved_yaml = config.dump();
    return r;
}

PairDataset load_recipe_pairs(const std::string& path, const infer::LoadedModel& model, const DpoRecipe& recipe,
                              std::vector<std::string>& warnings_out) {
    PairDatasetOptions options;
    options.max_seq_len = static_cast<std::size_t>(recipe.run.max_seq_len);
    options.context_length = static_cast<std::size_t>(model.decoder().config().context_length);
    options.add_bos = model.adds_bos();
    options.max_pairs = recipe.max_pairs;
    auto dataset = load_pair_dataset(path, model.tokenizer(), &model.require_chat_template(), options);
    for (auto& line : warnings(dataset, options)) warnings_out.push_back(std::move(line));
    if (dataset.examples.empty()) fail("{}: no usable pairs", path);
    return dataset;
}

model::LoraConfig reference_lora(const peft::Adapter& reference, const SftRecipe& run, const ModelConfig& model,
                                 const std::string& where) {
    model::LoraConfig lora = infer::lora_config(reference.config, model, where);
    lora.dropout = run.adapter.dropout;
    lora.seed = run.seed;
    return lora;
}

std::vector<SequenceLogProbs> score_pairs(model::TrainableDecoder& trainer, const PairDataset& pairs,
                                          std::size_t max_seq_len, const DataParallel& parallel) {
    if (pairs.examples.size() != pairs.pairs.size()) fail("{}: pair tables of different sizes", pairs.path);
    if (max_seq_len == 0 || max_seq_len > static_cast<std::size_t>(trainer.max_tokens()))
        fail("scoring pairs: max_seq_len {} must be in [1, {}] (the trainer's token budget)", max_seq_len,
             trainer.max_tokens());
    for (const auto& example : pairs.examples)
        if (example.tokens.size() > max_seq_len)
            fail("{} line {}: the pair has {} tokens, over max_seq_len {}", pairs.path, example.line,
                 example.tokens.size(), max_seq_len);
    std::vector<SequenceLogProbs> out(pairs.examples.size());
    const auto& output = trainer.output_rows();
    kernels::FusedCrossEntropy ce;
    std::vector<float> logprob, hidden;
    std::vector<std::size_t> offsets;
    std::vector<PairAt> placed;
    const auto rows = pack_in_order(pairs.examples, max_seq_len);
    for (std::size_t r = 0; r < rows.size(); ++r) {
        if (!parallel.runs_row(r)) continue;
        const auto& row = rows[r];
        const model::TrainBatch batch = ordered_row(pairs.examples, row, offsets);
        placed.clear();
        for (std::size_t j = 0; j < row.size(); ++j) placed.push_back({offsets[j], row[j]});
        const SharedPrefixRow shared(batch, placed, pairs, trainer.shares_prefixes_exactly(/*train=*/false));
        shared.expand(trainer.forward(shared.batch(), /*train=*/false), hidden, output.cols);
        const auto tokens = static_cast<std::int64_t>(batch.tokens.size());
        logprob.resize(batch.tokens.size());
        ce.forward(logprob.data(), hidden.data(), output, batch.targets.data(), nullptr,
                   {tokens, output.cols, output.rows});
        for (std::size_t j = 0; j < row.size(); ++j) {
            const std::size_t begin = offsets[j], middle = begin + pairs.pairs[row[j]].chosen_length;
            const std::size_t end = begin + pairs.examples[row[j]].tokens.size();
            out[row[j]] = {sum_scored(logprob, batch.targets, begin, middle), sum_scored(logprob, batch.targets, middle, end)};
        }
    }
    if (parallel.active()) {
        std::vector<double> values;
        values.reserve(2 * out.size());
        for (const auto& pair : out) values.insert(values.end(), {pair.chosen, pair.rejected});
        parallel.sum(values);
        for (std::size_t i = 0; i < out.size(); ++i) out[i] = {values[2 * i], values[2 * i + 1]};
    }
    return out;
}

nlohmann::json ReferenceCacheKey::to_json() const {
    return {{"model", model}, {"reference_adapter", reference_adapter}, {"precision", precision}, {"pairs", pairs}};
}

ReferenceCacheKey reference_cache_key(const std::string& model_path, model::BaseQuantization quantization,
                                      const std::string& reference_dir, kernels::Precision precision,
                                      const PairDataset& pairs) {
    ReferenceCacheKey key;
    key.model = model_fingerprint(model_path);
    if (quantization != model::BaseQuantization::None)
        key.model += fmt::format(" quantized at load: {}", model::base_quantization_name(quantization));
    const std::string config = read_file_text(reference_dir + "/adapter_config.json", 16u << 20);
    const MappedFile weights(reference_dir + "/adapter_model.safetensors");
    const std::string bytes(reinterpret_cast<const char*>(weights.data()), weights.size());
    key.reference_adapter = "fnv1a64:" + hex(data::fnv1a64(config + '\0' + bytes));
    key.precision = kernels::precision_name(kernels::effective_precision(precision));
    key.pairs = fmt::format("fnv1a64:{} pairs:{}", hex(fingerprint(pairs)), pairs.examples.size());
    return key;
}

std::string reference_cache_path(const std::string& pairs_path) { return pairs_path + ".reference-logps.json"; }

ReferenceLogProbs cached_reference_log_probs(const std::string& cache_path, const ReferenceCacheKey& key,
                                             std::size_t pair_count,
                                             const std::function<std::vector<SequenceLogProbs>()>& compute,
                                             const DataParallel& parallel) {
    ReferenceLogProbs out;
    const nlohmann::json wanted = key.to_json();
    std::vector<SequenceLogProbs> cached;
    bool found = false;
    if (!cache_path.empty() && fs::exists(cache_path)) {
        const nlohmann::json cache = read_json_file(cache_path, 1u << 30);
        const auto where = cache_path + " (delete it to recompute the reference log-probs)";
        if (!cache.is_object() || cache.value("format", "") != kCacheFormat || !cache.contains("version") ||
            !cache["version"].is_number_integer())
            fail("{}: not a Kindred reference log-prob cache", where);
        if (cache["version"].get<int>() != kCacheVersion)
            fail("{}: cache version {} (this Kindred writes {})", where, cache["version"].get<int>(), kCacheVersion);
        if (!cache.contains("key") || !cache["key"].is_object()) fail("{}: missing 'key'", where);
        if (cache["key"] == wanted) {
            const auto& chosen = cache.value("chosen", nlohmann::json());
            const auto& rejected = cache.value("rejected", nlohmann::json());
            if (!chosen.is_array() || !rejected.is_array() || chosen.size() != pair_count || rejected.size() != pair_count)
                fail("{}: 'chosen' and 'rejected' must be arrays of {} numbers", where, pair_count);
            cached.resize(pair_count);
            for (std::size_t i = 0; i < pair_count; ++i) {
                if (!chosen[i].is_number() || !rejected[i].is_number())
                    fail("{}: entry {} is not a pair of numbers", where, i);
                cached[i] = {chosen[i].get<double>(), rejected[i].get<double>()};
                if (!std::isfinite(cached[i].chosen) || !std::isfinite(cached[i].rejected))
                    fail("{}: entry {} is not finite", where, i);
            }
            found = true;
        } else {
            for (const auto& [field, value] : wanted.items())
                if (cache["key"].value(field, nlohmann::json()) != value) {
                    out.note = fmt::format("{}: made for another {}; recomputed", cache_path, field);
                    break;
                }
        }
    }
    // Every rank takes the cache or none does: computing is a collective.
    double ranks_found = found ? 1.0 : 0.0;
    if (parallel.active()) parallel.sum(std::span<double>(&ranks_found, 1));
    if (found && ranks_found == static_cast<double>(parallel.size())) {
        out.pairs = std::move(cached);
        out.from_cache = true;
        return out;
    }
    if (found)
        out.note = fmt::format("{}: valid on {} of {} ranks only; recomputed", cache_path, ranks_found, parallel.size());
    out.pairs = compute();
    if (out.pairs.size() != pair_count) fail("reference log-probs: {} computed for {} pairs", out.pairs.size(), pair_count);
    out.sequences_scored = 2 * pair_count;
    if (!cache_path.empty() && parallel.root()) {
        nlohmann::json chosen = nlohmann::json::array(), rejected = nlohmann::json::array();
        for (const auto& pair : out.pairs) {
            chosen.push_back(pair.chosen);
            rejected.push_back(pair.rejected);
        }
        const nlohmann::json cache = {{"format", kCacheFormat}, {"version", kCacheVersion}, {"key", wanted},
                                      {"pairs", pair_count},    {"chosen", chosen},          {"rejected", rejected}};
        write_file_atomically(cache_path, cache.dump(1));
    }
    return out;
}

DpoDevMetrics dev_pair_metrics(std::span<const SequenceLogProbs> policy, std::span<const SequenceLogProbs> reference,
                               const PairDataset& pairs, const DpoLossSettings& loss) {
    if (policy.size() != pairs.pairs.size() || reference.size() != pairs.pairs.size())
        fail("dev pair metrics: {} policy and {} reference log-probs for {} pairs", policy.size(), reference.size(),
             pairs.pairs.size());
    std::vector<PairLogProbs> logps;
    std::vector<PairLoss> losses;
    DpoDevMetrics out;
    for (std::size_t i = 0; i < policy.size(); ++i) {
        const PairInfo& info = pairs.pairs[i];
        logps.push_back({policy[i].chosen, policy[i].rejected, reference[i].chosen, reference[i].rejected,
                         info.chosen_targets, info.rejected_targets, info.chosen_violates});
        losses.push_back(dpo_pair_loss(logps.back(), loss));
        out.preference_accuracy += policy[i].chosen > policy[i].rejected ? 1.0 : 0.0;
    }
    out.batch = dpo_batch_metrics(logps, losses);
    out.preference_accuracy /= static_cast<double>(policy.size());
    return out;
}

nlohmann::json to_json(const DpoDevMetrics& m) {
    return {{"loss", m.batch.loss},
            {"rewards/chosen", m.batch.rewards_chosen},
            {"rewards/rejected", m.batch.rewards_rejected},
            {"rewards/margins", m.batch.rewards_margins},
            {"rewards/accuracies", m.batch.rewards_accuracies},
            {"logps/chosen", m.batch.logps_chosen},
            {"logps/rejected", m.batch.logps_rejected},
            {"preference_accuracy", m.preference_accuracy},
            {"pairs", m.batch.pairs}};
}

DpoResult run_dpo(const DpoRecipe& recipe, model::Decoder& base, const PairDataset& pairs, const DpoOptions& options) {
    validate(recipe.loss);
    if (pairs.examples.empty()) fail("{}: no usable pairs", pairs.path);
    if (pairs.examples.size() != pairs.pairs.size()) fail("{}: pair tables of different sizes", pairs.path);
    const peft::Adapter reference = peft::read_adapter(recipe.reference);
    SftRecipe run_recipe = recipe.run;
    run_recipe.adapter = reference_lora(reference, recipe.run, base.config(), recipe.reference + "/adapter_config.json");
    const auto max_seq_len = static_cast<std::size_t>(run_recipe.max_seq_len);

    // The SFT heads: carried into the DPO adapter folder, trained only as auxiliary losses.
    RunHeads run_heads;
    const bool auxiliary = any_head_active(run_recipe);
    if (fs::exists(fs::path(recipe.reference) / "heads.json")) {
        auto loaded = model::read_heads_with_labels(recipe.reference, base.config().hidden_size);
        run_heads.heads.emplace(std::move(loaded.heads));
        run_heads.emotion_labels = std::move(loaded.emotion_labels);
        run_heads.strategy_labels = std::move(loaded.strategy_labels);
    }
    if (auxiliary) {
        const std::pair<model::Head, const char*> wanted[] = {{model::Head::Emotion, "objective.emotion"},
                                                              {model::Head::Strategy, "objective.strategy"},
                                                              {model::Head::ValenceArousal, "objective.valence_arousal"}};
        const double lambdas[] = {run_recipe.objective.emotion, run_recipe.objective.strategy,
                                  run_recipe.objective.valence_arousal};
        for (std::size_t i = 0; i < 3; ++i)
            if (lambdas[i] > 0.0 && (!run_heads.heads || !run_heads.heads->enabled(wanted[i].first)))
                fail("{} > 0 trains the {} head as an auxiliary loss, but {} has no such head", wanted[i].second,
                     model::head_name(wanted[i].first), recipe.reference);
        run_heads.trained = true;
    }

    const auto set_reference_values = [&](model::LoraAdapters& adapters) {
        infer::set_adapter_values(adapters, reference, base.config(), recipe.reference + "/adapter_model.safetensors",
                                  options.model_path);
    };
    // The policy answers in the styles the SFT adapter was trained with: its DPO adapter says so too.
    RunOptions run_options = options.run;
    run_options.styles = data::read_trained_styles(recipe.reference);
    TrainingRun run(run_recipe, base, run_options, std::move(run_heads),
                    [&](model::LoraAdapters& adapters) { set_reference_values(adapters); });
    const DataParallel& parallel = run.parallel();
    if (parallel.active()) parallel.require_same("the tokenized pairs", hex(fingerprint(pairs)));

    DpoResult result;
    const PairDataset* dev = options.dev;
    PairDataset dev_subset;
    if (dev != nullptr && run_recipe.evaluation.max_examples > 0 &&
        dev->examples.size() > static_cast<std::size_t>(run_recipe.evaluation.max_examples)) {
        const auto n = static_cast<std::size_t>(run_recipe.evaluation.max_examples);
        dev_subset.path = dev->path;
        dev_subset.examples.assign(dev->examples.begin(), dev->examples.begin() + static_cast<std::ptrdiff_t>(n));
        dev_subset.pairs.assign(dev->pairs.begin(), dev->pairs.begin() + static_cast<std::ptrdiff_t>(n));
        dev = &dev_subset;
    }
    // The reference log-probs in a scope of their own: the scorer's activations are freed before
    // the policy's trainer plans its own.
    {
        model::LoraAdapters frozen(base.config(), run_recipe.adapter, base.weights().qk_interleaved);
        set_reference_values(frozen);
        model::TrainableDecoder scorer(base, frozen, false, run_recipe.max_seq_len, run_recipe.compute);
        const auto reference_of = [&](const PairDataset& dataset, bool cached) {
            const std::string cache = cached ? reference_cache_path(dataset.path) : std::string();
            const ReferenceCacheKey key =
                cached ? reference_cache_key(options.model_path, run_recipe.quantize, recipe.reference, run_recipe.compute, dataset)
                       : ReferenceCacheKey{};
            return cached_reference_log_probs(
                cache, key, dataset.examples.size(), [&] { return score_pairs(scorer, dataset, max_seq_len, parallel); },
                parallel);
        };
        result.reference = reference_of(pairs, options.cache_reference);
        if (dev != nullptr) {
            // A first-N subset is not what the dev file's cache holds: scored, not cached.
            ReferenceLogProbs dev_reference = reference_of(*dev, options.cache_reference && dev != &dev_subset);
            result.dev_reference = std::move(dev_reference.pairs);
            result.dev_reference_sequences_scored = dev_reference.sequences_scored;
        }
    }
    PackingOptions packing;
    packing.seq_len = max_seq_len;
    packing.rows_per_micro_batch = static_cast<std::size_t>(run_recipe.micro_batch);
    packing.micro_batches_per_step = static_cast<std::size_t>(run_recipe.grad_accumulation);
    packing.seed = run_recipe.seed;
    packing.pad_id = options.pad_id;
    Packer packer(pairs.examples, packing, run.data_position());
    model::TrainableDecoder trainer(base, run.adapters(), run_recipe.checkpoint_activations, run_recipe.max_seq_len,
                                    run_recipe.compute);
    model::Heads* trained = run.trained_heads();
    DpoRows rows(pairs, result.reference.pairs, recipe.loss, base.config().hidden_size, base.config().vocab_size,
                  trained);
    run.start_progress();
    if (!result.reference.note.empty()) run.message(result.reference.note);
    if (result.reference.from_cache)
        run.message(fmt::format("reference log-probs of {} pairs read from {}", pairs.examples.size(),
                                reference_cache_path(pairs.path)));

    result.first_step = run.start_step();
    result.last_step = run.start_step();
    std::function<nlohmann::json(std::int64_t)> evaluate;
    if (dev != nullptr && !dev->examples.empty()) {
        evaluate = [&](std::int64_t step) {
            const auto policy = score_pairs(trainer, *dev, max_seq_len, parallel);
            const DpoDevMetrics metrics = dev_pair_metrics(policy, result.dev_reference, *dev, recipe.loss);
            if (step == run_recipe.max_steps) result.final_dev = metrics;
            return to_json(metrics);
        };
    }

    const ObjectiveWeights& lambda = run_recipe.objective;
    std::vector<PairLogProbs> logps;
    std::vector<PairLoss> losses;
    for (std::int64_t step = run.start_step(); step < run_recipe.max_steps; ++step) {
        const double step_start = TrainingRun::now_s();
        const StepBatch batch = packer.next_step();
        std::size_t step_pairs = 0;
        for (const auto& micro : batch.micro_batches) step_pairs += micro.examples;
        HeadScales head_scales;
        if (trained != nullptr) {
            head_scales.emotion = scale_of(trained->enabled(model::Head::Emotion) ? lambda.emotion : 0.0, batch.emotion_sites);
            head_scales.strategy =
                scale_of(trained->enabled(model::Head::Strategy) ? lambda.strategy : 0.0, batch.strategy_sites);
            head_scales.va =
                scale_of(trained->enabled(model::Head::ValenceArousal) ? lambda.valence_arousal : 0.0, batch.va_sites);
        }
        run.zero_grads();
        logps.clear();
        losses.clear();
        HeadSums head_sums;
        std::size_t step_tokens = 0;
        const float pair_scale = 1.0f / static_cast<float>(step_pairs);
        std::size_t step_row = 0;  // the row's index in the step, over its micro-batches
        for (const auto& micro : batch.micro_batches) {
            for (std::size_t row = 0; row < micro.rows; ++row, ++step_row) {
                if (!parallel.runs_row(step_row)) continue;
                // Each row's dropout masks are those of its place in a one-process run.
                trainer.set_training_forwards(static_cast<std::uint64_t>(step - run.start_step()) * run.rows_per_step() +
                                              step_row);
                rows.run(trainer, micro, row, pair_scale, head_scales, head_sums, logps, losses);
            }
            step_tokens += micro.rows * micro.seq_len;
        }
        DpoBatchMetrics sums = dpo_batch_sums(logps, losses);
        std::array<double, 13> totals{sums.loss,           sums.rewards_chosen, sums.rewards_rejected,
                                      sums.rewards_margins, sums.rewards_accuracies, sums.logps_chosen,
                                      sums.logps_rejected,  sums.penalty,        sums.violating_chosen,
                                      static_cast<double>(sums.pairs), head_sums.emotion, head_sums.strategy,
                                      head_sums.va};
        run.all_reduce(totals);
        sums = {totals[0], totals[1], totals[2], totals[3], totals[4], totals[5], totals[6], totals[7], totals[8],
                static_cast<std::size_t>(totals[9])};
        head_sums = {totals[10], totals[11], totals[12]};
        DpoStep step_result;
        step_result.metrics = batch_means(sums);
        step_result.emotion = mean_or_nan(head_sums.emotion, head_scales.emotion, batch.emotion_sites);
        step_result.strategy = mean_or_nan(head_sums.strategy, head_scales.strategy, batch.strategy_sites);
        step_result.valence_arousal = mean_or_nan(head_sums.va, head_scales.va, batch.va_sites);
        step_result.loss = step_result.metrics.loss;
        if (head_scales.emotion != 0.0f) step_result.loss += lambda.emotion * step_result.emotion;
        if (head_scales.strategy != 0.0f) step_result.loss += lambda.strategy * step_result.strategy;
        if (head_scales.va != 0.0f) step_result.loss += lambda.valence_arousal * step_result.valence_arousal;
        const auto& m = step_result.metrics;
        const nlohmann::json record = {{"loss_dpo", m.loss},
                                       {"rewards/chosen", m.rewards_chosen},
                                       {"rewards/rejected", m.rewards_rejected},
                                       {"rewards/margins", m.rewards_margins},
                                       {"rewards/accuracies", m.rewards_accuracies},
                                       {"logps/chosen", m.logps_chosen},
                                       {"logps/rejected", m.logps_rejected},
                                       {"penalty", m.penalty},
                                       {"violating_chosen", m.violating_chosen},
                                       {"loss_emotion", step_result.emotion},
                                       {"loss_strategy", step_result.strategy},
                                       {"loss_va", step_result.valence_arousal},
                                       {"pairs", step_pairs},
                                       {"target_tokens", batch.target_tokens}};
        std::vector<ProgressField> fields{{"loss", step_result.loss},
                                          {"acc", m.rewards_accuracies},
                                          {"margin", m.rewards_margins}};
        const auto end = run.end_step(step, step_result.loss, record, std::move(fields), step_tokens, step_start,
                                      packer.position(), evaluate);
        result.steps.push_back(step_result);
        result.last_step = step + 1;
        if (end.stop) break;
    }
    result.elapsed_s = run.elapsed_s();
    result.tokens_per_s = run.tokens_per_s();
    result.skipped_steps = run.skipped_steps();
    result.finished = run.finish(result.last_step, dpo_charts());
    return result;
}

}  // namespace kindred::train
