// model/heads.h — the small task heads trained jointly with the LoRA adapters on the decoder's
// final hidden state (after the output RMSNorm) at each "head site": an emotion classifier, a
// response-strategy classifier and a valence/arousal regressor, each one linear layer
// y = pooled · Wᵀ + b. Their gradient w.r.t. the pooled hidden state flows back into the adapted
// trunk (backward's dpooled).
//
// Head site (the pooled position, chosen in the issue-6 contract and restated here because the
// heads only make sense with it): the LAST token of the assistant header the chat template writes
// before a target reply (`<|im_start|>assistant\n` → its `\n`). Attention is causal, so that state
// has read the whole conversation up to the user's latest turn and nothing of the reply — exactly
// the state the model is in at inference when it starts to reply, so a decoding controller can read
// the predicted emotion/strategy before generating. Emotion-only examples (GoEmotions) are rendered
// with the generation prompt and use the last token, the same state.
//
// Like model/lora_adapters.h, parameters, gradients and the AdamW moments are four equal views
// into ONE fp32 allocation, so the optimizer, clipping and zeroing run over flat spans. Layout:
// enabled heads in the order emotion, strategy, valence_arousal; weight [outputs x hidden] before
// bias [outputs]; tensors are named "heads.<emotion|strategy|valence_arousal>.<weight|bias>".
//
// write_heads/read_heads keep a trained set next to the adapter: <dir>/heads.safetensors (F32,
// the tensor names above) + <dir>/heads.json {"format": "kindred-heads", "version": 1, "hidden",
// "emotion_labels": [...], "strategy_labels": [...], "valence_arousal": bool, "emotion_activation":
// "softmax"|"sigmoid", "emotion_threshold": number|null, "emotion_system_prompt": string|null} (an
// absent head has an empty label list / false; files without the last three keys, written before
// they existed, read as softmax, null and null). They live here rather than in formats/ because formats/ cannot
// know the Heads class; they only move bytes (formats/safetensors.h does the parsing).
#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "kernels/optimizer.h"

namespace kindred::model {

// How the emotion head's logits become per-label probabilities: one softmax over the labels
// (trained with the soft-label cross-entropy) or one independent sigmoid per label (trained with
// the binary cross-entropy, the GoEmotions paper's multi-label setup).
enum class EmotionActivation { Softmax, Sigmoid };
const char* emotion_activation_name(EmotionActivation activation);  // "softmax" / "sigmoid"

struct HeadsConfig {
    bool emotion = true;
    std::int64_t emotion_classes = 27;  // data::emotion_labels().size()
    EmotionActivation emotion_activation = EmotionActivation::Softmax;
    // The multi-label decision rule's probability threshold, chosen on dev after training
    // (eval/multilabel.h): labels with p >= threshold, and the most probable one always. NaN: none
    // chosen (eval/multilabel.h's relative default applies).
    double emotion_threshold = std::numeric_limits<double>::quiet_NaN();
    // The system message of the emotion-only examples it was trained on, when they shared one:
    // how `kindred eval emotion` renders a comment by default. Empty: not known.
    std::string emotion_system_prompt;
    bool strategy = true;
    std::int64_t strategy_classes = 8;  // data::strategies().size()
    bool valence_arousal = true;        // 2 outputs: valence, arousal
    // Init as torch.nn.Linear's default: W and b ~ U(−1/√hidden, 1/√hidden), drawn with
    // kernels::counter_uniform (kernels/lora.h) from stream seed ^ ((head index + 1) ·
    // 0x9E3779B97F4A7C15), head index 0/1/2 = emotion/strategy/VA whether or not the others are
    // enabled; element i < outputs·hidden is W's i-th (row-major), then the bias. So a head's init
    // does not change when another head is switched off.
    std::uint64_t seed = 0;
};

enum class Head { Emotion, Strategy, ValenceArousal };
inline constexpr int head_count = 3;

struct HeadTensorInfo {
    std::string name;  // "heads.emotion.weight", ...
    Head head = Head::Emotion;
    bool is_bias = false;
    std::int64_t rows = 0, cols = 0;  // bias: rows = outputs, cols = 1
    std::int64_t offset = 0;          // into params()/grads()
};

// "emotion", "strategy", "valence_arousal".
const char* head_name(Head head);

class Heads {
public:
    // Throws Error for hidden < 1 or an enabled classifier with fewer than 2 classes.
    Heads(std::int64_t hidden, const HeadsConfig& config);

    const HeadsConfig& config() const { return config_; }
    // Records the emotion decision threshold chosen on dev and the training examples' system
    // message (both written to heads.json).
    void set_emotion_threshold(double threshold) { config_.emotion_threshold = threshold; }
    void set_emotion_system_prompt(std::string prompt) { config_.emotion_system_prompt = std::move(prompt); }
    // Per-label probabilities [n x classes] of emotion logits under the head's activation.
    void emotion_probabilities(const float* logits, std::int64_t n, float* probabilities) const;
    std::int64_t hidden() const { return hidden_; }
    bool enabled(Head head) const;
    std::int64_t outputs(Head head) const;  // classes, or 2 for VA (whether or not enabled)

    // The head's weight [outputs x hidden] and bias [outputs]; Error when the head is disabled.
    const float* weight(Head head) const;
    const float* bias(Head head) const;

    // y[n x outputs] = pooled[n x hidden] · Wᵀ + b. Error when the head is disabled.
    void forward(Head head, const float* pooled, std::int64_t n, float* y) const;
    // grads(W) += dyᵀ · pooled, grads(b) += Σ_rows dy; dpooled[n x hidden] += dy · W (dpooled may
    // be null). Error when the head is disabled.
    void backward(Head head, const float* pooled, const float* dy, std::int64_t n, float* dpooled);

    std::span<float> params() { return {params_, count()}; }
    std::span<const float> params() const { return {params_, count()}; }
    std::span<float> grads() { return {grads_, count()}; }
    std::span<const float> grads() const { return {grads_, count()}; }
    // AdamW's first and second moments (for checkpoints; same layout as params()).
    std::span<float> first_moments() { return {m_, count()}; }
    std::span<float> second_moments() { return {v_, count()}; }
    std::span<const float> first_moments() const { return {m_, count()}; }
    std::span<const float> second_moments() const { return {v_, count()}; }
    void zero_grads();
    // One AdamW step over every head parameter (torch semantics; `step` counts from 1).
    void adamw_step(const kernels::AdamWConfig& config, std::int64_t step);

    const std::vector<HeadTensorInfo>& tensors() const { return tensors_; }  // only enabled heads
    const HeadTensorInfo& tensor(const std::string& name) const;             // Error naming it

private:
    std::size_t count() const { return static_cast<std::size_t>(count_); }
    const HeadTensorInfo& info(Head head, bool is_bias) const;

    std::int64_t hidden_ = 0;
    HeadsConfig config_;
    std::vector<HeadTensorInfo> tensors_;
    int first_tensor_[head_count] = {-1, -1, -1};  // index of the head's weight in tensors_, or -1
    std::int64_t count_ = 0;
    std::unique_ptr<float[]> storage_;  // params | grads | m | v
    float* params_ = nullptr;
    float* grads_ = nullptr;
    float* m_ = nullptr;
    float* v_ = nullptr;
};

// Writes <dir>/heads.safetensors then <dir>/heads.json, each atomically (the folder must exist).
// Label lists name the classes in id order; Error when an enabled classifier's list does not have
// exactly outputs() entries (or a disabled one's is not empty).
void write_heads(const std::string& dir, const Heads& heads, std::span<const std::string> emotion_labels,
                 std::span<const std::string> strategy_labels);

// Reads what write_heads wrote. The heads enabled are those the files hold; `hidden` is the model's
// (Error when heads.json says otherwise). Errors name the file and the tensor or key: a missing
// file or tensor, a wrong dtype or shape, an unexpected tensor, a bad heads.json.
struct LoadedHeads {
    Heads heads;
    std::vector<std::string> emotion_labels;  // empty for a head not stored
    std::vector<std::string> strategy_labels;
};
LoadedHeads read_heads_with_labels(const std::string& dir, std::int64_t hidden);
Heads read_heads(const std::string& dir, std::int64_t hidden);

}  // namespace kindred::model
