// Tests for model/trainable_decoder.h and model/lora_adapters.h: LoRA training against PyTorch +
// PEFT goldens (tools/goldens/lora_training.py) on the random tiny Llama and on SmolLM2 from the
// default GGUF; the model-level backward against finite differences; activation checkpointing
// on/off; packing against documents one by one; an overfitting run; error handling.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "formats/gguf.h"
#include "formats/model_config.h"
#include "formats/safetensors.h"
#include "kernels/matmul.h"
#include "model/decoder.h"
#include "model/lora_adapters.h"
#include "model/trainable_decoder.h"
#include "../kernels/gradient_check.h"
#include "decoder_goldens.h"
#include "test_paths.h"

namespace kindred::model {
namespace {

using nlohmann::json;
using kindred::testing::formula_init;
using kindred::testing::relative_max_error;

json read_golden(const std::string& name) {
    std::ifstream in(kindred::testing::source_path("tests/goldens/lora_training/" + name));
    if (!in) throw Error("missing golden " + name);
    return json::parse(in);
}

struct Tiny {
    safetensors::Checkpoint checkpoint;
    std::unique_ptr<Decoder> decoder;
    explicit Tiny(const std::string& directory)
        : checkpoint(safetensors::Checkpoint::open(directory)),
          decoder(std::make_unique<Decoder>(
              Decoder::from_checkpoint(checkpoint, model_config_from_hf_file(directory + "/config.json")))) {}
};

// The random tiny models of tests/goldens/inference (HF layout: q/k rows not interleaved).
Tiny& tiny(const std::string& name = "tiny-llama") {
    static std::map<std::string, std::unique_ptr<Tiny>> models;
    auto& model = models[name];
    if (!model) model = std::make_unique<Tiny>(kindred::testing::source_path("tests/goldens/inference/" + name));
    return *model;
}

std::unique_ptr<LoraAdapters> tiny_golden_adapters(const json& golden, const std::string& model = "tiny-llama") {
    LoraConfig config;
    config.rank = golden["rank"].get<int>();
    config.alpha = golden["alpha"].get<double>();
    auto adapters = std::make_unique<LoraAdapters>(tiny(model).decoder->config(), config, false);
    for (const auto& [name, values] : golden["init"].items()) adapters->set_hf(name, values.get<std::vector<float>>());
    return adapters;
}

// Tiny golden tolerances. Both sides compute in fp32 over K <= 160 term sums in 2 layers, so the
// loss agrees to ~1e-6 relative; gradients go through the same ops backwards (attention softmax,
// RMSNorm, fused CE over 96 classes) and differ only by summation order (measured: 3.8e-6 of each
// tensor's largest entry). We assert 1e-5 relative for the loss and 5e-5 of the tensor maximum for
// gradients (~10x margin for other BLAS kernels). The AdamW losses compound 5 steps whose update
// direction m/sqrt(v) barely moves under such gradient noise (measured 2.9e-7): asserted 1e-5.
// tiny-qwen3 adds per-head q/k norms, q/k/v/o biases and head_dim != hidden / heads; tiny-gemma3
// Gemma 3's sandwich norms, GeGLU, embedding scale and sliding layers with their own rope base.
class TinyGolden : public ::testing::TestWithParam<std::tuple<const char*, bool>> {};

TEST_P(TinyGolden, LossGradientsAndAdamWMatchPeft) {
    const std::string model = std::get<0>(GetParam());
    std::string file = model + ".json";
    std::replace(file.begin(), file.end(), '-', '_');
    const json golden = read_golden(file);
    auto adapters = tiny_golden_adapters(golden, model);
    TrainableDecoder trainer(*tiny(model).decoder, *adapters, std::get<1>(GetParam()), 64);
    const TrainBatch batch = pack(golden["documents"]);
    const auto count = counted(batch);
    adapters->zero_grads();
    const auto totals = trainer.forward_backward(batch, 1.0f / static_cast<float>(count));
    EXPECT_EQ(totals.counted, count);
    EXPECT_NEAR(totals.loss / static_cast<double>(count), golden["loss"].get<double>(), 1e-5 * golden["loss"].get<double>());

    double worst = 0.0;
    for (const auto& [name, values] : golden["grads"].items()) {
        const auto expected = values.get<std::vector<double>>();
        std::vector<float> ours(expected.size());
        adapters->get_hf(name, ours, true);
        const double error = relative_max_error(ours, expected);
        worst = std::max(worst, error);
        EXPECT_LT(error, 5e-5) << name;
    }
    std::printf("%s golden: worst gradient error %.3g of tensor max\n", model.c_str(), worst);

    const auto& adamw = golden["adamw"];
    kernels::AdamWConfig config;
    config.lr = adamw["lr"].get<double>();
    config.weight_decay = adamw["weight_decay"].get<double>();
    const auto losses = adamw["losses"].get<std::vector<double>>();
    double worst_step = 0.0;
    for (std::size_t step = 0; step < losses.size(); ++step) {
        adapters->zero_grads();
        const bool update = step + 1 < losses.size();
        const auto t = update ? trainer.forward_backward(batch, 1.0f / static_cast<float>(count)) : trainer.loss_only(batch);
        const double error = std::fabs(t.loss / static_cast<double>(count) - losses[step]) / losses[step];
        worst_step = std::max(worst_step, error);
        EXPECT_LT(error, 1e-5) << "step " << step;
        if (update) adapters->adamw_step(config, static_cast<std::int64_t>(step + 1));
    }
    std::printf("%s golden: worst AdamW-step loss error %.3g relative\n", model.c_str(), worst_step);
}

INSTANTIATE_TEST_SUITE_P(Models, TinyGolden,
                         ::testing::Combine(::testing::Values("tiny-llama", "tiny-qwen3", "tiny-gemma3"), ::testing::Bool()),
                         [](const auto& param_info) {
                             std::string label = std::get<0>(param_info.param);
                             label.erase(std::remove(label.begin(), label.end(), '-'), label.end());
                             return label + (std::get<1>(param_info.param) ? "_Checkpointed" : "");
                         });

// With and without LoRA dropout: the recomputation runs the same kernels on the same inputs and
// draws the same counter-based dropout masks, so the results are bit-identical.
TEST(TrainableDecoder, CheckpointingGivesIdenticalGradients) {
    const json golden = read_golden("tiny_llama.json");
    const TrainBatch batch = pack(golden["documents"]);
    for (const double dropout : {0.0, 0.25}) {
        std::vector<std::vector<float>> grads;
        std::vector<std::vector<float>> input_grads;
        std::vector<double> losses;
        for (const bool checkpoint : {false, true}) {
            LoraConfig lora;
            lora.rank = golden["rank"].get<int>();
            lora.alpha = golden["alpha"].get<double>();
            lora.dropout = dropout;
            LoraAdapters adapters(tiny().decoder->config(), lora, false);
            for (const auto& [name, values] : golden["init"].items()) adapters.set_hf(name, values.get<std::vector<float>>());
            TrainableDecoder trainer(*tiny().decoder, adapters, checkpoint, 64);
            adapters.zero_grads();
            losses.push_back(trainer.forward_backward(batch, 0.1f).loss);
            if (dropout > 0) {
                EXPECT_NE(losses.back(), trainer.loss_only(batch).loss);  // the masks did something
            }
            grads.emplace_back(adapters.grads().begin(), adapters.grads().end());
            input_grads.emplace_back(trainer.input_gradient().begin(), trainer.input_gradient().end());
        }
        EXPECT_EQ(losses[0], losses[1]) << "dropout " << dropout;
        EXPECT_EQ(grads[0], grads[1]) << "dropout " << dropout;
        EXPECT_EQ(input_grads[0], input_grads[1]) << "dropout " << dropout;
    }
}

// In bf16 on AMX a trainer packs its frozen weights once; a second trainer made on the same base
// while the first lives takes the same packings instead of a second copy (a DPO run's policy and
// reference scorer), and one made after the others are gone packs again.
TEST(TrainableDecoder, TrainersOnOneBaseShareTheirBf16Packings) {
    if (kernels::effective_precision(kernels::Precision::BF16) != kernels::Precision::BF16)
        GTEST_SKIP() << "this CPU or build has no AMX-BF16";
    const json golden = read_golden("tiny_llama.json");
    LoraConfig lora;
    lora.rank = golden["rank"].get<int>();
    LoraAdapters adapters(tiny().decoder->config(), lora, false);
    const kernels::Precision bf16 = kernels::Precision::BF16;
    std::int64_t bytes = 0;
    {
        const TrainableDecoder policy(*tiny().decoder, adapters, false, 64, bf16);
        const TrainableDecoder scorer(*tiny().decoder, adapters, false, 64, bf16);
        bytes = policy.packed_weight_bytes();
        EXPECT_GT(bytes, 0);
        EXPECT_TRUE(policy.shares_packings_with(scorer));
        const TrainableDecoder fp32(*tiny().decoder, adapters, false, 64);
        EXPECT_EQ(fp32.packed_weight_bytes(), 0);
        EXPECT_FALSE(fp32.shares_packings_with(policy));
    }
    const TrainableDecoder later(*tiny().decoder, adapters, false, 64, bf16);
    EXPECT_EQ(later.packed_weight_bytes(), bytes);
}

// Adapters on layer 1 only (adapter.first_layer = 1, PEFT's layers_to_transform = [1]) train
// exactly what full adapters whose layer-0 B is zero train there (B = 0 adds an exact 0 to layer
// 0's outputs), and a forward from the cached residual entering layer 1 (the frozen-layer cache,
// train/frozen_cache.h) computes what the forward from the tokens computes: losses and layer-1
// gradients bit-identical.
TEST(TrainableDecoder, FrozenLowerLayersMatchFullAdaptersAndTheResidualCache) {
    const json golden = read_golden("tiny_llama.json");
    const TrainBatch batch = pack(golden["documents"]);
    auto full = tiny_golden_adapters(golden);
    LoraConfig upper_config;
    upper_config.rank = golden["rank"].get<int>();
    upper_config.alpha = golden["alpha"].get<double>();
    upper_config.first_layer = 1;
    LoraAdapters upper(tiny().decoder->config(), upper_config, false);
    ASSERT_EQ(upper.tensors().size() * 2, full->tensors().size());
    for (const auto& info : full->tensors()) {
        if (info.layer == 0 && info.is_b) full->set_hf(info.name, std::vector<float>(static_cast<std::size_t>(info.rows * info.cols), 0.0f));
        if (info.layer == 1) upper.set_hf(info.name, golden["init"][info.name].get<std::vector<float>>());
    }
    EXPECT_EQ(upper.a(0, LoraModule::Q), nullptr);
    EXPECT_FALSE(upper.adapts(0, LoraModule::Q));
    EXPECT_TRUE(upper.adapts(1, LoraModule::Q));

    TrainBatch cached = expect_frozen_lower_layers_match(*tiny().decoder, *full, upper, batch, 1);

    TrainableDecoder upper_trainer(*tiny().decoder, upper, false, 64);
    EXPECT_THROW(upper_trainer.input_gradient(), Error);  // the backward stops at layer 1
    EXPECT_THROW(upper_trainer.residual_entering(batch, 2), Error);   // above the adapters' first layer
    EXPECT_THROW(upper_trainer.residual_entering(cached, 1), Error);  // a batch of residuals, not tokens
    cached.residual.pop_back();
    EXPECT_THROW(upper_trainer.forward(cached), Error);
    upper_config.first_layer = 3;  // the model has 2 layers
    EXPECT_THROW(LoraAdapters(tiny().decoder->config(), upper_config, false), Error);
}

// forward() + a caller's loss + backward() is what forward_backward computes when the caller's
// loss is the same fused cross-entropy: same kernels, same order, bit-identical gradients.
TEST(TrainableDecoder, HiddenStateInterfaceMatchesForwardBackward) {
    const json golden = read_golden("tiny_llama.json");
    const TrainBatch batch = pack(golden["documents"]);
    auto adapters = tiny_golden_adapters(golden);
    TrainableDecoder trainer(*tiny().decoder, *adapters, false, 64);
    adapters->zero_grads();
    const double loss = trainer.forward_backward(batch, 0.5f).loss;
    const std::vector<float> expected(adapters->grads().begin(), adapters->grads().end());

    adapters->zero_grads();
    const auto hidden = trainer.forward(batch);
    const ModelConfig& config = tiny().decoder->config();
    std::vector<float> dhidden(hidden.size(), 0.0f);
    kernels::FusedCrossEntropyShape shape;
    shape.tokens = static_cast<std::int64_t>(batch.tokens.size());
    shape.dim = config.hidden_size;
    shape.vocab = config.vocab_size;
    const auto totals = kernels::fused_cross_entropy(dhidden.data(), nullptr, hidden.data(),
                                                     kernels::weight_rows(tiny().decoder->output()),
                                                     batch.targets.data(), nullptr, shape, 0.5f);
    trainer.backward(dhidden);
    EXPECT_EQ(totals.loss, loss);
    EXPECT_EQ(std::vector<float>(adapters->grads().begin(), adapters->grads().end()), expected);
    EXPECT_THROW(trainer.backward(dhidden), Error);  // the forward was consumed
    trainer.forward(batch);
    dhidden.pop_back();
    EXPECT_THROW(trainer.backward(dhidden), Error);
}

TEST(TrainableDecoder, PackingMatchesDocumentsOneByOne) {
    const json golden = read_golden("tiny_llama.json");
    const TrainBatch packed = pack(golden["documents"]);
    auto adapters = tiny_golden_adapters(golden);
    TrainableDecoder trainer(*tiny().decoder, *adapters, false, 64);
    adapters->zero_grads();
    const double packed_loss = trainer.forward_backward(packed, 1.0f).loss;
    const std::vector<float> packed_grads(adapters->grads().begin(), adapters->grads().end());

    adapters->zero_grads();
    double separate_loss = 0.0;
    for (const auto& doc : golden["documents"]) {
        TrainBatch single;
        single.tokens = doc["tokens"].get<std::vector<std::int32_t>>();
        single.targets = doc["targets"].get<std::vector<std::int32_t>>();
        separate_loss += trainer.forward_backward(single, 1.0f).loss;
    }
    // Same products over the same rows; only sgemm blocking over a different row count differs.
    EXPECT_NEAR(packed_loss, separate_loss, 1e-5 * separate_loss);
    const auto grads = adapters->grads();
    double largest = 0.0, worst = 0.0;
    for (std::size_t i = 0; i < grads.size(); ++i) {
        largest = std::max(largest, static_cast<double>(std::fabs(grads[i])));
        worst = std::max(worst, static_cast<double>(std::fabs(grads[i] - packed_grads[i])));
    }
    EXPECT_LT(worst, 1e-5 * largest);
}

// Finite differences of the model's loss w.r.t. a few entries of several adapter tensors, with
// step 1e-2 (see gradient_check.h). The summed loss is ~60 computed through fp32 activations, so
// one evaluation carries ~60 · 6e-8 absolute rounding noise, i.e. ~4e-4 after dividing by the
// step (measured max abs error: 3.7e-4); curvature terms are smaller for these bilinear
// parameters. Asserted: 2e-3 absolute + 5e-3 relative.
TEST(TrainableDecoder, BackwardMatchesFiniteDifferences) {
    const json golden = read_golden("tiny_llama.json");
    const TrainBatch batch = pack(golden["documents"]);
    auto adapters = tiny_golden_adapters(golden);
    TrainableDecoder trainer(*tiny().decoder, *adapters, false, 64);
    adapters->zero_grads();
    trainer.forward_backward(batch, 1.0f);
    kindred::testing::GradientCheckOptions options;
    options.step = 1e-2;
    options.abs_tolerance = 2e-3;
    options.rel_tolerance = 5e-3;
    for (const auto& [layer, module, is_b] : {std::tuple{0, LoraModule::Q, false}, std::tuple{0, LoraModule::K, true},
                                              std::tuple{1, LoraModule::O, true}, std::tuple{1, LoraModule::Down, false},
                                              std::tuple{0, LoraModule::Gate, true}, std::tuple{1, LoraModule::V, false}}) {
        float* param = is_b ? adapters->b(layer, module) : adapters->a(layer, module);
        float* grad = is_b ? adapters->grad_b(layer, module) : adapters->grad_a(layer, module);
        const auto result = kindred::testing::check_gradient(std::span<float>(param, 6), std::span<const float>(grad, 6),
                                                             [&] { return trainer.loss_only(batch).loss; }, options);
        std::printf("finite differences, layer %d module %d %s: %s\n", layer, static_cast<int>(module), is_b ? "B" : "A",
                    result.describe().c_str());
        EXPECT_TRUE(result.passed()) << "layer " << layer << " module " << static_cast<int>(module) << " B " << is_b
                                     << ": " << result.describe();
    }
}

// Four short fixed "conversations" (prompt tokens masked, replies trained) on the tiny model from
// PEFT's default init (B = 0): the adapters must be able to memorise them.
TEST(TrainableDecoder, OverfitsFourConversations) {
    std::mt19937 rng(5);
    std::uniform_int_distribution<std::int32_t> token(3, 95);
    TrainBatch batch;
    for (std::int32_t doc = 0; doc < 4; ++doc) {
        const int length = 12;
        for (int i = 0; i < length; ++i) {
            batch.tokens.push_back(i == 0 ? 1 : token(rng));
            batch.positions.push_back(i);
            batch.segment_ids.push_back(doc);
        }
        for (int i = 0; i < length; ++i) {
            const bool reply = i >= 4 && i + 1 < length;
            batch.targets.push_back(reply ? batch.tokens[batch.tokens.size() - static_cast<std::size_t>(length) +
                                                         static_cast<std::size_t>(i) + 1]
                                          : -100);
        }
    }
    LoraConfig lora;
    lora.rank = 8;
    lora.alpha = 16;
    lora.seed = 3;
    LoraAdapters adapters(tiny().decoder->config(), lora, false);
    TrainableDecoder trainer(*tiny().decoder, adapters, true, 64);
    const auto count = static_cast<float>(counted(batch));
    kernels::AdamWConfig adamw;
    adamw.lr = 1e-2;
    const double initial = trainer.loss_only(batch).loss / count;
    double loss = initial;
    int steps = 0;
    for (; steps < 300 && loss > 0.1 * initial; ++steps) {
        adapters.zero_grads();
        loss = trainer.forward_backward(batch, 1.0f / count).loss / count;
        adapters.adamw_step(adamw, steps + 1);
    }
    loss = trainer.loss_only(batch).loss / count;
    std::printf("overfit: loss %.4f -> %.4f in %d steps\n", initial, loss, steps);
    EXPECT_LT(loss, 0.1 * initial);
}

TEST(TrainableDecoder, RejectsMalformedBatches) {
    LoraAdapters adapters(tiny().decoder->config(), LoraConfig{}, false);
    TrainableDecoder trainer(*tiny().decoder, adapters, false, 8);
    TrainBatch ok{{1, 2, 3}, {2, 3, -100}, {}, {}, {}, {}};
    EXPECT_NO_THROW(trainer.loss_only(ok));
    TrainBatch bad = ok;
    bad.targets.pop_back();
    EXPECT_THROW(trainer.loss_only(bad), Error);
    bad = ok;
    bad.tokens[1] = 96;
    EXPECT_THROW(trainer.loss_only(bad), Error);
    bad = ok;
    bad.targets[0] = 500;
    EXPECT_THROW(trainer.forward_backward(bad, 1.0f), Error);
    bad = ok;
    bad.segment_ids = {1, 0, 0};
    EXPECT_THROW(trainer.loss_only(bad), Error);
    bad = ok;
    bad.positions = {0, 1, 64};
    EXPECT_THROW(trainer.loss_only(bad), Error);
    bad = TrainBatch{std::vector<std::int32_t>(9, 1), std::vector<std::int32_t>(9, 1), {}, {}, {}, {}};
    EXPECT_THROW(trainer.loss_only(bad), Error);
    LoraConfig unknown;
    unknown.targets = {"q", "lm_head"};
    EXPECT_THROW(LoraAdapters(tiny().decoder->config(), unknown, false), Error);
    EXPECT_THROW(adapters.tensor("nope"), Error);
}

TEST(LoraAdapters, LayoutNamesAndHfPermutation) {
    const ModelConfig& config = tiny().decoder->config();
    LoraConfig lora;
    lora.rank = 2;
    lora.targets = {"q", "down"};
    LoraAdapters plain(config, lora, false), permuted(config, lora, true);
    ASSERT_EQ(plain.tensors().size(), 8u);
    EXPECT_EQ(plain.tensors()[1].name, "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight");
    EXPECT_EQ(plain.tensors()[2].name, "base_model.model.model.layers.0.mlp.down_proj.lora_A.weight");
    EXPECT_EQ(plain.b(0, LoraModule::Q), plain.params().data() + plain.tensors()[1].offset);
    EXPECT_EQ(plain.a(0, LoraModule::K), nullptr);
    // B starts at zero, A is within PEFT's kaiming bound 1/√in.
    const auto& a = plain.tensors()[0];
    for (std::int64_t i = 0; i < a.rows * a.cols; ++i) EXPECT_LE(std::fabs(plain.params()[static_cast<std::size_t>(i)]), 1.0 / 8.0);
    // A q_proj B in HF layout lands with head rows interleaved when the decoder's q rows are.
    const std::string name = "base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight";
    const auto& info = permuted.tensor(name);
    std::vector<float> hf(static_cast<std::size_t>(info.rows * info.cols));
    for (std::size_t i = 0; i < hf.size(); ++i) hf[i] = static_cast<float>(i);
    permuted.set_hf(name, hf);
    const float* b = permuted.b(1, LoraModule::Q);
    const std::int64_t head_dim = config.head_dim;
    EXPECT_EQ(b[2 * 2 + 0], hf[1 * 2 + 0]);                        // row 2 holds HF row 1
    EXPECT_EQ(b[3 * 2 + 1], hf[static_cast<std::size_t>((1 + head_dim / 2) * 2 + 1)]);  // row 3 holds HF row 1 + d/2
    std::vector<float> back(hf.size());
    permuted.get_hf(name, back);
    EXPECT_EQ(back, hf);
}

TEST(LoraAdapters, InferenceAdaptersHoldParametersOnly) {
    const ModelConfig& config = tiny().decoder->config();
    LoraConfig lora;
    lora.rank = 2;
    LoraAdapters training(config, lora, false), inference(config, lora, false, LoraUse::Inference);
    EXPECT_TRUE(training.trainable());
    EXPECT_FALSE(inference.trainable());
    // Same layout and the same seeded init; parameters read and write as for training.
    ASSERT_EQ(inference.params().size(), training.params().size());
    EXPECT_TRUE(std::equal(inference.params().begin(), inference.params().end(), training.params().begin()));
    const std::string name = inference.tensors()[1].name;
    const LoraTensorInfo& info = inference.tensor(name);
    std::vector<float> values(static_cast<std::size_t>(info.rows * info.cols), 0.5f);
    inference.set_hf(name, values);
    std::vector<float> back(values.size());
    inference.get_hf(name, back);
    EXPECT_EQ(back, values);
    EXPECT_EQ(inference.grad_a(0, LoraModule::Q), nullptr);
    EXPECT_THROW(inference.grads(), Error);
    EXPECT_THROW(inference.zero_grads(), Error);
    EXPECT_THROW(inference.get_hf(name, back, true), Error);
    EXPECT_THROW(inference.adamw_step(kernels::AdamWConfig{}, 1), Error);
    EXPECT_THROW(TrainableDecoder(*tiny().decoder, inference, false, 8), Error);
}

// Bounds on Kindred's difference from the PEFT golden: loss (relative), each adapter gradient's
// norm (relative), each full gradient (max error over the tensor's largest entry), and the losses
// after each of the AdamW steps (relative).
struct GoldenTolerances {
    double loss, grad_norm, grad, adamw_loss;
};

void expect_smollm2_matches_peft(kernels::Precision precision, const GoldenTolerances& tolerance) {
    const json golden = read_golden("smollm2.json");
    const auto file = gguf::File::open(kindred::testing::default_model_path());
    const Decoder decoder = Decoder::from_gguf(file);
    LoraConfig lora;
    lora.rank = golden["rank"].get<int>();
    lora.alpha = golden["alpha"].get<double>();
    LoraAdapters adapters(decoder.config(), lora, decoder.weights().qk_interleaved);
    for (std::size_t i = 0; i < adapters.tensors().size(); ++i) {
        const LoraTensorInfo& info = adapters.tensors()[i];
        const double scale = info.is_b ? 0.05 : 1.0 / std::sqrt(static_cast<double>(info.cols));
        adapters.set_hf(info.name, formula_init(static_cast<std::int64_t>(i), info.rows * info.cols, scale));
    }
    TrainableDecoder trainer(decoder, adapters, true, 64, precision);
    const char* label = kernels::precision_name(precision);
    const TrainBatch batch = pack(golden["documents"]);
    const auto count = counted(batch);
    adapters.zero_grads();
    const double loss = trainer.forward_backward(batch, 1.0f / static_cast<float>(count)).loss / static_cast<double>(count);
    EXPECT_NEAR(loss, golden["loss"].get<double>(), tolerance.loss * golden["loss"].get<double>());

    double worst_norm = 0.0;
    for (const auto& [name, norm] : golden["grad_norms"].items()) {
        const auto& info = adapters.tensor(name);
        std::vector<float> ours(static_cast<std::size_t>(info.rows * info.cols));
        adapters.get_hf(name, ours, true);
        double sum = 0.0;
        for (float g : ours) sum += static_cast<double>(g) * g;
        const double error = std::fabs(std::sqrt(sum) - norm.get<double>()) / norm.get<double>();
        worst_norm = std::max(worst_norm, error);
        EXPECT_LT(error, tolerance.grad_norm) << name;
    }
    double worst_full = 0.0;
    for (const auto& [name, values] : golden["grads"].items()) {
        const auto expected = values.get<std::vector<double>>();
        std::vector<float> ours(expected.size());
        adapters.get_hf(name, ours, true);
        const double error = relative_max_error(ours, expected);
        worst_full = std::max(worst_full, error);
        EXPECT_LT(error, tolerance.grad) << name;
    }
    std::printf("smollm2 %s: loss %.6f (golden %.6f, %.3g relative), worst norm error %.3g, worst full-gradient error %.3g\n",
                label, loss, golden["loss"].get<double>(), std::fabs(loss / golden["loss"].get<double>() - 1.0),
                worst_norm, worst_full);

    const auto& adamw = golden["adamw"];
    kernels::AdamWConfig config;
    config.lr = adamw["lr"].get<double>();
    config.weight_decay = adamw["weight_decay"].get<double>();
    const auto losses = adamw["losses"].get<std::vector<double>>();
    double worst_step = 0.0;
    for (std::size_t step = 0; step < losses.size(); ++step) {
        adapters.zero_grads();
        const bool update = step + 1 < losses.size();
        const auto t = update ? trainer.forward_backward(batch, 1.0f / static_cast<float>(count)) : trainer.loss_only(batch);
        const double error = std::fabs(t.loss / static_cast<double>(count) - losses[step]) / losses[step];
        worst_step = std::max(worst_step, error);
        EXPECT_LT(error, tolerance.adamw_loss) << "step " << step;
        if (update) adapters.adamw_step(config, static_cast<std::int64_t>(step + 1));
    }
    std::printf("smollm2 %s: worst AdamW-step loss error %.3g relative\n", label, worst_step);
}

// SmolLM2 tolerances. Kindred runs the Q4_1 weights dequantized on the fly; transformers the same
// values dequantized to fp32, so only fp32 summation order differs (K up to 1536, 30 layers):
// the inference goldens measure ~1e-4 absolute on logits of magnitude 10-30 (~1e-5 relative).
// Measured here: loss 2.2e-6 relative, gradient norms 9.3e-5 relative, full gradients 7.2e-5 of
// the tensor's largest entry, AdamW-step losses 2.9e-6 relative. Asserted with ~10x margin for
// other BLAS kernels and CPUs: 5e-5, 1e-3, 1e-3 and 5e-5.
TEST(SmolLm2Lora, LossGradientsAndAdamWMatchPeft) {
    expect_smollm2_matches_peft(kernels::Precision::F32, {5e-5, 1e-3, 1e-3, 5e-5});
}

// bf16 compute (model.compute_dtype) rounds every frozen product's operands to 8 significant
// bits, which no fp32 tolerance can hold. The yardstick is PyTorch's own bf16: the same PEFT run
// under torch.autocast (smollm2_autocast_bf16.json) lands some distance from the fp32 golden, and
// Kindred's bf16 must land no further, metric by metric. (Measured at 2 threads, attention's and
// LoRA's products in bf16 too: Kindred loss 3.1e-4, gradient norms 4.3e-2, full gradients 4.0e-2,
// AdamW losses 2.1e-3; PyTorch autocast 4.1e-3, 5.2e-2, 4.5e-2, 6.0e-3. With only the frozen
// products in bf16 Kindred measured 1.2e-3, 4.8e-2, 3.7e-2, 1.8e-3, with attention's too 8.8e-4,
// 3.6e-2, 4.5e-2, 3.0e-3: each metric is a worst case over noisy per-tensor errors.) Autocast
// also rounds the products' outputs to bf16, which Kindred keeps in fp32.
TEST(SmolLm2Lora, Bf16ComputeStaysAsNearFp32AsTorchAutocast) {
    if (kernels::effective_precision(kernels::Precision::BF16) != kernels::Precision::BF16)
        GTEST_SKIP() << "this CPU or build has no AMX-BF16";
    const json fp32 = read_golden("smollm2.json");
    const json torch_bf16 = read_golden("smollm2_autocast_bf16.json");
    GoldenTolerances torch_error{};
    torch_error.loss = std::fabs(torch_bf16["loss"].get<double>() / fp32["loss"].get<double>() - 1.0);
    for (const auto& [name, norm] : fp32["grad_norms"].items())
        torch_error.grad_norm = std::max(torch_error.grad_norm,
                                         std::fabs(torch_bf16["grad_norms"][name].get<double>() / norm.get<double>() - 1.0));
    for (const auto& [name, values] : fp32["grads"].items()) {
        const auto theirs = torch_bf16["grads"][name].get<std::vector<double>>();
        const std::vector<float> as_float(theirs.begin(), theirs.end());
        torch_error.grad = std::max(torch_error.grad, relative_max_error(as_float, values.get<std::vector<double>>()));
    }
    const auto losses = fp32["adamw"]["losses"].get<std::vector<double>>();
    const auto torch_losses = torch_bf16["adamw"]["losses"].get<std::vector<double>>();
    for (std::size_t i = 0; i < losses.size(); ++i)
        torch_error.adamw_loss = std::max(torch_error.adamw_loss, std::fabs(torch_losses[i] / losses[i] - 1.0));
    std::printf("torch autocast bf16 vs fp32: loss %.3g, worst norm %.3g, worst full gradient %.3g, AdamW losses %.3g\n",
                torch_error.loss, torch_error.grad_norm, torch_error.grad, torch_error.adamw_loss);
    expect_smollm2_matches_peft(kernels::Precision::BF16, torch_error);
}
}  // namespace
}  // namespace kindred::model
