// A bf16 checkpoint quantized at load (model/quantize_weights.h): which tensors change type, logits
// and a LoRA training step near the dense model's, the Q4_K -> Q5_0 fallback, expert stacks, and the
// refusals (rows that are not whole blocks, a GGUF that is already quantized). The quantizers'
// bytes are checked against llama.cpp and bitsandbytes in tests/kernels/test_quantize.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "formats/gguf.h"
#include "formats/model_config.h"
#include "formats/safetensors.h"
#include "kernels/dequantize.h"
#include "kernels/nf4_test_util.h"
#include "model/bf16_checkpoint.h"
#include "model/decoder.h"
#include "model/trainable_decoder.h"
#include "scratch_dir.h"
#include "test_paths.h"

namespace kindred::model {
namespace {

constexpr std::int64_t kVocab = 96, kLayers = testing::kBf16Layers;

// The bf16 checkpoint, opened, with its dense (unquantized) decoder.
struct Bf16Llama {
    testing::ScratchDir dir{"kindred-quantize"};
    safetensors::Checkpoint checkpoint;
    ModelConfig config;
    Decoder dense;
    Bf16Llama()
        : checkpoint((testing::write_bf16_llama(dir.path().string(), kVocab), safetensors::Checkpoint::open(dir.path().string()))),
          config(model_config_from_hf_file(dir / "config.json")),
          dense(Decoder::from_checkpoint(checkpoint, config)) {}
};

const std::vector<std::int32_t> kIds = {1, 17, 42, 5, 88, 23, 9, 61, 30, 77, 2, 54};

// Logits of every position: a prefill of half the ids, then one token at a time (the mat-vec path).
std::vector<float> logits_of(Decoder& decoder) {
    const auto vocab = static_cast<std::size_t>(decoder.config().vocab_size);
    KvCache cache(decoder.config(), static_cast<std::int64_t>(kIds.size()));
    std::vector<float> logits(kIds.size() * vocab);
    const std::size_t half = kIds.size() / 2;
    decoder.forward(std::span(kIds).first(half), cache, std::span(logits).first(half * vocab), true);
    for (std::size_t t = half; t < kIds.size(); ++t)
        decoder.forward(std::span(kIds).subspan(t, 1), cache, std::span(logits).subspan(t * vocab, vocab));
    return logits;
}

double relative_rms_error(const std::vector<float>& got, const std::vector<float>& want) {
    double error = 0.0, norm = 0.0;
    for (std::size_t i = 0; i < want.size(); ++i) {
        error += (static_cast<double>(got[i]) - want[i]) * (static_cast<double>(got[i]) - want[i]);
        norm += static_cast<double>(want[i]) * want[i];
    }
    return std::sqrt(error / norm);
}

std::vector<float> dequantized(const WeightView& view) {
    std::int64_t n = 1;
    for (const auto d : view.shape) n *= d;
    std::vector<float> out(static_cast<std::size_t>(n));
    dequantize_row(view.type, view.data, out.data(), n);
    return out;
}

// The dense F32 model over the quantized model's weights dequantized: the quantized decoder must
// compute exactly what its weights say (only fp32 summation order differs: 1e-5 relative RMS).
Decoder dequantized_twin(const Decoder& quantized) {
    Weights weights(quantized.weights().source());
    weights.qk_interleaved = quantized.weights().qk_interleaved;
    for (const auto& [name, view] : quantized.weights().all()) {
        if (!is_quantized(view.type)) {
            weights.add(name, view);
            continue;
        }
        const std::vector<float> values = dequantized(view);
        std::vector<std::uint8_t> bytes(values.size() * sizeof(float));
        std::memcpy(bytes.data(), values.data(), bytes.size());
        weights.add_owned(name, WeightView{DType::F32, view.shape, nullptr, {}}, std::move(bytes));
    }
    return Decoder(quantized.config(), std::move(weights));
}
constexpr double kTwinError = 1e-5;

// Tolerances against the bf16 model. Four bits on Gaussian weights leave a relative RMS error of
// about 1/10 per tensor (16 levels over ~±3σ: a step of ~0.4σ, RMS step/√12 ≈ 0.11σ; Q4_K's
// fitted scale and min and NF4's normal-quantile levels do a little better): measured here
// 0.071 (Q4_K) and 0.092 (NF4) on every tensor. Asserted per tensor: below 0.12 and above 0.02
// (a quantizer that did nothing, or hit the wrong tensor, fails either way). The logits go
// through at most 8 quantized products in series (v/o and gate-up/down per layer, 2 layers), each
// adding an independent relative error e: at most e·√8 relative RMS when nothing dilutes it
// (the unquantized embedding in the residual stream does); measured 0.150 (Q4_K) and 0.177 (NF4)
// against bounds of 0.20 and 0.26. A wrong block order or scale is O(1) off.
constexpr double kWeightErrorMax = 0.12, kWeightErrorMin = 0.02;
constexpr double kProductsInSeries = 8;

class QuantizedBase : public ::testing::TestWithParam<BaseQuantization> {};

TEST_P(QuantizedBase, LinearWeightsChangeTypeAndLogitsStayNearTheDenseModel) {
    Bf16Llama model;
    const std::vector<float> dense_logits = logits_of(model.dense);

    const BaseQuantization quantization = GetParam();
    const DType expected = quantization == BaseQuantization::NF4 ? DType::NF4 : DType::Q4_K;
    std::int64_t reported = 0;
    Decoder quantized = Decoder::from_checkpoint(model.checkpoint, model.config, quantization,
                                                 [&](std::int64_t done, std::int64_t total, const std::string&) {
                                                     EXPECT_EQ(total, 7 * kLayers);
                                                     reported = done;
                                                 });
    EXPECT_EQ(reported, 7 * kLayers);
    double worst_weight_error = 0.0;
    for (const auto& [name, view] : quantized.weights().all()) {
        const bool linear = name.find("attn_norm") == std::string::npos && name.find("ffn_norm") == std::string::npos &&
                            name.starts_with("blk.");
        EXPECT_EQ(view.type, linear ? expected : DType::BF16) << name;  // embeddings, head, norms stay bf16
        if (!linear) continue;
        const double error = relative_rms_error(dequantized(view), dequantized(model.dense.weights().get(name)));
        EXPECT_LT(error, kWeightErrorMax) << name;
        EXPECT_GT(error, kWeightErrorMin) << name;
        worst_weight_error = std::max(worst_weight_error, error);
    }
    const std::vector<float> quantized_logits = logits_of(quantized);
    Decoder twin = dequantized_twin(quantized);
    EXPECT_LT(relative_rms_error(quantized_logits, logits_of(twin)), kTwinError);
    const double error = relative_rms_error(quantized_logits, dense_logits);
    std::printf("%s: weights' relative RMS error up to %.4f, logits' %.4f\n",
                std::string(base_quantization_name(quantization)).c_str(), worst_weight_error, error);
    EXPECT_LT(error, worst_weight_error * std::sqrt(kProductsInSeries));
}

TEST_P(QuantizedBase, LoraTrainsOnTheQuantizedBase) {
    Bf16Llama model;
    Decoder quantized = Decoder::from_checkpoint(model.checkpoint, model.config, GetParam());
    TrainBatch batch;
    batch.tokens = kIds;
    batch.targets.assign(kIds.begin() + 1, kIds.end());
    batch.targets.push_back(kernels::ignore_index);
    LoraConfig lora;
    lora.rank = 4;
    double losses[2] = {};
    int at = 0;
    for (Decoder* base : {&model.dense, &quantized}) {
        LoraAdapters adapters(model.config, lora, base->weights().qk_interleaved);
        TrainableDecoder trainer(*base, adapters, false, 64);
        adapters.zero_grads();
        const auto totals = trainer.forward_backward(batch, 1.0f / static_cast<float>(kIds.size() - 1));
        losses[at++] = totals.loss / static_cast<double>(totals.counted);
        double gradient_norm = 0.0;
        for (const float g : adapters.grads()) {
            ASSERT_TRUE(std::isfinite(g));
            gradient_norm += static_cast<double>(g) * g;
        }
        EXPECT_GT(gradient_norm, 0.0);  // B starts at zero, A's gradient flows through B: B's is not zero
    }
    // Cross-entropy over 96 classes of near-uniform random logits moves far less than the logits'
    // relative error (measured: under 1%); asserted within 5% of the dense model's loss.
    std::printf("loss: bf16 %.5f, quantized %.5f\n", losses[0], losses[1]);
    EXPECT_NEAR(losses[1], losses[0], 0.05 * losses[0]);
}

INSTANTIATE_TEST_SUITE_P(Formats, QuantizedBase, ::testing::Values(BaseQuantization::Q4_K, BaseQuantization::NF4),
                         [](const auto& param_info) { return std::string(base_quantization_name(param_info.param)); });

TEST(QuantizeWeights, Q4KFallsBackToQ5_0ForRowsThatAreNotWholeSuperBlocks) {
    // tiny-llama's rows hold 64 or 160 elements; tiny-qwen3moe's expert stacks 32 (per-expert
    // tensors gathered by views); tiny-gptoss's 32 (dense stacks the loader rearranged into owned
    // copies, which quantizing frees).
    for (const char* name : {"tiny-llama", "tiny-qwen3moe", "tiny-gptoss"}) {
        const std::string path = testing::source_path(std::string("tests/goldens/inference/") + name);
        const auto checkpoint = safetensors::Checkpoint::open(path);
        const ModelConfig config = model_config_from_hf_file(path + "/config.json");
        Decoder dense = Decoder::from_checkpoint(checkpoint, config);
        Decoder quantized = Decoder::from_checkpoint(checkpoint, config, BaseQuantization::Q4_K);
        EXPECT_EQ(quantized.weights().get("blk.0.attn_q.weight").type, DType::Q5_0) << name;
        if (std::string(name) != "tiny-llama") {
            const WeightView& stack = quantized.weights().get("blk.0.ffn_gate_exps.weight");
            EXPECT_EQ(stack.type, DType::Q5_0);
            EXPECT_TRUE(stack.slices.empty());  // gathered into one owned stack
            EXPECT_EQ(quantized.weights().get("blk.0.ffn_gate_inp.weight").type, DType::F32);  // the router stays
        }
        // These tiny models' weights are large (σ 0.2: each product amplifies), so their logits
        // are compared with the dequantized twin only, which checks the Q5_0 plumbing exactly.
        Decoder twin = dequantized_twin(quantized);
        EXPECT_LT(relative_rms_error(logits_of(quantized), logits_of(twin)), kTwinError) << name;
    }
}

TEST(QuantizeWeights, RefusesRowsThatAreNotWholeBlocksNamingTheTensor) {
    const std::string path = testing::source_path("tests/goldens/inference/tiny-llama");
    const auto checkpoint = safetensors::Checkpoint::open(path);
    const ModelConfig config = model_config_from_hf_file(path + "/config.json");
    try {
        Decoder::from_checkpoint(checkpoint, config, BaseQuantization::NF4);
        FAIL() << "NF4 accepted rows of 160 elements";
    } catch (const Error& error) {
        const std::string message = error.what();
        EXPECT_NE(message.find("'blk.0.ffn_down.weight'"), std::string::npos) << message;
        EXPECT_NE(message.find("160"), std::string::npos) << message;
    }
}

TEST(QuantizeWeights, RefusesAGgufThatIsAlreadyQuantized) {
    const auto file = gguf::File::open(testing::default_model_path());
    try {
        Decoder::from_gguf(file, BaseQuantization::NF4);
        FAIL() << "a Q4_1 GGUF was quantized again";
    } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find("already quantized"), std::string::npos) << error.what();
    }
}

// NF4 keeps bitsandbytes' 8-bit absmax codes in memory and the kernels restore each absmax as they
// read it; on real weights (SmolLM2's, the default GGUF's Q4_1 dequantized: rows of 576 and 1536,
// nested groups straddling rows) they must give the bits the fp32-absmax blocks gave, and so the
// same products and perplexity (tests/kernels/nf4_test_util.h).
TEST(QuantizeWeights, Nf4KernelsRestoreTheAbsmaxOfTheFp32BlocksOnRealWeights) {
    const auto file = gguf::File::open(testing::default_model_path());
    const Weights weights = load_weights(file);
    for (const char* name : {"blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.29.ffn_down.weight"}) {
        SCOPED_TRACE(name);
        const WeightView& view = weights.get(name);
        ASSERT_EQ(view.shape.size(), 2u);
        testing::expect_nf4_kernels_restore_fp32_absmax(dequantized(view), view.shape[0], view.shape[1]);
        if (HasFatalFailure()) return;
    }
}

TEST(QuantizeWeights, ParsesTheRecipeSpelling) {
    EXPECT_EQ(parse_base_quantization("q4_k"), BaseQuantization::Q4_K);
    EXPECT_EQ(parse_base_quantization("nf4"), BaseQuantization::NF4);
    EXPECT_EQ(parse_base_quantization("none"), BaseQuantization::None);
    EXPECT_EQ(parse_base_quantization("Q4_K_M"), std::nullopt);
}

}  // namespace
}  // namespace kindred::model
