// model/family.h — what a model family changes, resolved once from ModelConfig into data that
// both decoders read: a LayerSpec per layer (model/layer.h) and the model-level pieces around
// the layers (rotary tables per layer kind, embedding scale, final logit soft-capping). This is
// the one place that turns a config's family switches into choices; decoder.cpp and
// trainable_decoder.cpp run whatever the spec says.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "formats/model_config.h"
#include "kernels/matmul.h"
#include "model/layer.h"

namespace kindred::model {

// One rotary table: theta^(-2i/d) with the config's frequency scaling, and the factor cos and
// sin are multiplied by (YaRN's attention factor; 1 otherwise).
struct RopeTable {
    std::vector<float> inverse_frequencies;  // head_dim / 2
    float attention_factor = 1.0f;
};

struct ModelSpec {
    LayerShape shape;
    std::int64_t vocab = 0;
    float attention_scale = 1.0f;      // softmax scale of attention logits
    // [0]: the config's rope (theta and scaling); [1], when some layer slides and the family
    // gives sliding layers their own base (Gemma 3): rope_local_theta without scaling.
    std::vector<RopeTable> rope;
    float embedding_scale = 1.0f;      // token embeddings are multiplied by this (Gemma: √hidden)
    float logit_softcap = 0.0f;        // logits = cap · tanh(logits / cap); 0 = none
    std::vector<LayerSpec> layers;
};

// Throws Error naming `source` for a config the pieces cannot run (a rope scaling that
// rope_frequencies refuses). `qk_interleaved`: the q/k rows are stored GGUF-permuted
// (Weights::qk_interleaved), so rope pairs adjacent dimensions.
ModelSpec resolve_model_spec(const ModelConfig& config, bool qk_interleaved, const std::string& source);

// ---- model-level pieces ----

// x[tokens x hidden] = embedding rows of `tokens`, times the spec's embedding scale.
void embed_tokens(const ModelSpec& spec, const kernels::Matrix& embedding, const std::int32_t* tokens,
                  std::int64_t count, float* x);

// Fills rows[i] with rotary table i's rows for `count` tokens at positions first_position,
// first_position + 1, … (positions null) or positions[0 .. count).
void fill_rope_rows(const ModelSpec& spec, std::span<const RopeRows> rows, std::int64_t first_position,
                    const std::int32_t* positions, std::int64_t count);

// logits[n] = cap · tanh(logits / cap) when the spec soft-caps, else unchanged.
void soft_cap_logits(const ModelSpec& spec, float* logits, std::int64_t n);

}  // namespace kindred::model
