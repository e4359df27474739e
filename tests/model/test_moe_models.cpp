// Qwen3-MoE and gpt-oss end to end in both decoders, against the goldens of
// tools/goldens/moe_models.py (transformers logits and greedy tokens; PEFT LoRA training with
// adapters on q, k, v, o and on both expert stacks) read from every layout Kindred loads: HF
// safetensors (Qwen3-MoE's per-expert tensors; gpt-oss's dense experts and its released MXFP4
// blocks/scales) and GGUF (tools/goldens/moe_gguf.py: ffn_*_exps stacks, MXFP4 experts). Also:
// how the configs resolve into layer pieces, that sinks, the sliding window and YaRN change the
// logits (so the goldens can catch them), finite differences of the model-level backward through
// the MoE and sink layers, and the inference decoder's expert adapters against the trainer's.
//
// Tolerances. As for the other tiny checkpoints (test_decoder.cpp): 2-3 layers of K ≤ 64 term
// products on logits of magnitude ~1-5, the experts' MXFP4 values exact in fp32; fp32 summation
// order leaves ~1e-6 and 1e-4 absolute is asserted. The router's top-k is a discrete choice, but
// the goldens' routers are spread (moe_models.py) so no choice is within that noise of a tie.
// Training as the tiny goldens of test_trainable_decoder.cpp: loss 1e-5 relative, every gradient
// within 5e-5 of its tensor's largest entry, AdamW-step losses 1e-5 relative.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "formats/gguf.h"
#include "formats/model_config.h"
#include "formats/safetensors.h"
#include "model/decoder.h"
#include "model/lora_adapters.h"
#include "model/trainable_decoder.h"
#include "../kernels/gradient_check.h"
#include "decoder_goldens.h"
#include "test_paths.h"

namespace kindred::model {
namespace {

using nlohmann::json;

constexpr double logit_tolerance = 1e-4;

json read_json(const std::string& relative) {
    std::ifstream in(kindred::testing::source_path(relative));
    if (!in) throw Error("missing golden " + relative);
    return json::parse(in);
}

// A tiny model from one file layout, with the golden it must reproduce.
struct Source {
    const char* file;    // under tests/goldens/inference: a checkpoint directory or a .gguf
    const char* golden;  // the checkpoint directory whose logits.json and LoRA golden apply
};

std::string label(const Source& source) {
    std::string name = source.file;
    std::replace(name.begin(), name.end(), '-', '_');
    std::replace(name.begin(), name.end(), '.', '_');
    return name;
}

struct Loaded {
    std::unique_ptr<gguf::File> file;
    std::unique_ptr<safetensors::Checkpoint> checkpoint;
    std::unique_ptr<Decoder> decoder;
};

Loaded load(const std::string& file, const ModelConfig* override_config = nullptr) {
    const std::string path = kindred::testing::source_path("tests/goldens/inference/" + file);
    Loaded loaded;
    if (file.ends_with(".gguf")) {
        loaded.file = std::make_unique<gguf::File>(gguf::File::open(path));
        loaded.decoder = std::make_unique<Decoder>(Decoder::from_gguf(*loaded.file));
    } else {
        loaded.checkpoint = std::make_unique<safetensors::Checkpoint>(safetensors::Checkpoint::open(path));
        const ModelConfig config = override_config ? *override_config : model_config_from_hf_file(path + "/config.json");
        loaded.decoder = std::make_unique<Decoder>(Decoder::from_checkpoint(*loaded.checkpoint, config));
    }
    return loaded;
}

Decoder& decoder_of(const std::string& file) {
    static std::map<std::string, Loaded> cache;
    auto found = cache.find(file);
    if (found == cache.end()) found = cache.emplace(file, load(file)).first;
    return *found->second.decoder;
}

const Source sources[] = {
    {"tiny-qwen3moe", "tiny-qwen3moe"},     {"tiny-qwen3moe.gguf", "tiny-qwen3moe"},
    {"tiny-qwen3moe-mixed", "tiny-qwen3moe-mixed"}, {"tiny-gptoss", "tiny-gptoss"},
    {"tiny-gptoss-mxfp4", "tiny-gptoss"},   {"tiny-gptoss.gguf", "tiny-gptoss"},
};

class MoeModel : public ::testing::TestWithParam<Source> {};

// Prefill half, then one token at a time: the panel products and the decode mat-vec, the KV cache
// and (gpt-oss) the window of 4 sliding past the first positions.
TEST_P(MoeModel, LogitsMatchTransformers) {
    Decoder& decoder = decoder_of(GetParam().file);
    const json golden = read_json(std::string("tests/goldens/inference/") + GetParam().golden + "/logits.json");
    const auto ids = golden["ids"].get<std::vector<std::int32_t>>();
    const auto vocab = static_cast<std::size_t>(decoder.config().vocab_size);
    KvCache cache(decoder.config(), static_cast<std::int64_t>(ids.size()));
    std::vector<float> logits(ids.size() * vocab);
    const std::size_t half = ids.size() / 2;
    decoder.forward(std::span(ids).first(half), cache, std::span(logits).first(half * vocab), true);
    for (std::size_t t = half; t < ids.size(); ++t)
        decoder.forward(std::span(ids).subspan(t, 1), cache, std::span(logits).subspan(t * vocab, vocab));
    const double worst = worst_difference(logits, golden["logits"]);
    std::printf("%s: worst |logit - transformers| = %.3g\n", GetParam().file, worst);
    EXPECT_LT(worst, logit_tolerance);
}

TEST_P(MoeModel, GreedyTokensMatchTransformers) {
    Decoder& decoder = decoder_of(GetParam().file);
    const json golden = read_json(std::string("tests/goldens/inference/") + GetParam().golden + "/logits.json");
    const auto expected = golden["greedy"].get<std::vector<std::int32_t>>();
    EXPECT_EQ(greedy_tokens(decoder, golden["greedy_prompt"].get<std::vector<std::int32_t>>(), expected.size(), 64),
              expected);
}

INSTANTIATE_TEST_SUITE_P(Layouts, MoeModel, ::testing::ValuesIn(sources),
                         [](const auto& param_info) { return label(param_info.param); });

TEST(MoeModels, ConfigsResolveIntoTheirPieces) {
    const Decoder& oss = decoder_of("tiny-gptoss");
    const ModelSpec& spec = oss.spec();
    ASSERT_EQ(spec.layers.size(), 2u);
    EXPECT_EQ(spec.layers[0].attention.window, 4);  // layer_types: sliding, full
    EXPECT_EQ(spec.layers[1].attention.window, 0);
    for (std::size_t l = 0; l < 2; ++l) {
        const LayerSpec& layer = spec.layers[l];
        EXPECT_TRUE(layer.attention.sinks && layer.attention.bias);
        EXPECT_EQ(layer.mlp.kind, MlpSpec::Kind::MixtureOfExperts);
        EXPECT_EQ(layer.mlp.moe.router, kernels::RouterKind::TopKSoftmax);
        EXPECT_TRUE(layer.mlp.moe.clamped && layer.mlp.moe.interleaved_gate_up);
        EXPECT_NE(oss.layers()[l].sinks, nullptr);
        EXPECT_NE(oss.layers()[l].o_bias, nullptr);
        EXPECT_EQ(oss.layers()[l].moe.gate.experts, 4);
    }
    // YaRN factor 32: cos and sin scaled by 0.1 · ln 32 + 1.
    EXPECT_NEAR(spec.rope.front().attention_factor, 0.1 * std::log(32.0) + 1.0, 1e-6);
    EXPECT_EQ(spec.shape.ff, 0);  // no dense MLP layer: no dense-width buffers

    const ModelSpec& qwen = decoder_of("tiny-qwen3moe").spec();
    EXPECT_EQ(qwen.shape.ff, 0);  // the config's intermediate_size 6144 belongs to no layer
    EXPECT_EQ(qwen.layers[0].mlp.moe.router, kernels::RouterKind::SoftmaxTopK);
    EXPECT_TRUE(qwen.layers[0].mlp.moe.normalize);
    EXPECT_FALSE(qwen.layers[0].attention.sinks);

    const Decoder& mixed = decoder_of("tiny-qwen3moe-mixed");
    EXPECT_EQ(mixed.spec().shape.ff, 48);
    const MlpSpec::Kind kinds[] = {MlpSpec::Kind::MixtureOfExperts, MlpSpec::Kind::DenseGated,
                                   MlpSpec::Kind::MixtureOfExperts};
    for (std::size_t l = 0; l < 3; ++l) EXPECT_EQ(mixed.spec().layers[l].mlp.kind, kinds[l]) << "layer " << l;
    EXPECT_NE(mixed.layers()[1].gate.data, nullptr);
    EXPECT_EQ(mixed.layers()[1].moe.gate.experts, 0);
}

// The goldens can only catch wrong sinks, window, YaRN or sparse-layer choice if each changes the
// logits well beyond the tolerance.
TEST(MoeModels, SinksWindowYarnAndSparseLayersChangeTheLogits) {
    const std::string oss_dir = kindred::testing::source_path("tests/goldens/inference/tiny-gptoss");
    const ModelConfig oss = model_config_from_hf_file(oss_dir + "/config.json");
    const json oss_golden = read_json("tests/goldens/inference/tiny-gptoss/logits.json");
    ModelConfig no_sinks = oss, no_window = oss, no_yarn = oss;
    no_sinks.attention_sinks = false;
    no_window.layer_types.assign(no_window.layer_types.size(), LayerAttention::Full);
    no_yarn.rope_scaling = RopeScaling{};
    for (const ModelConfig* changed : {&no_sinks, &no_window, &no_yarn}) {
        Loaded loaded = load("tiny-gptoss", changed);
        const auto logits = all_logits(*loaded.decoder, oss_golden["ids"].get<std::vector<std::int32_t>>());
        EXPECT_GT(worst_difference(logits, oss_golden["logits"]), 100 * logit_tolerance);
    }
    // The mixed model read as if every layer had experts is refused: layer 1 has none.
    const std::string mixed_dir = kindred::testing::source_path("tests/goldens/inference/tiny-qwen3moe-mixed");
    ModelConfig all_experts = model_config_from_hf_file(mixed_dir + "/config.json");
    all_experts.mlp_only_layers.clear();
    try {
        load("tiny-qwen3moe-mixed", &all_experts);
        FAIL() << "expected an Error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("blk.1.ffn_gate_inp.weight"), std::string::npos) << e.what();
    }
}

// ---- LoRA training against PEFT ----

const std::vector<std::string> moe_targets = {"q", "k", "v", "o", "experts_gate_up", "experts_down"};

// Adapters laid out as the golden's PEFT model, every factor set by the golden's init formula
// (k counts layers outermost, then q, k, v, o, gate_up, down; A before B). Kindred's PEFT names
// must be PEFT's (adapter name "default" removed).
std::unique_ptr<LoraAdapters> golden_adapters(const Decoder& decoder, const json& golden, LoraUse use) {
    LoraConfig lora;
    lora.rank = golden["rank"].get<int>();
    lora.alpha = golden["alpha"].get<double>();
    lora.targets = moe_targets;
    auto adapters = std::make_unique<LoraAdapters>(decoder.config(), lora, decoder.weights().qk_interleaved, use);
    const char* modules[] = {"q", "k", "v", "o", "gate_up", "down"};
    std::int64_t k = 0;
    for (std::int64_t l = 0; l < decoder.config().num_layers; ++l)
        for (const char* module : modules) {
            const std::string key = "layers." + std::to_string(l) + "." + module;
            if (!golden["peft_names"].contains(key + ".A")) continue;  // a dense layer: attention only
            for (const char* which : {".A", ".B"}) {
                std::string name = golden["peft_names"][key + which].get<std::string>();
                name.erase(name.find(".default"), 8);
                const LoraTensorInfo& info = adapters->tensor(name);
                const auto shape = golden["shapes"][key + which].get<std::vector<std::int64_t>>();
                EXPECT_EQ(shape, (std::vector<std::int64_t>{info.rows, info.cols})) << name;
                const double scale = which[1] == 'A' ? 1.0 / std::sqrt(static_cast<double>(info.cols)) : 0.05;
                adapters->set_hf(name, formula_init(k++, info.rows * info.cols, scale));
            }
        }
    EXPECT_EQ(static_cast<std::size_t>(k), adapters->tensors().size());
    return adapters;
}

std::string peft_name(const json& golden, const std::string& key) {
    std::string name = golden["peft_names"][key].get<std::string>();
    return name.erase(name.find(".default"), 8);
}

class MoeTraining : public ::testing::TestWithParam<std::tuple<Source, bool>> {};

TEST_P(MoeTraining, LossGradientsAndAdamWMatchPeft) {
    const auto& [source, checkpoint] = GetParam();
    std::string file = std::string(source.golden) + ".json";
    std::replace(file.begin(), file.end(), '-', '_');
    const json golden = read_json("tests/goldens/lora_training/" + file);
    const Decoder& decoder = decoder_of(source.file);
    auto adapters = golden_adapters(decoder, golden, LoraUse::Training);
    TrainableDecoder trainer(decoder, *adapters, checkpoint, 64);
    const TrainBatch batch = pack(golden["documents"]);
    const auto count = counted(batch);
    adapters->zero_grads();
    const auto totals = trainer.forward_backward(batch, 1.0f / static_cast<float>(count));
    EXPECT_NEAR(totals.loss / static_cast<double>(count), golden["loss"].get<double>(), 1e-5 * golden["loss"].get<double>());
    double worst = 0.0;
    for (const auto& [key, values] : golden["grads"].items()) {
        const auto expected = values.get<std::vector<double>>();
        std::vector<float> ours(expected.size());
        adapters->get_hf(peft_name(golden, key), ours, true);
        const double error = relative_max_error(ours, expected);
        worst = std::max(worst, error);
        EXPECT_LT(error, 5e-5) << key;
    }
    std::printf("%s: worst gradient error %.3g of tensor max\n", source.file, worst);

    const auto& adamw = golden["adamw"];
    kernels::AdamWConfig config;
    config.lr = adamw["lr"].get<double>();
    config.weight_decay = adamw["weight_decay"].get<double>();
    const auto losses = adamw["losses"].get<std::vector<double>>();
    for (std::size_t step = 0; step < losses.size(); ++step) {
        adapters->zero_grads();
        const bool update = step + 1 < losses.size();
        const auto t = update ? trainer.forward_backward(batch, 1.0f / static_cast<float>(count)) : trainer.loss_only(batch);
        EXPECT_LT(std::fabs(t.loss / static_cast<double>(count) - losses[step]) / losses[step], 1e-5) << "step " << step;
        if (update) adapters->adamw_step(config, static_cast<std::int64_t>(step + 1));
    }
}

const Source training_sources[] = {{"tiny-qwen3moe", "tiny-qwen3moe"},
                                   {"tiny-qwen3moe.gguf", "tiny-qwen3moe"},
                                   {"tiny-qwen3moe-mixed", "tiny-qwen3moe-mixed"},
                                   {"tiny-gptoss", "tiny-gptoss"},
                                   {"tiny-gptoss.gguf", "tiny-gptoss"}};

INSTANTIATE_TEST_SUITE_P(Layouts, MoeTraining, ::testing::Combine(::testing::ValuesIn(training_sources), ::testing::Bool()),
                         [](const auto& param_info) {
                             return label(std::get<0>(param_info.param)) + (std::get<1>(param_info.param) ? "_Checkpointed" : "");
                         });

// Finite differences of the loss w.r.t. adapter entries. gpt-oss: both expert stacks and q, v of
// both layers (sliding and full, with sinks), through routing, the clamped SwiGLU, the experts'
// biases and the frozen router's weighting. The mixed Qwen3-MoE: its last layer's expert stacks,
// behind the dense layer and the first MoE layer. Top-k routing is piecewise constant: a step
// that moves some token's router input across a tie makes the loss jump, and in the mixed model
// a step of 1e-2 on a layer-0 adapter does (measured: numeric 7.9, analytic 1.3, while the same
// analytic gradients match PEFT to 3e-6 of each tensor's maximum in LossGradientsAndAdamWMatchPeft),
// so there only adapters whose perturbation reaches no router are differenced. Step and
// tolerances as for the tiny Llama (test_trainable_decoder.cpp): fp32 loss noise ~4e-4 after
// dividing by the step, asserted 2e-3 absolute + 5e-3 relative.
TEST(MoeModels, BackwardMatchesFiniteDifferences) {
    for (const char* model : {"tiny-gptoss", "tiny-qwen3moe-mixed"}) {
        const bool mixed = std::string(model) == "tiny-qwen3moe-mixed";
        const Decoder& decoder = decoder_of(model);
        std::string file = std::string(model) + ".json";
        std::replace(file.begin(), file.end(), '-', '_');
        const json golden = read_json("tests/goldens/lora_training/" + file);
        auto adapters = golden_adapters(decoder, golden, LoraUse::Training);
        const TrainBatch batch = pack(golden["documents"]);
        TrainableDecoder trainer(decoder, *adapters, false, 64);
        adapters->zero_grads();
        trainer.forward_backward(batch, 1.0f);
        const kindred::testing::GradientCheckOptions options{1e-2, 2e-3, 5e-3};  // step, absolute, relative
        for (const auto& info : adapters->tensors()) {
            const bool experts = is_expert_module(info.module);
            if (mixed ? !experts || info.layer != 2 : !experts && info.module != LoraModule::Q && info.module != LoraModule::V)
                continue;
            const std::int64_t stride = info.rows * info.cols / 6;  // 6 entries spread over the tensor
            for (std::int64_t i = 0; i < 6; ++i) {
                float* param = adapters->params().data() + info.offset + i * stride;
                const float* grad = adapters->grads().data() + info.offset + i * stride;
                const auto result = kindred::testing::check_gradient(std::span<float>(param, 1), std::span<const float>(grad, 1),
                                                                     [&] { return trainer.loss_only(batch).loss; }, options);
                EXPECT_TRUE(result.passed()) << model << " " << info.name << "[" << i * stride << "]: " << result.describe();
            }
        }
    }
}

// The inference decoder applies the same expert adapters as the trainer: its logits' NLL over a
// document equals the training loss.
TEST(MoeModels, InferenceAdaptersMatchTheTrainer) {
    for (const char* model : {"tiny-gptoss", "tiny-qwen3moe"}) {
        Loaded loaded = load(model);
        std::string file = std::string(model) + ".json";
        std::replace(file.begin(), file.end(), '-', '_');
        const json golden = read_json("tests/goldens/lora_training/" + file);
        auto training = golden_adapters(*loaded.decoder, golden, LoraUse::Training);
        auto inference = golden_adapters(*loaded.decoder, golden, LoraUse::Inference);
        const auto& document = golden["documents"][1];
        TrainBatch batch;
        batch.tokens = document["tokens"].get<std::vector<std::int32_t>>();
        batch.targets = document["targets"].get<std::vector<std::int32_t>>();
        TrainableDecoder trainer(*loaded.decoder, *training, false, 64);
        const auto totals = trainer.loss_only(batch);
        loaded.decoder->attach_adapter(inference.get());
        const double nll = mean_nll(all_logits(*loaded.decoder, batch.tokens), batch.tokens, loaded.decoder->config().vocab_size);
        // Same numbers, two summation orders (fused CE vs full logits): 1e-5 relative.
        EXPECT_NEAR(nll, totals.loss / static_cast<double>(totals.counted), 1e-5 * nll) << model;
        loaded.decoder->attach_adapter(nullptr);
        const double base = mean_nll(all_logits(*loaded.decoder, batch.tokens), batch.tokens, loaded.decoder->config().vocab_size);
        EXPECT_GT(std::fabs(base - nll), 1e-3) << model << ": the adapters must change the model";
    }
}

// Adapters from layer 2 of the mixed Qwen3-MoE (layers 0 and 2 mixture-of-experts, 1 dense;
// adapter.first_layer = 2, every module targeted): each starts as the full set's does (the init
// stream counts the adapters the lower layers would have had, 6 and 7 here, not 2 · 9), the loss
// and layer 2's gradients are bit-identical to full adapters whose lower B are zero (an exact 0
// added), and a forward from the cached residual entering layer 2 gives the same again.
TEST(MoeModels, FrozenLowerLayersMatchFullAdaptersAndTheResidualCache) {
    const Decoder& decoder = decoder_of("tiny-qwen3moe-mixed");
    const json golden = read_json("tests/goldens/lora_training/tiny_qwen3moe_mixed.json");
    LoraConfig config;
    config.rank = golden["rank"].get<int>();
    config.alpha = golden["alpha"].get<double>();
    config.targets = {"q", "k", "v", "o", "gate", "up", "down", "experts_gate_up", "experts_down"};
    config.seed = 7;
    LoraAdapters full(decoder.config(), config, decoder.weights().qk_interleaved);
    config.first_layer = 2;
    LoraAdapters upper(decoder.config(), config, decoder.weights().qk_interleaved);
    ASSERT_EQ(full.tensors().size(), 2u * (6 + 7 + 6));
    ASSERT_EQ(upper.tensors().size(), 2u * 6);
    EXPECT_FALSE(upper.adapts(0, LoraModule::ExpertsDown));
    EXPECT_FALSE(upper.adapts(1, LoraModule::Q));
    EXPECT_TRUE(upper.adapts(2, LoraModule::ExpertsDown));
    EXPECT_FALSE(upper.adapts(2, LoraModule::Gate));  // layer 2's MLP is the experts
    std::int64_t k = 0;
    for (const auto& info : upper.tensors()) {
        std::vector<float> expected(static_cast<std::size_t>(info.rows * info.cols)), ours(expected.size());
        full.get_hf(info.name, expected);
        upper.get_hf(info.name, ours);
        EXPECT_EQ(ours, expected) << info.name;
        if (!info.is_b) continue;
        const auto values = formula_init(k++, info.rows * info.cols, 0.05);  // B nonzero, so A has gradients
        full.set_hf(info.name, values);
        upper.set_hf(info.name, values);
    }

    expect_frozen_lower_layers_match(decoder, full, upper, pack(golden["documents"]), 2);
}

TEST(MoeModels, ExpertAdaptersAreRefusedWhereTheyCannotApply) {
    const Decoder& qwen = decoder_of("tiny-qwen3moe");
    LoraConfig dense;  // the default targets include gate, up, down: no layer here has them
    EXPECT_THROW(LoraAdapters(qwen.config(), dense, false), Error);
    LoraConfig dropout;
    dropout.targets = moe_targets;
    dropout.dropout = 0.1;  // PEFT's ParamWrapper refuses it
    try {
        LoraAdapters adapters(qwen.config(), dropout, false);
        FAIL() << "expected an Error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("adapter.dropout"), std::string::npos) << e.what();
    }
    LoraConfig big;
    big.targets = {"experts_down"};
    big.rank = 33;  // an expert is 32 wide
    EXPECT_THROW(LoraAdapters(qwen.config(), big, false), Error);
    // Expert stacks on a dense model, and an adapter made for another model's experts.
    const ModelConfig llama = model_config_from_hf_file(
        kindred::testing::source_path("tests/goldens/inference/tiny-llama/config.json"));
    LoraConfig down;
    down.targets = {"experts_down"};
    EXPECT_THROW(LoraAdapters(llama, down, false), Error);
    ModelConfig other = qwen.config();
    other.num_experts = 8;
    const LoraAdapters wrong(other, down, false, LoraUse::Inference);
    Loaded loaded = load("tiny-qwen3moe");
    EXPECT_THROW(loaded.decoder->attach_adapter(&wrong), Error);
}

}  // namespace
}  // namespace kindred::model
