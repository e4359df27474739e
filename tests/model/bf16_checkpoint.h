// tests/model/bf16_checkpoint.h — a random Llama checkpoint stored as bf16, as transformers saves
// one (model.safetensors + config.json), for the tests of quantizing a base at load. Its rows are
// whole Q4_K super-blocks (hidden 256, intermediate 512), so both formats quantize every projection.
#pragma once

#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "core/half.h"
#include "formats/safetensors.h"

namespace kindred::testing {

inline constexpr std::int64_t kBf16Hidden = 256, kBf16Intermediate = 512, kBf16Layers = 2;

inline void write_bf16_llama(const std::string& directory, std::int64_t vocab) {
    std::mt19937 rng(17);
    // σ = 0.02 (transformers' usual initializer_range) keeps activations O(1); norms sit at 1.
    std::normal_distribution<float> weight(0.0f, 0.02f);
    std::vector<std::vector<std::uint8_t>> storage;
    safetensors::Writer writer;
    const auto add = [&](const std::string& name, std::vector<std::uint64_t> shape, bool noise) {
        std::uint64_t n = 1;
        for (const auto d : shape) n *= d;
        auto& bytes = storage.emplace_back(n * 2);
        for (std::uint64_t i = 0; i < n; ++i) {
            const std::uint16_t bits = fp32_to_bf16(noise ? weight(rng) : 1.0f);
            std::memcpy(bytes.data() + 2 * i, &bits, 2);
        }
        writer.add_tensor(name, DType::BF16, std::move(shape), bytes);
    };
    const auto h = static_cast<std::uint64_t>(kBf16Hidden), f = static_cast<std::uint64_t>(kBf16Intermediate);
    const auto v = static_cast<std::uint64_t>(vocab);
    add("model.embed_tokens.weight", {v, h}, true);
    add("lm_head.weight", {v, h}, true);
    add("model.norm.weight", {h}, false);
    for (int l = 0; l < kBf16Layers; ++l) {
        const std::string p = "model.layers." + std::to_string(l) + ".";
        add(p + "input_layernorm.weight", {h}, false);
        add(p + "post_attention_layernorm.weight", {h}, false);
        add(p + "self_attn.q_proj.weight", {h, h}, true);
        add(p + "self_attn.k_proj.weight", {h / 2, h}, true);
        add(p + "self_attn.v_proj.weight", {h / 2, h}, true);
        add(p + "self_attn.o_proj.weight", {h, h}, true);
        add(p + "mlp.gate_proj.weight", {f, h}, true);
        add(p + "mlp.up_proj.weight", {f, h}, true);
        add(p + "mlp.down_proj.weight", {h, f}, true);
    }
    writer.write(directory + "/model.safetensors");
    std::ofstream(directory + "/config.json") << R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "head_dim": 64, "vocab_size": )" << vocab << R"(, "rms_norm_eps": 1e-05,
        "max_position_embeddings": 64, "rope_theta": 10000.0, "tie_word_embeddings": false,
        "hidden_act": "silu", "torch_dtype": "bfloat16"})";
}

}  // namespace kindred::testing
