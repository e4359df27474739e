// model/heads.cpp — layout, init, forward/backward and the files of the task heads (see heads.h).
#include "model/heads.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <filesystem>

#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json.h"
#include "formats/safetensors.h"
#include "kernels/lora.h"
#include "kernels/matmul.h"

namespace kindred::model {
namespace {

constexpr std::array<const char*, head_count> names = {"emotion", "strategy", "valence_arousal"};
constexpr const char* kWeightsFile = "heads.safetensors";
constexpr const char* kConfigFile = "heads.json";
constexpr const char* kFormat = "kindred-heads";
constexpr int kVersion = 1;
// heads.json holds two short label lists; this only bounds what a hostile file can make us read.
constexpr std::uintmax_t kMaxConfigBytes = 1u << 20;

int index_of(Head head) { return static_cast<int>(head); }

}  // namespace

const char* head_name(Head head) { return names[static_cast<std::size_t>(index_of(head))]; }

const char* emotion_activation_name(EmotionActivation activation) {
    return activation == EmotionActivation::Sigmoid ? "sigmoid" : "softmax";
}

void Heads::emotion_probabilities(const float* logits, std::int64_t n, float* probabilities) const {
    const std::int64_t classes = outputs(Head::Emotion);
    for (std::int64_t r = 0; r < n; ++r) {
        const float* z = logits + r * classes;
        float* p = probabilities + r * classes;
        if (config_.emotion_activation == EmotionActivation::Sigmoid) {
            for (std::int64_t c = 0; c < classes; ++c) p[c] = static_cast<float>(1.0 / (1.0 + std::exp(-static_cast<double>(z[c]))));
            continue;
        }
        const double top = *std::max_element(z, z + classes);
        double sum = 0.0;
        for (std::int64_t c = 0; c < classes; ++c) sum += std::exp(z[c] - top);
        for (std::int64_t c = 0; c < classes; ++c) p[c] = static_cast<float>(std::exp(z[c] - top) / sum);
    }
}

Heads::Heads(std::int64_t hidden, const HeadsConfig& config) : hidden_(hidden), config_(config) {
    if (hidden < 1) fail("heads: hidden size must be positive, got {}", hidden);
    if (config.emotion && config.emotion_classes < 2)
        fail("heads: the emotion head needs at least 2 classes, got {}", config.emotion_classes);
    if (config.strategy && config.strategy_classes < 2)
        fail("heads: the strategy head needs at least 2 classes, got {}", config.strategy_classes);
    for (int h = 0; h < head_count; ++h) {
        const auto head = static_cast<Head>(h);
        if (!enabled(head)) continue;
        const std::string prefix = std::string("heads.") + names[static_cast<std::size_t>(h)];
        first_tensor_[h] = static_cast<int>(tensors_.size());
        const std::int64_t rows = outputs(head);
        tensors_.push_back({prefix + ".weight", head, false, rows, hidden, count_});
        count_ += rows * hidden;
        tensors_.push_back({prefix + ".bias", head, true, rows, 1, count_});
        count_ += rows;
    }
    storage_.reset(new float[static_cast<std::size_t>(4 * count_)]());
    params_ = storage_.get();
    grads_ = params_ + count_;
    m_ = grads_ + count_;
    v_ = m_ + count_;

    // torch.nn.Linear's reset_parameters: kaiming_uniform_(a=√5) for W has bound 1/√fan_in, and
    // the bias bound is 1/√fan_in too; fan_in = hidden. W and b are contiguous, drawn as one stream.
    const auto bound = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hidden)));
    for (int h = 0; h < head_count; ++h) {
        if (first_tensor_[h] < 0) continue;
        const HeadTensorInfo& w = tensors_[static_cast<std::size_t>(first_tensor_[h])];
        const std::uint64_t seed = config.seed ^ (static_cast<std::uint64_t>(h + 1) * 0x9E3779B97F4A7C15ull);
        const std::int64_t n = w.rows * (hidden + 1);
        for (std::int64_t i = 0; i < n; ++i) {
            const float u = kernels::counter_uniform(seed, static_cast<std::uint64_t>(i));
            params_[w.offset + i] = bound * (2.0f * u - 1.0f);
        }
    }
}

bool Heads::enabled(Head head) const {
    switch (head) {
        case Head::Emotion: return config_.emotion;
        case Head::Strategy: return config_.strategy;
        case Head::ValenceArousal: return config_.valence_arousal;
    }
    return false;
}

std::int64_t Heads::outputs(Head head) const {
    switch (head) {
        case Head::Emotion: return config_.emotion_classes;
        case Head::Strategy: return config_.strategy_classes;
        case Head::ValenceArousal: return 2;
    }
    return 0;
}

const HeadTensorInfo& Heads::info(Head head, bool is_bias) const {
    const int first = first_tensor_[index_of(head)];
    if (first < 0) fail("heads: the {} head is not enabled", head_name(head));
    return tensors_[static_cast<std::size_t>(first + (is_bias ? 1 : 0))];
}

const float* Heads::weight(Head head) const { return params_ + info(head, false).offset; }
const float* Heads::bias(Head head) const { return params_ + info(head, true).offset; }

void Heads::forward(Head head, const float* pooled, std::int64_t n, float* y) const {
    const HeadTensorInfo& w = info(head, false);
    if (n <= 0) return;
    kernels::matmul_forward(y, pooled, kernels::Matrix{DType::F32, w.rows, w.cols, params_ + w.offset},
                            params_ + w.offset + w.rows * w.cols, n);
}

void Heads::backward(Head head, const float* pooled, const float* dy, std::int64_t n, float* dpooled) {
    const HeadTensorInfo& w = info(head, false);
    if (n <= 0) return;
    kernels::matmul_backward_weight(grads_ + w.offset, grads_ + w.offset + w.rows * w.cols, dy, pooled, w.rows, w.cols,
                                    n);
    if (dpooled != nullptr)
        kernels::matmul_backward_input(dpooled, dy, kernels::Matrix{DType::F32, w.rows, w.cols, params_ + w.offset}, n);
}

void Heads::zero_grads() { std::fill(grads_, grads_ + count_, 0.0f); }

void Heads::adamw_step(const kernels::AdamWConfig& config, std::int64_t step) {
    kernels::adamw_step(params_, grads_, m_, v_, count_, config, step);
}

const HeadTensorInfo& Heads::tensor(const std::string& name) const {
    for (const HeadTensorInfo& t : tensors_)
        if (t.name == name) return t;
    fail("heads: no head tensor named '{}'", name);
}

void write_heads(const std::string& dir, const Heads& heads, std::span<const std::string> emotion_labels,
                 std::span<const std::string> strategy_labels) {
    const std::span<const std::string> labels[] = {emotion_labels, strategy_labels};
    for (int h = 0; h < 2; ++h) {
        const auto head = static_cast<Head>(h);
        const std::size_t expected = heads.enabled(head) ? static_cast<std::size_t>(heads.outputs(head)) : 0;
        if (labels[h].size() != expected)
            fail("write_heads: {} labels given for the {} head, which has {} outputs", labels[h].size(),
                 head_name(head), expected);
    }
    const std::filesystem::path root(dir);
    safetensors::Writer writer;
    writer.set_metadata("format", kFormat);
    const auto params = heads.params();
    for (const HeadTensorInfo& t : heads.tensors()) {
        std::vector<std::uint64_t> shape = {static_cast<std::uint64_t>(t.rows)};
        if (!t.is_bias) shape.push_back(static_cast<std::uint64_t>(t.cols));
        const auto values =
            params.subspan(static_cast<std::size_t>(t.offset), static_cast<std::size_t>(t.rows * t.cols));
        writer.add_tensor(t.name, DType::F32, std::move(shape),
                          {reinterpret_cast<const std::uint8_t*>(values.data()), values.size_bytes()});
    }
    writer.write((root / kWeightsFile).string());

    const nlohmann::json config = {
        {"format", kFormat},
        {"version", kVersion},
        {"hidden", heads.hidden()},
        {"emotion_labels", std::vector<std::string>(emotion_labels.begin(), emotion_labels.end())},
        {"strategy_labels", std::vector<std::string>(strategy_labels.begin(), strategy_labels.end())},
        {"valence_arousal", heads.enabled(Head::ValenceArousal)},
        {"emotion_activation", emotion_activation_name(heads.config().emotion_activation)},
        {"emotion_threshold", std::isfinite(heads.config().emotion_threshold)
                                  ? nlohmann::json(heads.config().emotion_threshold)
                                  : nlohmann::json(nullptr)},
        {"emotion_system_prompt", heads.config().emotion_system_prompt.empty()
                                      ? nlohmann::json(nullptr)
                                      : nlohmann::json(heads.config().emotion_system_prompt)},
    };
    write_file_atomically((root / kConfigFile).string(), config.dump(2) + "\n");
}

LoadedHeads read_heads_with_labels(const std::string& dir, std::int64_t hidden) {
    const std::filesystem::path root(dir);
    const std::string config_path = (root / kConfigFile).string();
    const std::string weights_path = (root / kWeightsFile).string();
    if (!std::filesystem::exists(config_path)) fail("{}: missing (no heads saved in {})", config_path, dir);
    const nlohmann::json config = read_json_file(config_path, kMaxConfigBytes);
    if (!config.is_object()) fail("{}: expected a JSON object", config_path);
    auto field = [&](const char* key) -> const nlohmann::json& {
        const auto it = config.find(key);
        if (it == config.end()) fail("{}: missing key '{}'", config_path, key);
        return *it;
    };
    if (field("format") != kFormat) fail("{}: 'format' is not \"{}\"", config_path, kFormat);
    if (field("version") != kVersion) fail("{}: unsupported 'version' {}", config_path, field("version").dump());
    const nlohmann::json& stored_hidden = field("hidden");
    if (!stored_hidden.is_number_integer() || stored_hidden.get<std::int64_t>() != hidden)
        fail("{}: 'hidden' is {} but the model's hidden size is {}", config_path, stored_hidden.dump(), hidden);
    auto labels = [&](const char* key) {
        const nlohmann::json& list = field(key);
        if (!list.is_array()) fail("{}: '{}' must be an array of strings", config_path, key);
        std::vector<std::string> out;
        for (const nlohmann::json& label : list) {
            if (!label.is_string()) fail("{}: '{}' must be an array of strings", config_path, key);
            out.push_back(label.get<std::string>());
        }
        if (out.size() == 1) fail("{}: '{}' has a single class; a classifier needs at least 2", config_path, key);
        return out;
    };
    std::vector<std::string> emotion_labels = labels("emotion_labels");
    std::vector<std::string> strategy_labels = labels("strategy_labels");
    const nlohmann::json& va = field("valence_arousal");
    if (!va.is_boolean()) fail("{}: 'valence_arousal' must be true or false", config_path);

    HeadsConfig heads_config;
    if (const auto it = config.find("emotion_activation"); it != config.end()) {
        if (*it == "sigmoid") heads_config.emotion_activation = EmotionActivation::Sigmoid;
        else if (*it != "softmax") fail("{}: 'emotion_activation' must be \"softmax\" or \"sigmoid\"", config_path);
    }
    if (const auto it = config.find("emotion_threshold"); it != config.end() && !it->is_null()) {
        if (!it->is_number() || !(it->get<double>() > 0.0 && it->get<double>() < 1.0))
            fail("{}: 'emotion_threshold' must be a number in (0, 1) or null", config_path);
        heads_config.emotion_threshold = it->get<double>();
    }
    if (const auto it = config.find("emotion_system_prompt"); it != config.end() && !it->is_null()) {
        if (!it->is_string()) fail("{}: 'emotion_system_prompt' must be a string or null", config_path);
        heads_config.emotion_system_prompt = it->get<std::string>();
    }
    heads_config.emotion = !emotion_labels.empty();
    heads_config.emotion_classes = heads_config.emotion ? static_cast<std::int64_t>(emotion_labels.size()) : 27;
    heads_config.strategy = !strategy_labels.empty();
    heads_config.strategy_classes = heads_config.strategy ? static_cast<std::int64_t>(strategy_labels.size()) : 8;
    heads_config.valence_arousal = va.get<bool>();
    Heads heads(hidden, heads_config);

    if (!std::filesystem::exists(weights_path)) fail("{}: missing (named by {})", weights_path, config_path);
    const safetensors::File file = safetensors::File::open(weights_path);
    for (const safetensors::TensorInfo& stored : file.tensors()) {
        const bool known = std::any_of(heads.tensors().begin(), heads.tensors().end(),
                                       [&](const HeadTensorInfo& t) { return t.name == stored.name; });
        if (!known) fail("{}: unexpected tensor '{}' (not a head {} declares)", weights_path, stored.name, config_path);
    }
    const auto params = heads.params();
    for (const HeadTensorInfo& t : heads.tensors()) {
        const safetensors::TensorInfo* stored = file.find(t.name);
        if (stored == nullptr) fail("{}: missing tensor '{}'", weights_path, t.name);
        std::vector<std::uint64_t> shape = {static_cast<std::uint64_t>(t.rows)};
        if (!t.is_bias) shape.push_back(static_cast<std::uint64_t>(t.cols));
        if (stored->type != DType::F32) fail("{}: tensor '{}' is not F32", weights_path, t.name);
        if (stored->shape != shape)
            fail("{}: tensor '{}' has shape [{}], expected [{}]", weights_path, t.name, fmt::join(stored->shape, ", "),
                 fmt::join(shape, ", "));
        std::memcpy(params.data() + t.offset, stored->data.data(), stored->data.size());
    }
    return LoadedHeads{std::move(heads), std::move(emotion_labels), std::move(strategy_labels)};
}

Heads read_heads(const std::string& dir, std::int64_t hidden) {
    return std::move(read_heads_with_labels(dir, hidden).heads);
}

}  // namespace kindred::model
