// Expert stacks as model/weights.h presents them: HF Qwen3-MoE per-expert tensors gathered into
// stack views without copying, HF gpt-oss dense experts transposed and de-interleaved, its MXFP4
// blocks/scales repacked, biases split, router and sink names mapped; GGUF gpt-oss's norm alias and
// a fused gate_up stack split into views; and the errors naming the tensor at fault.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "formats/gguf.h"
#include "formats/hf_mxfp4.h"
#include "formats/safetensors.h"
#include "formats/model_config.h"
#include "kernels/dequantize.h"
#include "model/moe_weights.h"
#include "model/weights.h"
#include "scratch_dir.h"
#include "test_paths.h"

namespace kindred::model {
namespace {

using testing::ScratchDir;

std::span<const std::uint8_t> bytes_of(const std::vector<float>& v) {
    return {reinterpret_cast<const std::uint8_t*>(v.data()), v.size() * sizeof(float)};
}

float at(const void* data, std::int64_t i) {
    float value;
    std::memcpy(&value, static_cast<const std::uint8_t*>(data) + i * 4, 4);
    return value;
}

std::string error_of(auto&& call) {
    try {
        call();
    } catch (const Error& error) {
        return error.what();
    }
    return "no error";
}

// An expert stack's every expert and row, dequantized: [experts x rows x cols].
std::vector<float> dequantized(const ExpertStack& stack) {
    std::vector<float> values(static_cast<std::size_t>(stack.experts * stack.rows * stack.cols));
    const auto row_size = static_cast<std::int64_t>(row_bytes(stack.type, static_cast<std::uint64_t>(stack.cols)));
    for (std::int64_t e = 0; e < stack.experts; ++e)
        for (std::int64_t r = 0; r < stack.rows; ++r)
            dequantize_row(stack.type, static_cast<const std::uint8_t*>(stack.slices[static_cast<std::size_t>(e)]) + r * row_size,
                           values.data() + (e * stack.rows + r) * stack.cols, stack.cols);
    return values;
}

constexpr std::int64_t E = 3, n = 4, h = 6;

// value(e, r, c) of a synthetic tensor, distinct everywhere.
std::vector<float> pattern(std::int64_t a, std::int64_t b, std::int64_t c, float tag) {
    std::vector<float> v(static_cast<std::size_t>(a * b * c));
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = tag + static_cast<float>(i);
    return v;
}

TEST(MoeWeights, Qwen3MoePerExpertTensorsBecomeStacksWithoutCopies) {
    ScratchDir dir("moe-weights");
    std::vector<std::vector<float>> tensors;
    safetensors::Writer writer;
    auto add = [&](const std::string& name, std::vector<std::uint64_t> shape, float tag) {
        tensors.push_back(pattern(1, static_cast<std::int64_t>(shape[0]), static_cast<std::int64_t>(shape[1]), tag));
        writer.add_tensor(name, DType::F32, shape, bytes_of(tensors.back()));
    };
    tensors.reserve(16);
    for (std::int64_t e = 0; e < E; ++e) {
        const std::string prefix = "model.layers.0.mlp.experts." + std::to_string(e) + ".";
        add(prefix + "gate_proj.weight", {n, h}, 1000.0f * static_cast<float>(e));
        add(prefix + "up_proj.weight", {n, h}, 1000.0f * static_cast<float>(e) + 100.0f);
        add(prefix + "down_proj.weight", {h, n}, 1000.0f * static_cast<float>(e) + 200.0f);
    }
    add("model.layers.0.mlp.gate.weight", {E, h}, 5.0f);
    writer.write(dir / "model.safetensors");
    const auto checkpoint = safetensors::Checkpoint::open(dir / "model.safetensors");
    const Weights weights = load_weights(checkpoint);
    EXPECT_EQ(weights.get("blk.0.ffn_gate_inp.weight").shape, (std::vector<std::int64_t>{E, h}));
    for (const auto& [name, rows, cols, tag] : {std::tuple{"gate", n, h, 0.0f}, std::tuple{"up", n, h, 100.0f},
                                                std::tuple{"down", h, n, 200.0f}}) {
        const WeightView& stack = weights.get(std::string("blk.0.ffn_") + name + "_exps.weight");
        EXPECT_EQ(stack.shape, (std::vector<std::int64_t>{E, rows, cols}));
        ASSERT_EQ(stack.slices.size(), static_cast<std::size_t>(E));
        for (std::int64_t e = 0; e < E; ++e) {
            const std::string hf = "model.layers.0.mlp.experts." + std::to_string(e) + "." + name + "_proj.weight";
            EXPECT_EQ(stack.slices[static_cast<std::size_t>(e)], checkpoint.tensor(hf).data.data());  // a view
            EXPECT_EQ(at(stack.slices[static_cast<std::size_t>(e)], 5), 1000.0f * static_cast<float>(e) + tag + 5.0f);
        }
    }
}

TEST(MoeWeights, IncompleteOrMismatchedExpertStacksAreRefusedNamingTheTensor) {
    ScratchDir dir("moe-weights-bad");
    const auto a = pattern(1, n, h, 0.0f), b = pattern(1, n + 1, h, 0.0f);
    {
        safetensors::Writer writer;
        writer.add_tensor("model.layers.1.mlp.experts.0.gate_proj.weight", DType::F32, {n, h}, bytes_of(a));
        writer.add_tensor("model.layers.1.mlp.experts.2.gate_proj.weight", DType::F32, {n, h}, bytes_of(a));
        writer.write(dir / "gap.safetensors");
    }
    const auto gap = safetensors::Checkpoint::open(dir / "gap.safetensors");
    EXPECT_NE(error_of([&] { load_weights(gap); }).find("expert 1 of 'blk.1.ffn_gate_exps.weight' is missing"),
              std::string::npos);
    {
        safetensors::Writer writer;
        writer.add_tensor("model.layers.1.mlp.experts.0.up_proj.weight", DType::F32, {n, h}, bytes_of(a));
        writer.add_tensor("model.layers.1.mlp.experts.1.up_proj.weight", DType::F32, {n + 1, h}, bytes_of(b));
        writer.write(dir / "shape.safetensors");
    }
    const auto shape = safetensors::Checkpoint::open(dir / "shape.safetensors");
    EXPECT_NE(error_of([&] { load_weights(shape); }).find("'model.layers.1.mlp.experts.1.up_proj.weight' is F32 [5, 6]"),
              std::string::npos);
}

TEST(MoeWeights, GptOssDenseExpertsAreTransposedAndDeinterleaved) {
    ScratchDir dir("gpt-oss-dense");
    const auto gate_up = pattern(E, h, 2 * n, 0.0f), gate_up_bias = pattern(1, E, 2 * n, 0.5f);
    const auto down = pattern(E, n, h, 0.25f), down_bias = pattern(1, E, h, 0.75f), sinks = pattern(1, 1, 4, 9.0f);
    const auto router = pattern(1, E, h, 3.0f), router_bias = pattern(1, 1, E, 4.0f);
    safetensors::Writer writer;
    writer.add_tensor("model.layers.0.mlp.experts.gate_up_proj", DType::F32, {E, h, 2 * n}, bytes_of(gate_up));
    writer.add_tensor("model.layers.0.mlp.experts.gate_up_proj_bias", DType::F32, {E, 2 * n}, bytes_of(gate_up_bias));
    writer.add_tensor("model.layers.0.mlp.experts.down_proj", DType::F32, {E, n, h}, bytes_of(down));
    writer.add_tensor("model.layers.0.mlp.experts.down_proj_bias", DType::F32, {E, h}, bytes_of(down_bias));
    writer.add_tensor("model.layers.0.mlp.router.weight", DType::F32, {E, h}, bytes_of(router));
    writer.add_tensor("model.layers.0.mlp.router.bias", DType::F32, {E}, bytes_of(router_bias));
    writer.add_tensor("model.layers.0.self_attn.sinks", DType::F32, {4}, bytes_of(sinks));
    writer.write(dir / "model.safetensors");
    const auto checkpoint = safetensors::Checkpoint::open(dir / "model.safetensors");
    const Weights weights = load_weights(checkpoint);
    const WeightView& gate = weights.get("blk.0.ffn_gate_exps.weight");
    const WeightView& up = weights.get("blk.0.ffn_up_exps.weight");
    const WeightView& down_view = weights.get("blk.0.ffn_down_exps.weight");
    EXPECT_EQ(gate.shape, (std::vector<std::int64_t>{E, n, h}));
    EXPECT_EQ(down_view.shape, (std::vector<std::int64_t>{E, h, n}));
    for (std::int64_t e = 0; e < E; ++e)
        for (std::int64_t o = 0; o < n; ++o)
            for (std::int64_t i = 0; i < h; ++i) {
                const std::size_t in = static_cast<std::size_t>((e * h + i) * 2 * n + 2 * o);
                ASSERT_EQ(at(gate.data, (e * n + o) * h + i), gate_up[in]);
                ASSERT_EQ(at(up.data, (e * n + o) * h + i), gate_up[in + 1]);
                ASSERT_EQ(at(down_view.data, (e * h + i) * n + o), down[static_cast<std::size_t>((e * n + o) * h + i)]);
            }
    EXPECT_EQ(at(weights.get("blk.0.ffn_gate_exps.bias").data, 2 * n + 1), gate_up_bias[static_cast<std::size_t>(4 * n + 2)]);
    EXPECT_EQ(at(weights.get("blk.0.ffn_up_exps.bias").data, 1), gate_up_bias[3]);
    EXPECT_EQ(weights.get("blk.0.ffn_down_exps.bias").data, checkpoint.tensor("model.layers.0.mlp.experts.down_proj_bias").data.data());
    EXPECT_EQ(weights.get("blk.0.ffn_gate_inp.bias").shape, (std::vector<std::int64_t>{E}));
    EXPECT_EQ(weights.get("blk.0.attn_sinks.weight").shape, (std::vector<std::int64_t>{4}));
}

TEST(MoeWeights, GptOssMxfp4ExpertsStayFourBit) {
    ScratchDir dir("gpt-oss-mxfp4");
    std::vector<std::uint8_t> blocks(static_cast<std::size_t>(E * 2 * n * 1 * 16)), scales(static_cast<std::size_t>(E * 2 * n));
    for (std::size_t i = 0; i < blocks.size(); ++i) blocks[i] = static_cast<std::uint8_t>(i * 37 + 11);
    for (std::size_t i = 0; i < scales.size(); ++i) scales[i] = static_cast<std::uint8_t>(120 + i % 9);
    safetensors::Writer writer;
    writer.add_tensor("model.layers.0.mlp.experts.gate_up_proj_blocks", DType::U8, {E, 2 * n, 1, 16}, blocks);
    writer.add_tensor("model.layers.0.mlp.experts.gate_up_proj_scales", DType::U8, {E, 2 * n, 1}, scales);
    writer.write(dir / "model.safetensors");
    const auto checkpoint = safetensors::Checkpoint::open(dir / "model.safetensors");
    const Weights weights = load_weights(checkpoint);
    const WeightView& up = weights.get("blk.0.ffn_up_exps.weight");
    EXPECT_EQ(up.type, DType::MXFP4);
    EXPECT_EQ(up.shape, (std::vector<std::int64_t>{E, n, 32}));
    const auto expected = mxfp4_from_hf(checkpoint.tensor("model.layers.0.mlp.experts.gate_up_proj_blocks"),
                                        checkpoint.tensor("model.layers.0.mlp.experts.gate_up_proj_scales"), 1, 2, "test");
    EXPECT_EQ(std::memcmp(up.data, expected.bytes.data(), expected.bytes.size()), 0);
    EXPECT_EQ(weights.find("model.layers.0.mlp.experts.gate_up_proj_scales"), nullptr);

    safetensors::Writer lonely;
    lonely.add_tensor("model.layers.2.mlp.experts.down_proj_blocks", DType::U8, {E, 2 * n, 1, 16}, blocks);
    lonely.write(dir / "lonely.safetensors");
    const auto without_scales = safetensors::Checkpoint::open(dir / "lonely.safetensors");
    EXPECT_NE(error_of([&] { load_weights(without_scales); }).find("'model.layers.2.mlp.experts.down_proj_scales' is missing"),
              std::string::npos);
}

TEST(MoeWeights, GgufGptOssNormAliasAndFusedGateUpViews) {
    ScratchDir dir("gguf-moe");
    gguf::Writer writer;
    writer.metadata().set("general.architecture", gguf::Value{std::string("gpt-oss")});
    const auto norm = pattern(1, 1, h, 0.0f), fused = pattern(E, 2 * n, h, 0.0f), fused_bias = pattern(1, E, 2 * n, 0.0f);
    writer.add_tensor("blk.0.post_attention_norm.weight", DType::F32, {h}, bytes_of(norm));
    writer.add_tensor("blk.0.ffn_gate_up_exps.weight", DType::F32, {h, 2 * n, E}, bytes_of(fused));
    writer.add_tensor("blk.0.ffn_gate_up_exps.bias", DType::F32, {2 * n, E}, bytes_of(fused_bias));
    writer.write(dir / "model.gguf");
    const auto file = gguf::File::open(dir / "model.gguf");
    const Weights weights = load_weights(file);
    EXPECT_NE(weights.find("blk.0.ffn_norm.weight"), nullptr);
    const WeightView& gate = weights.get("blk.0.ffn_gate_exps.weight");
    const WeightView& up = weights.get("blk.0.ffn_up_exps.weight");
    EXPECT_EQ(gate.shape, (std::vector<std::int64_t>{E, n, h}));
    ASSERT_EQ(up.slices.size(), static_cast<std::size_t>(E));
    // Expert 2's up rows start n rows into its 2n-row block.
    EXPECT_EQ(at(up.slices[2], 0), fused[static_cast<std::size_t>((2 * 2 * n + n) * h)]);
    EXPECT_EQ(at(gate.slices[1], 3), fused[static_cast<std::size_t>(2 * n * h + 3)]);
    EXPECT_EQ(at(weights.get("blk.0.ffn_up_exps.bias").data, n + 1), fused_bias[static_cast<std::size_t>(2 * n + n + 1)]);
}

}  // namespace
}  // namespace kindred::model

namespace kindred::model {
namespace {

// The committed tiny checkpoints (tools/goldens/moe_models.py): configs parse, every layer's MoE
// tensors bind against them, and gpt-oss's MXFP4 checkpoint holds exactly the dense one's experts.
TEST(MoeWeights, TinyCheckpointsBindAndTheMxfp4ExpertsEqualTheDenseOnes) {
    const std::string root = testing::source_path("tests/goldens/inference/");
    std::vector<std::vector<std::vector<float>>> stacks;  // per checkpoint: gate, up, down of layer 1, dequantized
    for (const char* name : {"tiny-qwen3moe", "tiny-gptoss", "tiny-gptoss-mxfp4"}) {
        SCOPED_TRACE(name);
        const auto checkpoint = safetensors::Checkpoint::open(root + name);
        const ModelConfig config = model_config_from_hf_file(root + name + "/config.json");
        const Weights weights = load_weights(checkpoint);
        MoeWeights moe;
        for (std::int64_t layer = 0; layer < config.num_layers; ++layer) moe = bind_moe_weights(weights, config, layer);
        if (std::string(name) == "tiny-qwen3moe") continue;
        EXPECT_EQ(moe.gate.type, std::string(name).ends_with("mxfp4") ? DType::MXFP4 : DType::F32);
        stacks.push_back({dequantized(moe.gate), dequantized(moe.up), dequantized(moe.down)});
    }
    ASSERT_EQ(stacks.size(), 2u);
    for (std::size_t i = 0; i < 3; ++i) EXPECT_EQ(stacks[0][i], stacks[1][i]) << "projection " << i;
}

}  // namespace
}  // namespace kindred::model

namespace kindred::model {
namespace {

// tools/goldens/moe_gguf.py lays the tiny checkpoints out as llama.cpp's converter does (gpt-oss:
// MXFP4 experts, post_attention_norm, attn_sinks.weight, split gate/up). Both paths must describe
// and bind the same model: the config's MoE, window and rope fields, every tensor under the same
// name with the same values, and every layer's expert stacks, router and biases.
TEST(MoeWeights, GgufAndSafetensorsBindTheSameModel) {
    const std::string root = testing::source_path("tests/goldens/inference/");
    for (const auto& [gguf_name, hf_name] : {std::pair{"tiny-qwen3moe.gguf", "tiny-qwen3moe"},
                                             std::pair{"tiny-gptoss.gguf", "tiny-gptoss"}}) {
        SCOPED_TRACE(gguf_name);
        const auto file = gguf::File::open(root + gguf_name);
        const auto checkpoint = safetensors::Checkpoint::open(root + hf_name);
        const ModelConfig from_gguf = model_config_from_gguf(file);
        const ModelConfig from_hf = model_config_from_hf_file(root + hf_name + "/config.json");
        EXPECT_EQ(from_gguf.architecture, from_hf.architecture);
        EXPECT_EQ(from_gguf.num_experts, from_hf.num_experts);
        EXPECT_EQ(from_gguf.num_experts_per_token, from_hf.num_experts_per_token);
        EXPECT_EQ(from_gguf.moe_intermediate_size, from_hf.moe_intermediate_size);
        EXPECT_EQ(from_gguf.norm_topk_prob, from_hf.norm_topk_prob);
        EXPECT_EQ(from_gguf.head_dim, from_hf.head_dim);
        EXPECT_EQ(from_gguf.sliding_window, from_hf.sliding_window);
        EXPECT_EQ(from_gguf.layer_types, from_hf.layer_types);
        EXPECT_EQ(from_gguf.attention_sinks, from_hf.attention_sinks);
        EXPECT_EQ(from_gguf.rope_scaling.type, from_hf.rope_scaling.type);
        EXPECT_EQ(from_gguf.rope_scaling.factor, from_hf.rope_scaling.factor);
        EXPECT_EQ(from_gguf.rope_scaling.original_max_position_embeddings,
                  from_hf.rope_scaling.original_max_position_embeddings);
        EXPECT_EQ(from_gguf.rope_scaling.truncate, from_hf.rope_scaling.truncate);
        const Weights gguf_weights = load_weights(file);
        const Weights hf_weights = load_weights(checkpoint);
        for (const auto& [name, view] : gguf_weights.all()) {
            if (name.find("_exps.weight") != std::string::npos) continue;  // compared as bound stacks below
            SCOPED_TRACE(name);
            const WeightView* other = hf_weights.find(name);
            ASSERT_NE(other, nullptr);
            ASSERT_EQ(view.shape, other->shape);
            std::int64_t count = 1;
            for (const auto dim : view.shape) count *= dim;
            std::vector<float> a(static_cast<std::size_t>(count)), b(a.size());
            dequantize_row(view.type, view.data, a.data(), count);
            dequantize_row(other->type, other->data, b.data(), count);
            EXPECT_EQ(a, b);
        }
        for (std::int64_t layer = 0; layer < from_gguf.num_layers; ++layer) {
            const MoeWeights from_gguf_layer = bind_moe_weights(gguf_weights, from_gguf, layer);
            const MoeWeights from_hf_layer = bind_moe_weights(hf_weights, from_hf, layer);
            EXPECT_EQ(dequantized(from_gguf_layer.gate), dequantized(from_hf_layer.gate));
            EXPECT_EQ(dequantized(from_gguf_layer.up), dequantized(from_hf_layer.up));
            EXPECT_EQ(dequantized(from_gguf_layer.down), dequantized(from_hf_layer.down));
            EXPECT_EQ(from_gguf_layer.gate_bias, from_hf_layer.gate_bias);
            EXPECT_EQ(from_gguf_layer.up_bias, from_hf_layer.up_bias);
            EXPECT_EQ(from_gguf_layer.down_bias, from_hf_layer.down_bias);
            EXPECT_EQ(from_gguf_layer.router_bias, from_hf_layer.router_bias);
        }
    }
}

}  // namespace
}  // namespace kindred::model
