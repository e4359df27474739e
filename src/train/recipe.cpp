// train/recipe.cpp — reads and checks the SFT recipe (see recipe.h).
#include "train/recipe.h"

#include <filesystem>
#include <limits>

#include "core/error.h"
#include "train/safety_teacher.h"

namespace kindred::train {

std::int64_t read_at_least(Config& config, std::string_view key, std::int64_t fallback, std::int64_t minimum) {
    const auto value = config.get<std::int64_t>(key, fallback);
    if (value < minimum) config.fail_at(key, fmt::format("must be at least {}", minimum));
    return value;
}

double read_in_range(Config& config, std::string_view key, double fallback, double lo, double hi) {
    const auto value = config.get<double>(key, fallback);
    if (!(value >= lo && value <= hi)) config.fail_at(key, fmt::format("must lie in [{}, {}]", lo, hi));
    return value;
}

// A loss weight: finite, not negative. The upper bound only catches typos (λ = 1e3 would drown
// every other term and is surely not meant).
double read_weight(Config& config, std::string_view key, double fallback) {
    return read_in_range(config, key, fallback, 0.0, 1000.0);
}

namespace {

std::string optional_file(Config& config, std::string_view key) {
    auto path = config.get<std::string>(key, "");
    if (!path.empty() && !std::filesystem::is_regular_file(path)) config.fail_at(key, fmt::format("file '{}' not found", path));
    return path;
}

}  // namespace

void read_model_keys(Config& config, SftRecipe& r) {
    r.name = config.get<std::string>("name", "");
    r.model = config.get<std::string>("model.path", "default");
    const auto quantize = model::parse_base_quantization(config.get<std::string>("model.quantize", "none"));
    if (!quantize) config.fail_at("model.quantize", "must be 'none', 'q4_k' or 'nf4'");
    r.quantize = *quantize;
    const auto compute = config.get<std::string>("model.compute_dtype", "bf16");
    if (compute == "bf16") r.compute = kernels::Precision::BF16;
    else if (compute == "fp32") r.compute = kernels::Precision::F32;
    else config.fail_at("model.compute_dtype", "must be 'bf16' or 'fp32'");
}

double read_adapter_dropout(Config& config) {
    // < 1: PEFT's dropout probability excludes 1 (every input dropped).
    return read_in_range(config, "adapter.dropout", 0.0, 0.0, 0.999);
}

void read_data_keys(Config& config, SftRecipe& r, const DataFiles& files) {
    r.data_path = files.path_fallback.empty() ? config.get<std::string>("data.path")
                                              : config.get<std::string>("data.path", files.path_fallback);
    if (files.must_exist && !std::filesystem::is_regular_file(r.data_path))
        config.fail_at("data.path", fmt::format("file '{}' not found", r.data_path));
    r.dev_path = files.must_exist ? optional_file(config, "data.dev_path")
                                  : config.get<std::string>("data.dev_path", files.dev_path_fallback);
    r.max_seq_len = read_at_least(config, "data.max_seq_len", 512, 2);
    data::StylePlacement placement = data::StylePlacement::System;
    try {
        placement = data::parse_style_placement(config.get<std::string>("data.style_placement", "system"));
    } catch (const Error& error) {
        config.fail_at("data.style_placement", error.what());
    }
    if (const auto style = config.get<std::string>("data.style", ""); !style.empty()) {
        try {
            r.style = data::parse_style_tokens(style, placement);
        } catch (const Error& error) {
            config.fail_at("data.style", error.what());
        }
    }
    const auto seed = config.get<std::int64_t>("data.seed", 0);
    if (seed < 0) config.fail_at("data.seed", "must not be negative");
    r.seed = static_cast<std::uint64_t>(seed);
    r.adapter.seed = r.seed;
}

void read_optimisation_keys(Config& config, SftRecipe& r, double default_lr) {
    r.lr = read_in_range(config, "optimisation.lr", default_lr, 0.0, 1.0);
    r.weight_decay = read_in_range(config, "optimisation.weight_decay", 0.0, 0.0, 1.0);
    const auto betas = config.get<std::vector<double>>("optimisation.betas", {0.9, 0.999});
    if (betas.size() != 2 || !(betas[0] >= 0.0 && betas[0] < 1.0) || !(betas[1] >= 0.0 && betas[1] < 1.0))
        config.fail_at("optimisation.betas", "must be two values in [0, 1)");
    r.beta1 = betas[0];
    r.beta2 = betas[1];
    r.eps = read_in_range(config, "optimisation.eps", 1e-8, 0.0, 1.0);
    r.max_steps = read_at_least(config, "optimisation.max_steps", 0);
    r.warmup_steps = read_at_least(config, "optimisation.warmup_steps", 0, 0);
    const auto schedule = config.get<std::string>("optimisation.schedule", "cosine");
    if (schedule == "cosine") r.schedule = LrDecay::Cosine;
    else if (schedule == "constant") r.schedule = LrDecay::Constant;
    else config.fail_at("optimisation.schedule", "must be 'cosine' or 'constant'");
    r.min_lr_ratio = read_in_range(config, "optimisation.min_lr_ratio", 0.0, 0.0, 1.0);
    r.micro_batch = read_at_least(config, "optimisation.micro_batch", 1);
    r.grad_accumulation = read_at_least(config, "optimisation.grad_accumulation", 1);
    r.max_grad_norm = read_in_range(config, "optimisation.max_grad_norm", 1.0, 0.0, std::numeric_limits<double>::max());
    r.checkpoint_activations = config.get<bool>("optimisation.checkpoint_activations", false);
    r.cache_frozen_layers = config.get<bool>("optimisation.cache_frozen_layers", true);
    const auto nan_policy = config.get<std::string>("optimisation.nan_policy", "stop");
    if (nan_policy == "stop") r.nan_policy = NanPolicy::Stop;
    else if (nan_policy == "skip") r.nan_policy = NanPolicy::Skip;
    else config.fail_at("optimisation.nan_policy", "must be 'stop' or 'skip'");

    r.log_every = read_at_least(config, "logging.every", 1);
    r.progress = config.get<bool>("logging.progress", true);

    r.output_dir = config.get<std::string>("output.dir", "runs");
    r.checkpoint_every = read_at_least(config, "output.checkpoint_every", 50);
    r.keep_last = read_at_least(config, "output.keep_last", 3, 0);
}

void read_head_keys(Config& config, SftRecipe& r) {
    r.objective.emotion = read_weight(config, "objective.emotion", 0.0);
    r.objective.strategy = read_weight(config, "objective.strategy", 0.0);
    r.objective.valence_arousal = read_weight(config, "objective.valence_arousal", 0.0);
}

void read_head_switches(Config& config, SftRecipe& r) {
    r.heads.emotion = config.get<bool>("heads.emotion", true);
    r.heads.strategy = config.get<bool>("heads.strategy", true);
    r.heads.valence_arousal = config.get<bool>("heads.valence_arousal", true);
    r.heads.lr_multiplier = read_in_range(config, "heads.lr_multiplier", 1.0, 0.0, 1000.0);
    const auto space = data::parse_emotion_space(config.get<std::string>("heads.emotion_labels", "kindred"));
    if (!space) config.fail_at("heads.emotion_labels", "must be 'kindred' or 'goemotions'");
    r.heads.emotion_space = *space;
    const auto loss = config.get<std::string>("heads.emotion_loss", "softmax");
    if (loss == "softmax") r.heads.emotion_activation = model::EmotionActivation::Softmax;
    else if (loss == "sigmoid") r.heads.emotion_activation = model::EmotionActivation::Sigmoid;
    else config.fail_at("heads.emotion_loss", "must be 'softmax' or 'sigmoid'");
    const auto rebalance = config.get<std::string>("heads.emotion_rebalance", "none");
    if (rebalance == "none") r.heads.emotion_rebalance = EmotionRebalance::None;
    else if (rebalance == "inverse_frequency") r.heads.emotion_rebalance = EmotionRebalance::InverseFrequency;
    else if (rebalance == "sqrt_inverse_frequency") r.heads.emotion_rebalance = EmotionRebalance::SqrtInverseFrequency;
    else config.fail_at("heads.emotion_rebalance", "must be 'none', 'inverse_frequency' or 'sqrt_inverse_frequency'");
    if (!r.heads.emotion) r.objective.emotion = 0.0;
    if (!r.heads.strategy) r.objective.strategy = 0.0;
    if (!r.heads.valence_arousal) r.objective.valence_arousal = 0.0;
}

void read_evaluation_keys(Config& config, SftRecipe& r) {
    r.evaluation.every = read_at_least(config, "evaluation.every", 0, 0);
    r.evaluation.max_examples = read_at_least(config, "evaluation.max_examples", 0, 0);
}

SftRecipe read_sft_recipe(Config& config) {
    SftRecipe r;
    read_model_keys(config, r);
    r.adapter.rank = static_cast<int>(read_at_least(config, "adapter.rank", 16));
    r.adapter.alpha = config.get<double>("adapter.alpha", 32.0);
    if (!(r.adapter.alpha > 0.0)) config.fail_at("adapter.alpha", "must be positive");
    r.adapter.dropout = read_adapter_dropout(config);
    r.adapter.rslora = config.get<bool>("adapter.rslora", false);
    r.adapter.targets = config.get<std::vector<std::string>>("adapter.targets", r.adapter.targets);
    if (r.adapter.targets.empty()) config.fail_at("adapter.targets", "must name at least one module");
    // The model's layer count bounds it when the adapters are built (model/lora_adapters.h).
    r.adapter.first_layer = read_at_least(config, "adapter.first_layer", 0, 0);

    read_data_keys(config, r, DataFiles{});
    read_optimisation_keys(config, r, 2e-4);

    r.objective.lm = read_weight(config, "objective.lm", 1.0);
    read_head_keys(config, r);
    r.objective.safety_kl = read_weight(config, "objective.safety_kl", 0.0);
    read_head_switches(config, r);
    r.safety.enabled = config.get<bool>("safety.enabled", true);
    if (!r.safety.enabled) r.objective.safety_kl = 0.0;
    // τ: below 0.05 the softmaxes overflow float exponent range for ordinary logits; above 100 every
    // distribution is uniform to float precision.
    r.safety.temperature = read_in_range(config, "safety.temperature", 2.0, 0.05, 100.0);
    // top_k: the cache holds 8 bytes per kept id per target token; more than 1024 buys nothing a
    // residual bucket does not already hold (and the model's vocabulary bounds it at run time).
    r.safety.top_k = read_at_least(config, "safety.top_k", 32);
    if (r.safety.top_k > 1024) config.fail_at("safety.top_k", "must be at most 1024");
    r.safety.rules = config.get<std::string>("safety.rules", "default");
    if (r.safety.rules.find_first_not_of(" \t\r\n") == std::string::npos)
        config.fail_at("safety.rules", "must be `default` or the rules text, not empty");
    if (r.objective.lm + r.objective.emotion + r.objective.strategy + r.objective.valence_arousal + r.objective.safety_kl <= 0.0)
        config.fail_at("objective.lm", "every objective weight is 0 (or switched off): nothing would be trained");

    read_evaluation_keys(config, r);

    config.finish();
    r.resolved_yaml = config.dump();
    return r;
}

bool emotion_active(const SftRecipe& recipe) { return recipe.heads.emotion && recipe.objective.emotion > 0.0; }
bool strategy_active(const SftRecipe& recipe) { return recipe.heads.strategy && recipe.objective.strategy > 0.0; }
bool valence_arousal_active(const SftRecipe& recipe) {
    return recipe.heads.valence_arousal && recipe.objective.valence_arousal > 0.0;
}
bool safety_active(const SftRecipe& recipe) { return recipe.safety.enabled && recipe.objective.safety_kl > 0.0; }
bool any_head_active(const SftRecipe& recipe) {
    return emotion_active(recipe) || strategy_active(recipe) || valence_arousal_active(recipe);
}

std::string safety_rules_text(const SftRecipe& recipe) {
    if (!safety_active(recipe)) return {};
    return recipe.safety.rules == "default" ? default_safety_rules() : recipe.safety.rules;
}

LrSchedule lr_schedule(const SftRecipe& recipe) {
    LrSchedule schedule;
    schedule.peak_lr = recipe.lr;
    schedule.warmup_steps = recipe.warmup_steps;
    schedule.total_steps = recipe.max_steps;
    schedule.decay = recipe.schedule;
    schedule.min_lr_ratio = recipe.min_lr_ratio;
    return schedule;
}

}  // namespace kindred::train
