// ModelConfig from HF config.json, checked against the values transformers derives from the same
// files (tests/goldens/configs, written by tools/goldens/safetensors_and_configs.py), and from
// GGUF metadata built in memory per architecture and read from the default model.
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "formats/gguf.h"
#include "formats/model_config.h"
#include "test_paths.h"

namespace kindred {
namespace {

using nlohmann::json;
using testing::source_path;

const char* rope_type_name(RopeScalingType type) {
    switch (type) {
        case RopeScalingType::None: return "none";
        case RopeScalingType::Linear: return "linear";
        case RopeScalingType::Llama3: return "llama3";
        case RopeScalingType::Yarn: return "yarn";
    }
    return "?";
}

json read_json(const std::string& path) {
    std::ifstream in(path);
    return json::parse(in);
}

void expect_matches(const ModelConfig& c, const json& want) {
    const std::string type = want["model_type"];
    EXPECT_STREQ(architecture_name(c.architecture), type == "gemma3_text" ? "gemma3" : type.c_str());
    EXPECT_EQ(c.vocab_size, want["vocab_size"]);
    EXPECT_EQ(c.hidden_size, want["hidden_size"]);
    EXPECT_EQ(c.intermediate_size, want["intermediate_size"]);
    EXPECT_EQ(c.num_layers, want["num_layers"]);
    EXPECT_EQ(c.num_heads, want["num_heads"]);
    EXPECT_EQ(c.num_kv_heads, want["num_kv_heads"]);
    EXPECT_EQ(c.head_dim, want["head_dim"]);
    EXPECT_EQ(c.context_length, want["context_length"]);
    // Exact: both sides parse the same decimal text.
    EXPECT_EQ(c.rms_norm_eps, want["rms_norm_eps"].get<double>());
    EXPECT_EQ(c.rope_theta, want["rope_theta"].get<double>());
    EXPECT_EQ(c.rope_local_theta, want["rope_local_theta"].get<double>());
    const json& rope = want["rope_scaling"];
    EXPECT_EQ(rope_type_name(c.rope_scaling.type), rope["type"].get<std::string>());
    // The oracle lists only the fields of its rope type.
    const std::pair<const char*, double> fields[] = {
        {"factor", c.rope_scaling.factor},
        {"original_max_position_embeddings", static_cast<double>(c.rope_scaling.original_max_position_embeddings)},
        {"low_freq_factor", c.rope_scaling.low_freq_factor},
        {"high_freq_factor", c.rope_scaling.high_freq_factor},
        {"beta_fast", c.rope_scaling.beta_fast},
        {"beta_slow", c.rope_scaling.beta_slow},
        {"attention_factor", c.rope_scaling.attention_factor}};
    for (const auto& [key, actual] : fields) {
        if (rope.contains(key)) {
            EXPECT_EQ(actual, rope[key].get<double>()) << key;
        }
    }
    if (rope.contains("truncate")) {
        EXPECT_EQ(c.rope_scaling.truncate, rope["truncate"].get<bool>());
    }
    EXPECT_EQ(c.tie_word_embeddings, want["tie_word_embeddings"]);
    EXPECT_EQ(c.activation == Activation::Silu ? "silu" : "gelu_tanh", want["activation"].get<std::string>());
    EXPECT_EQ(c.swiglu_limit, want["swiglu_limit"].get<double>());
    EXPECT_EQ(c.swiglu_alpha, want["swiglu_alpha"].get<double>());
    EXPECT_EQ(c.num_experts, want["num_experts"]);
    EXPECT_EQ(c.num_experts_per_token, want["num_experts_per_token"]);
    EXPECT_EQ(c.moe_intermediate_size, want["moe_intermediate_size"]);
    EXPECT_EQ(c.norm_topk_prob, want["norm_topk_prob"]);
    EXPECT_EQ(c.sliding_window, want["sliding_window"]);
    std::vector<std::string> layers;
    for (const auto layer : c.layer_types) layers.push_back(layer == LayerAttention::Sliding ? "sliding" : "full");
    EXPECT_EQ(layers, want["layer_types"].get<std::vector<std::string>>());
    EXPECT_EQ(c.query_pre_attn_scalar, want["query_pre_attn_scalar"].get<double>());
    EXPECT_EQ(c.final_logit_softcapping, want["final_logit_softcapping"].get<double>());
    // Family-implied features, read by the oracle off a model transformers built from the config.
    EXPECT_EQ(c.qk_norm, want["qk_norm"]);
    EXPECT_EQ(c.attention_sinks, want["attention_sinks"]);
    EXPECT_EQ(c.attention_bias, want["attention_bias"]);
    EXPECT_EQ(c.norm_weight_offset, want["norm_weight_offset"]);
    EXPECT_EQ(c.scale_embeddings, want["scale_embeddings"]);
    // Python's x**-0.5 and our 1/sqrt(x) may differ in the last bit.
    EXPECT_DOUBLE_EQ(c.attention_scale(), want["attention_scale"].get<double>());
}

TEST(ModelConfigHf, MatchesTransformersOnEveryGolden) {
    const std::filesystem::path folder = source_path("tests/goldens/configs");
    int checked = 0;
    for (const auto& entry : std::filesystem::directory_iterator(folder)) {
        const std::string name = entry.path().filename().string();
        if (!name.ends_with(".json") || name.ends_with(".expected.json")) continue;
        SCOPED_TRACE(name);
        const std::string stem = name.substr(0, name.size() - 5);
        const ModelConfig config = model_config_from_hf_file(entry.path().string());
        expect_matches(config, read_json((folder / (stem + ".expected.json")).string()));
        ++checked;
    }
    EXPECT_EQ(checked, 11);  // 5 written by config classes + 6 hub-style
}

json golden(const std::string& name) { return read_json(source_path("tests/goldens/configs/" + name + ".json")); }

void expect_error(const json& config, const std::vector<std::string>& phrases) {
    try {
        model_config_from_hf(config, "cfg.json");
        ADD_FAILURE() << "accepted; expected " << phrases.front();
    } catch (const Error& error) {
        const std::string message = error.what();
        EXPECT_NE(message.find("cfg.json"), std::string::npos) << message;
        for (const auto& phrase : phrases) EXPECT_NE(message.find(phrase), std::string::npos) << message;
    }
}

TEST(ModelConfigHf, RejectsUnknownModelTypeAndMissingKeys) {
    json config = golden("qwen3_tiny");
    config["model_type"] = "mistral";
    expect_error(config, {"'mistral'"});
    config.erase("model_type");
    expect_error(config, {"'model_type'"});
    for (const char* key : {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads"}) {
        config = golden("qwen3_tiny");
        config.erase(key);
        expect_error(config, {"missing required key", key});
    }
    config = golden("gemma3_multimodal");
    config.erase("text_config");
    expect_error(config, {"'text_config'"});
    expect_error(json::array(), {"not a JSON object"});
}

TEST(ModelConfigHf, RejectsWrongTypesAndUnsupportedSettings) {
    json config = golden("llama_tiny");
    config["hidden_size"] = "48";
    expect_error(config, {"'hidden_size'", "expected an integer"});
    config = golden("llama_tiny");
    config["rope_parameters"] = {{"rope_type", "dynamic"}, {"factor", 2.0}, {"rope_theta", 10000.0}};
    expect_error(config, {"'dynamic'"});
    config = golden("llama_tiny");
    config["mlp_bias"] = true;
    expect_error(config, {"mlp_bias"});
    config = golden("llama_tiny");
    config["hidden_act"] = "relu";
    expect_error(config, {"'relu'"});
    config = golden("gemma3_text_tiny");
    config["layer_types"][0] = "chunked_attention";
    expect_error(config, {"chunked_attention"});
    config = golden("qwen3_moe_small");
    config["mlp_only_layers"] = {99};
    expect_error(config, {"mlp_only_layers entry = 99"});
    config["mlp_only_layers"] = {"0"};
    expect_error(config, {"mlp_only_layers"});
    config = golden("qwen3_moe_small");
    config["decoder_sparse_step"] = 0;
    expect_error(config, {"decoder_sparse_step = 0"});
}

// transformers' Qwen3MoeDecoderLayer: experts unless listed in mlp_only_layers, and only on layers
// l with (l + 1) a multiple of decoder_sparse_step.
TEST(ModelConfigHf, SparseStepAndMlpOnlyLayersChooseTheMoeLayers) {
    json config = golden("qwen3_moe_small");
    config["num_hidden_layers"] = 6;
    config["decoder_sparse_step"] = 2;
    config["mlp_only_layers"] = {3};
    const ModelConfig parsed = model_config_from_hf(config, "config.json");
    const bool expected[] = {false, true, false, false, false, true};
    for (std::int64_t l = 0; l < 6; ++l) EXPECT_EQ(parsed.moe_layer(l), expected[l]) << "layer " << l;
    EXPECT_FALSE(model_config_from_hf(golden("llama_tiny"), "config.json").moe_layer(0));
}

TEST(ModelConfigHf, ValidateChecksTheNumbers) {
    json config = golden("llama_tiny");
    config["num_key_value_heads"] = 4;  // 6 heads
    expect_error(config, {"not a multiple of num_kv_heads"});
    config = golden("llama_tiny");
    config["num_key_value_heads"] = 12;
    expect_error(config, {"num_kv_heads"});
    config = golden("qwen3_moe_tiny");
    config["num_experts_per_tok"] = 9;  // 8 experts: named by the file's keys
    expect_error(config, {"num_experts_per_tok = 9 is outside [1, 8]"});
    config["num_experts_per_tok"] = 0;
    expect_error(config, {"num_experts_per_tok = 0"});
    config = golden("gpt_oss_tiny");
    config["layer_types"].erase(0);
    expect_error(config, {"layer_types has 3 entries for 4 layers"});
    config = golden("gpt_oss_tiny");
    config["sliding_window"] = 0;
    expect_error(config, {"sliding_window"});
    config = golden("llama_tiny");
    config["num_hidden_layers"] = 1000000000;
    expect_error(config, {"num_hidden_layers"});
    config = golden("llama_tiny");
    config["vocab_size"] = 0;
    expect_error(config, {"vocab_size"});
    config = golden("qwen3_tiny");
    config["head_dim"] = 15;
    expect_error(config, {"head_dim 15 is odd"});
    config = golden("llama_tiny");
    config["rope_parameters"]["high_freq_factor"] = 0.5;
    expect_error(config, {"high_freq_factor"});
}

TEST(ModelConfigHf, FileErrorsNameThePath) {
    EXPECT_THROW(model_config_from_hf_file(source_path("tests/goldens/configs/absent.json")), Error);
    const std::string path = (std::filesystem::temp_directory_path() / "kindred-bad-config.json").string();
    std::ofstream(path) << "{\"model_type\": ";
    try {
        model_config_from_hf_file(path);
        ADD_FAILURE() << "accepted";
    } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find(path), std::string::npos) << error.what();
    }
    std::filesystem::remove(path);
}

// ------------------------------------------------------------------------------------------------
// GGUF

using gguf::Value;

gguf::Metadata base_metadata(const std::string& arch) {
    gguf::Metadata m;
    m.set("general.architecture", Value{std::string(arch)});
    m.set(arch + ".context_length", Value{std::uint32_t{4096}});
    m.set(arch + ".embedding_length", Value{std::uint32_t{64}});
    m.set(arch + ".block_count", Value{std::uint32_t{6}});
    m.set(arch + ".feed_forward_length", Value{std::uint32_t{128}});
    m.set(arch + ".attention.head_count", Value{std::uint32_t{4}});
    m.set(arch + ".attention.head_count_kv", Value{std::uint32_t{2}});
    m.set(arch + ".attention.layer_norm_rms_epsilon", Value{1e-6f});
    m.set(arch + ".rope.freq_base", Value{500000.0f});
    m.set(arch + ".vocab_size", Value{std::uint32_t{256}});
    return m;
}

TEST(ModelConfigGguf, Llama) {
    gguf::Metadata m = base_metadata("llama");
    m.set("llama.rope.dimension_count", Value{std::uint32_t{16}});
    const ModelConfig c = model_config_from_gguf(m, "m.gguf");
    EXPECT_EQ(c.architecture, Architecture::Llama);
    EXPECT_EQ(c.hidden_size, 64);
    EXPECT_EQ(c.num_layers, 6);
    EXPECT_EQ(c.num_heads, 4);
    EXPECT_EQ(c.num_kv_heads, 2);
    EXPECT_EQ(c.head_dim, 16);  // derived: 64 / 4
    EXPECT_EQ(c.intermediate_size, 128);
    EXPECT_EQ(c.vocab_size, 256);
    EXPECT_EQ(c.context_length, 4096);
    EXPECT_EQ(c.rms_norm_eps, static_cast<double>(1e-6f));  // stored as float32
    EXPECT_EQ(c.rope_theta, 500000.0);
    EXPECT_EQ(c.rope_scaling.type, RopeScalingType::None);
    EXPECT_FALSE(c.qk_norm);
    EXPECT_FALSE(c.tie_word_embeddings);  // metadata alone cannot tell; the File overload does
    EXPECT_EQ(c.layer_types, std::vector<LayerAttention>(6, LayerAttention::Full));
    EXPECT_EQ(c.sliding_window, 0);
}

TEST(ModelConfigGguf, Qwen3WithYarnAndVocabFromTokens) {
    gguf::Metadata m = base_metadata("qwen3");
    m.set("qwen3.attention.key_length", Value{std::uint32_t{32}});
    m.set("qwen3.attention.value_length", Value{std::uint32_t{32}});
    m.set("qwen3.rope.scaling.type", Value{std::string("yarn")});
    m.set("qwen3.rope.scaling.factor", Value{4.0f});
    m.set("qwen3.rope.scaling.original_context_length", Value{std::uint32_t{1024}});
    gguf::Metadata without_vocab;
    for (const auto& [key, value] : m.entries()) {
        if (key != "qwen3.vocab_size") without_vocab.set(key, value);
    }
    gguf::Array tokens{gguf::ValueType::String, std::vector<Value>(300, Value{std::string("t")})};
    without_vocab.set("tokenizer.ggml.tokens", Value{tokens});
    const ModelConfig c = model_config_from_gguf(without_vocab, "m.gguf");
    EXPECT_EQ(c.architecture, Architecture::Qwen3);
    EXPECT_EQ(c.head_dim, 32);
    EXPECT_EQ(c.vocab_size, 300);
    EXPECT_TRUE(c.qk_norm);
    EXPECT_EQ(c.rope_scaling.type, RopeScalingType::Yarn);
    EXPECT_EQ(c.rope_scaling.factor, 4.0);
    EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 1024);
    EXPECT_EQ(c.rope_scaling.beta_fast, 32.0);
    EXPECT_EQ(c.rope_scaling.beta_slow, 1.0);
    EXPECT_TRUE(c.rope_scaling.truncate);
}

TEST(ModelConfigGguf, Qwen3Moe) {
    gguf::Metadata m = base_metadata("qwen3moe");
    m.set("qwen3moe.expert_count", Value{std::uint32_t{8}});
    m.set("qwen3moe.expert_used_count", Value{std::uint32_t{2}});
    m.set("qwen3moe.expert_feed_forward_length", Value{std::uint32_t{32}});
    const ModelConfig c = model_config_from_gguf(m, "m.gguf");
    EXPECT_EQ(c.architecture, Architecture::Qwen3Moe);
    EXPECT_EQ(c.num_experts, 8);
    EXPECT_EQ(c.num_experts_per_token, 2);
    EXPECT_EQ(c.moe_intermediate_size, 32);
    EXPECT_TRUE(c.norm_topk_prob);  // llama.cpp normalises for qwen3moe regardless of the HF flag
    EXPECT_TRUE(c.qk_norm);
    m.set("qwen3moe.expert_used_count", Value{std::uint32_t{9}});
    try {
        (void)model_config_from_gguf(m, "m.gguf");
        ADD_FAILURE() << "top-k above the expert count was accepted";
    } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find("qwen3moe.expert_used_count = 9 is outside [1, 8] (qwen3moe.expert_count)"),
                  std::string::npos) << error.what();
    }
    m.set("qwen3moe.expert_count", Value{std::uint32_t{0}});
    EXPECT_THROW(model_config_from_gguf(m, "m.gguf"), Error);
}

TEST(ModelConfigGguf, GptOss) {
    gguf::Metadata m = base_metadata("gpt-oss");
    m.set("gpt-oss.attention.key_length", Value{std::uint32_t{8}});
    m.set("gpt-oss.expert_count", Value{std::uint32_t{4}});
    m.set("gpt-oss.expert_used_count", Value{std::uint32_t{2}});
    m.set("gpt-oss.expert_feed_forward_length", Value{std::uint32_t{128}});
    m.set("gpt-oss.attention.sliding_window", Value{std::uint32_t{128}});
    m.set("gpt-oss.rope.scaling.type", Value{std::string("yarn")});
    m.set("gpt-oss.rope.scaling.factor", Value{32.0f});
    m.set("gpt-oss.rope.scaling.original_context_length", Value{std::uint32_t{4096}});
    const ModelConfig c = model_config_from_gguf(m, "m.gguf");
    EXPECT_EQ(c.architecture, Architecture::GptOss);
    EXPECT_TRUE(c.attention_sinks);
    EXPECT_TRUE(c.attention_bias);
    EXPECT_EQ(c.swiglu_limit, 7.0);
    EXPECT_EQ(c.sliding_window, 128);
    const std::vector<LayerAttention> alternate = {LayerAttention::Sliding, LayerAttention::Full, LayerAttention::Sliding,
                                                   LayerAttention::Full,    LayerAttention::Sliding, LayerAttention::Full};
    EXPECT_EQ(c.layer_types, alternate);  // as GptOssConfig derives them (layer 0 slides)
    EXPECT_FALSE(c.rope_scaling.truncate);
    EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 4096);
}

TEST(ModelConfigGguf, Gemma3) {
    gguf::Metadata m = base_metadata("gemma3");
    m.set("gemma3.block_count", Value{std::uint32_t{8}});
    m.set("gemma3.attention.key_length", Value{std::uint32_t{32}});
    m.set("gemma3.attention.sliding_window", Value{std::uint32_t{512}});
    m.set("gemma3.rope.scaling.type", Value{std::string("linear")});
    m.set("gemma3.rope.scaling.factor", Value{8.0f});
    const ModelConfig c = model_config_from_gguf(m, "m.gguf");
    EXPECT_EQ(c.architecture, Architecture::Gemma3);
    EXPECT_EQ(c.activation, Activation::GeluTanh);
    EXPECT_TRUE(c.qk_norm);
    EXPECT_TRUE(c.scale_embeddings);
    EXPECT_FALSE(c.norm_weight_offset);  // converter stored 1 + w
    EXPECT_EQ(c.rope_local_theta, 10000.0);
    EXPECT_EQ(c.query_pre_attn_scalar, 32.0);  // head_dim, as llama.cpp does below 27B
    EXPECT_EQ(c.rope_scaling.type, RopeScalingType::Linear);
    EXPECT_EQ(c.sliding_window, 512);
    // Same layout Gemma3TextConfig derives with sliding_window_pattern 6 (see gemma3_1b golden).
    std::vector<LayerAttention> want(8, LayerAttention::Sliding);
    want[5] = LayerAttention::Full;
    EXPECT_EQ(c.layer_types, want);
}

TEST(ModelConfigGguf, ErrorsNameSourceAndKey) {
    gguf::Metadata m = base_metadata("mamba");
    try {
        model_config_from_gguf(m, "m.gguf");
        ADD_FAILURE() << "accepted";
    } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find("m.gguf"), std::string::npos) << error.what();
        EXPECT_NE(std::string(error.what()).find("'mamba'"), std::string::npos) << error.what();
    }
    gguf::Metadata missing;
    const gguf::Metadata complete = base_metadata("llama");
    for (const auto& [key, value] : complete.entries()) {
        if (key != "llama.embedding_length") missing.set(key, value);
    }
    try {
        model_config_from_gguf(missing, "m.gguf");
        ADD_FAILURE() << "accepted";
    } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find("llama.embedding_length"), std::string::npos) << error.what();
    }
    m = base_metadata("llama");
    m.set("llama.rope.scaling.type", Value{std::string("longrope")});
    EXPECT_THROW(model_config_from_gguf(m, "m.gguf"), Error);
    m = base_metadata("llama");
    m.set("llama.attention.head_count_kv", Value{std::uint32_t{3}});
    EXPECT_THROW(model_config_from_gguf(m, "m.gguf"), Error);
}

TEST(ModelConfigGguf, DefaultModelMatchesItsHfConfig) {
    const gguf::File file = gguf::File::open(testing::default_model_path());
    const ModelConfig c = model_config_from_gguf(file);
    EXPECT_EQ(c.architecture, Architecture::Llama);
    EXPECT_EQ(c.num_layers, 30);
    EXPECT_EQ(c.hidden_size, 576);
    EXPECT_EQ(c.num_heads, 9);
    EXPECT_EQ(c.num_kv_heads, 3);
    EXPECT_EQ(c.head_dim, 64);
    EXPECT_EQ(c.vocab_size, 49152);
    EXPECT_EQ(c.rope_theta, 100000.0);
    EXPECT_EQ(c.context_length, 8192);
    EXPECT_TRUE(c.tie_word_embeddings);  // the file has no output.weight

    // The hub config of the same model (tests/goldens/configs/smollm2_135m.json) says the same.
    const ModelConfig hf = model_config_from_hf_file(source_path("tests/goldens/configs/smollm2_135m.json"));
    EXPECT_EQ(hf.intermediate_size, c.intermediate_size);
    EXPECT_EQ(hf.tie_word_embeddings, c.tie_word_embeddings);
    EXPECT_EQ(hf.context_length, c.context_length);
    EXPECT_EQ(hf.vocab_size, c.vocab_size);
    // GGUF stores eps as float32; compare at float precision.
    EXPECT_FLOAT_EQ(static_cast<float>(hf.rms_norm_eps), static_cast<float>(c.rms_norm_eps));
}

}  // namespace
}  // namespace kindred
