// Gemma 3 (gemma3_text) on the decoder pieces, beyond the tiny-gemma3 logits and PEFT training
// goldens that tests/model/test_decoder.cpp and test_trainable_decoder.cpp run for every family:
// greedy tokens through the KV cache and the sliding window, final logit soft-capping, GGUF's
// baked-in (1 + w) norm weights, that the window and the local rope base change the result (so the
// goldens can catch them), finite differences through Gemma's layers, and the real Gemma 3 270M
// against transformers (tools/goldens/gemma3_270m.py; skipped when scripts/fetch-gemma3-270m has
// not run).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/dtype.h"
#include "core/error.h"
#include "core/paths.h"
#include "formats/gguf.h"
#include "formats/model_config.h"
#include "formats/safetensors.h"
#include "kernels/softmax.h"
#include "model/decoder.h"
#include "model/trainable_decoder.h"
#include "../kernels/gradient_check.h"
#include "decoder_goldens.h"
#include "test_paths.h"

namespace kindred::model {
namespace {

using nlohmann::json;

json read_json(const std::string& relative) {
    std::ifstream in(kindred::testing::source_path(relative));
    if (!in) throw Error("missing golden " + relative);
    return json::parse(in);
}

const std::string tiny_dir = "tests/goldens/inference/tiny-gemma3";

struct TinyGemma {
    safetensors::Checkpoint checkpoint = safetensors::Checkpoint::open(kindred::testing::source_path(tiny_dir));
    ModelConfig config = model_config_from_hf_file(kindred::testing::source_path(tiny_dir + "/config.json"));
    json golden = read_json(tiny_dir + "/logits.json");
};

TinyGemma& tiny() {
    static TinyGemma model;
    return model;
}

// As for the other tiny checkpoints (test_decoder.cpp): 3 layers of K ≤ 160 term products on
// logits of magnitude ~1-10; fp32 summation order leaves ~1e-6, and 1e-4 is asserted.
constexpr double tiny_tolerance = 1e-4;

TEST(Gemma3, ConfigResolvesIntoGemmaPieces) {
    const Decoder decoder = Decoder::from_checkpoint(tiny().checkpoint, tiny().config);
    const ModelSpec& spec = decoder.spec();
    ASSERT_EQ(spec.layers.size(), 3u);
    EXPECT_EQ(spec.rope.size(), 2u);  // global base 10000 and the sliding layers' 100
    for (const std::size_t l : {0u, 2u}) {
        EXPECT_EQ(spec.layers[l].attention.window, 4);
        EXPECT_EQ(spec.layers[l].attention.rope_table, 1);
    }
    EXPECT_EQ(spec.layers[1].attention.window, 0);
    EXPECT_EQ(spec.layers[1].attention.rope_table, 0);
    EXPECT_EQ(spec.layers[1].norms, NormPlacement::Sandwich);
    EXPECT_EQ(spec.layers[1].mlp.activation, kernels::GateActivation::GeluTanh);
    EXPECT_TRUE(spec.shape.norm_weight_offset);
    EXPECT_FLOAT_EQ(spec.embedding_scale, 8.0f);  // √64
    EXPECT_FLOAT_EQ(spec.attention_scale, static_cast<float>(1.0 / std::sqrt(20.0)));
    EXPECT_NE(decoder.layers()[0].post_attn_norm, nullptr);
    EXPECT_NE(decoder.layers()[0].post_ffn_norm, nullptr);
}

TEST(Gemma3, GreedyTokensThroughTheCacheMatchTransformers) {
    Decoder decoder = Decoder::from_checkpoint(tiny().checkpoint, tiny().config);
    const auto& greedy = tiny().golden["greedy"];
    const auto expected = greedy["generated"].get<std::vector<std::int32_t>>();
    EXPECT_EQ(greedy_tokens(decoder, greedy["prompt"].get<std::vector<std::int32_t>>(), expected.size(), 64), expected);
}

TEST(Gemma3, SoftCappedLogitsMatchTransformersAndTrainingRefusesThem) {
    const json& softcap = tiny().golden["softcap"];
    ModelConfig config = tiny().config;
    config.final_logit_softcapping = softcap["final_logit_softcapping"].get<double>();
    Decoder decoder = Decoder::from_checkpoint(tiny().checkpoint, config);
    const auto logits = all_logits(decoder, tiny().golden["ids"].get<std::vector<std::int32_t>>());
    EXPECT_LT(worst_difference(logits, softcap["logits"]), tiny_tolerance);
    LoraAdapters adapters(config, LoraConfig{}, false);
    EXPECT_THROW(TrainableDecoder(decoder, adapters, false, 8), Error);
}

// llama.cpp's converter stores 1 + w for every Gemma norm (and model_config_from_gguf says so):
// the same weights with the 1 baked in and the offset off are the same model.
TEST(Gemma3, BakedNormWeightsAsInGgufGiveTheSameLogits) {
    Weights weights = load_weights(tiny().checkpoint, Architecture::Gemma3);
    std::vector<std::unique_ptr<std::vector<float>>> baked;
    Weights gguf_style(weights.source());
    for (const auto& [name, view] : weights.all()) {
        if (name.find("norm.weight") == std::string::npos) {
            gguf_style.add(name, view);
            continue;
        }
        ASSERT_EQ(view.type, DType::F32) << name;
        const auto* values = static_cast<const float*>(view.data);
        auto& plus_one = *baked.emplace_back(std::make_unique<std::vector<float>>(values, values + view.shape[0]));
        for (float& v : plus_one) v += 1.0f;
        gguf_style.add(name, WeightView{DType::F32, view.shape, plus_one.data()});
    }
    ModelConfig config = tiny().config;
    config.norm_weight_offset = false;
    Decoder decoder(config, std::move(gguf_style));
    const auto logits = all_logits(decoder, tiny().golden["ids"].get<std::vector<std::int32_t>>());
    // One more rounding of each norm weight (1 + w in fp32) on top of the tiny tolerance's causes.
    EXPECT_LT(worst_difference(logits, tiny().golden["logits"]), tiny_tolerance);
}

// The goldens can only catch a wrong window or local rope base if these change the logits.
TEST(Gemma3, WindowAndLocalRopeBaseChangeTheLogits) {
    const auto ids = tiny().golden["ids"].get<std::vector<std::int32_t>>();
    ModelConfig full = tiny().config;
    full.layer_types.assign(full.layer_types.size(), LayerAttention::Full);
    ModelConfig one_base = tiny().config;
    one_base.rope_local_theta = one_base.rope_theta;
    for (const ModelConfig& changed : {full, one_base}) {
        Decoder decoder = Decoder::from_checkpoint(tiny().checkpoint, changed);
        EXPECT_GT(worst_difference(all_logits(decoder, ids), tiny().golden["logits"]), 100 * tiny_tolerance);
    }
}

// Finite differences of the loss w.r.t. adapter entries in a sliding layer (0) and the full
// layer (1), through the sandwich norms, GeGLU, q/k norms and the window; step and tolerances as
// for the tiny Llama (test_trainable_decoder.cpp): fp32 loss noise ~4e-4 after dividing by the
// step, asserted 2e-3 absolute + 5e-3 relative.
TEST(Gemma3, BackwardMatchesFiniteDifferences) {
    Decoder decoder = Decoder::from_checkpoint(tiny().checkpoint, tiny().config);
    const json golden = read_json("tests/goldens/lora_training/tiny_gemma3.json");
    LoraConfig lora;
    lora.rank = golden["rank"].get<int>();
    lora.alpha = golden["alpha"].get<double>();
    LoraAdapters adapters(tiny().config, lora, false);
    for (const auto& [name, values] : golden["init"].items()) adapters.set_hf(name, values.get<std::vector<float>>());
    const TrainBatch batch = pack(golden["documents"]);
    TrainableDecoder trainer(decoder, adapters, false, 64);
    adapters.zero_grads();
    trainer.forward_backward(batch, 1.0f);
    kindred::testing::GradientCheckOptions options;
    options.step = 1e-2;
    options.abs_tolerance = 2e-3;
    options.rel_tolerance = 5e-3;
    for (const auto& [layer, module, is_b] : {std::tuple{0, LoraModule::Q, true}, std::tuple{0, LoraModule::K, false},
                                              std::tuple{1, LoraModule::O, true}, std::tuple{1, LoraModule::Gate, false},
                                              std::tuple{2, LoraModule::Down, true}, std::tuple{2, LoraModule::V, false}}) {
        float* param = is_b ? adapters.b(layer, module) : adapters.a(layer, module);
        float* grad = is_b ? adapters.grad_b(layer, module) : adapters.grad_a(layer, module);
        const auto result = kindred::testing::check_gradient(std::span<float>(param, 6), std::span<const float>(grad, 6),
                                                             [&] { return trainer.loss_only(batch).loss; }, options);
        EXPECT_TRUE(result.passed()) << "layer " << layer << " module " << static_cast<int>(module) << " B " << is_b
                                     << ": " << result.describe();
    }
}

// ---- the real Gemma 3 270M (Q4_K_M) ----

class Gemma3Real : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        const std::string path = kindred_home() + "/models/" + kGemma3_270mFile;
        if (!std::filesystem::exists(path)) {
            skip_reason_ = "Gemma 3 270M not fetched (scripts/fetch-gemma3-270m)";
            return;
        }
        file_ = new gguf::File(gguf::File::open(path));
        decoder_ = new Decoder(Decoder::from_gguf(*file_));
        golden_ = new json(read_json("tests/goldens/inference/gemma3_270m.json"));
    }
    static void TearDownTestSuite() {
        delete golden_;
        delete decoder_;
        delete file_;
    }
    void SetUp() override {
        if (decoder_ == nullptr) GTEST_SKIP() << skip_reason_;
    }
    static inline std::string skip_reason_;
    static inline gguf::File* file_ = nullptr;
    static inline Decoder* decoder_ = nullptr;
    static inline json* golden_ = nullptr;
};

// Logit tolerance. transformers runs the same dequantized weights in fp32 (norm weights with the
// converter's 1 subtracted and added back: one rounding); the rest is fp32 summation order over
// 18 layers of K = 640..2048 products with activations grown by the √640 embedding scale and
// the sandwich norms. Measured worst difference: printed below; asserted 2e-3 absolute on logits
// of magnitude ~10-40, the SmolLM2 bound (1e-3) doubled for the larger K and activations.
constexpr double real_tolerance = 2e-3;

TEST_F(Gemma3Real, LogitsMatchTransformers) {
    const std::int64_t vocab = decoder_->config().vocab_size;
    double worst = 0.0;
    for (const auto& sequence : (*golden_)["sequences"]) {
        const auto ids = sequence["ids"].get<std::vector<std::int32_t>>();
        const auto logits = all_logits(*decoder_, ids);
        for (std::size_t t = 0; t < ids.size(); ++t) {
            const float* row = logits.data() + t * static_cast<std::size_t>(vocab);
            const auto& position = sequence["positions"][t];
            for (std::size_t i = 0; i < position["head"].size(); ++i)
                worst = std::max(worst, std::fabs(row[i] - position["head"][i].get<double>()));
            const auto top_ids = position["top_ids"].get<std::vector<std::int64_t>>();
            for (std::size_t i = 0; i < top_ids.size(); ++i)
                worst = std::max(worst, std::fabs(row[top_ids[i]] - position["top_values"][i].get<double>()));
            EXPECT_EQ(kernels::argmax(row, vocab), top_ids[0]) << "t=" << t;
        }
    }
    std::printf("gemma3 270m: worst |logit - transformers| = %.3g\n", worst);
    EXPECT_LT(worst, real_tolerance);
}

TEST_F(Gemma3Real, GreedyTokensMatchTransformers) {
    for (const auto& chat : (*golden_)["greedy"]) {
        const auto expected = chat["generated_ids"].get<std::vector<std::int32_t>>();
        EXPECT_EQ(greedy_tokens(*decoder_, chat["prompt_ids"].get<std::vector<std::int32_t>>(), expected.size(), 128),
                  expected)
            << chat["prompt"].get<std::string>();
    }
}

TEST_F(Gemma3Real, PerplexityMatchesTransformers) {
    const json& golden = (*golden_)["perplexity"];
    const auto ids = golden["ids"].get<std::vector<std::int32_t>>();
    const double nll = mean_nll(all_logits(*decoder_, ids), ids, decoder_->config().vocab_size);
    // Logit errors ≤ 2e-3 move a token's NLL by ≤ 4e-3 and the mean less: 2e-3 on the mean NLL.
    std::printf("gemma3 270m: mean NLL %.6f, transformers %.6f\n", nll, golden["mean_nll"].get<double>());
    EXPECT_NEAR(nll, golden["mean_nll"].get<double>(), 2e-3);
}

}  // namespace
}  // namespace kindred::model
