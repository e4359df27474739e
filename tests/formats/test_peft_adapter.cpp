// PEFT adapter directories: the reader against directories PEFT's save_pretrained wrote
// (tools/goldens/adapters.py, F32 and BF16), key parsing, writer round trips and every refusal
// naming its field. The writer's output was loaded by PeftModel.from_pretrained once by hand
// (adapters.py --check on the directory WriteThenReadIsExact writes).
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>


#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "formats/peft_adapter.h"
#include "scratch_dir.h"
#include "test_paths.h"

namespace kindred::peft {
namespace {

using nlohmann::json;
using testing::ScratchDir;
using testing::source_path;

json read_json(const std::string& path) {
    std::ifstream in(path);
    return json::parse(in);
}

const json& expected() {
    static const json value = read_json(source_path("tests/goldens/adapters/expected.json"));
    return value;
}

// The golden directory copied to <scratch>/<name> with adapter_config.json edited by `edit`.
std::string edited_copy(const ScratchDir& scratch, const std::string& name, const std::function<void(json&)>& edit) {
    const std::string dir = scratch / name;
    std::filesystem::copy(source_path("tests/goldens/adapters/peft_tiny"), dir);
    json config = read_json(dir + "/adapter_config.json");
    edit(config);
    std::ofstream(dir + "/adapter_config.json") << config.dump();
    return dir;
}

void expect_error(const std::function<void()>& body, const std::string& phrase) {
    try {
        body();
        FAIL() << "no Error; expected one containing '" << phrase << "'";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(phrase), std::string::npos) << e.what();
    }
}

void expect_golden_values(const Adapter& adapter, const char* field) {
    const json& tensors = expected()["tensors"];
    ASSERT_EQ(adapter.tensors.size(), tensors.size());
    for (const LoraTensor& tensor : adapter.tensors) {
        ASSERT_TRUE(tensors.contains(tensor.name)) << tensor.name;
        EXPECT_EQ(tensor.shape, tensors[tensor.name]["shape"].get<std::vector<std::uint64_t>>()) << tensor.name;
        const json& values = std::string(field) == "tensors" ? tensors[tensor.name]["values"]
                                                             : expected()[field][tensor.name];
        // Exact: F32 is copied and BF16 -> fp32 is exact; the goldens hold PEFT's own fp32 values.
        EXPECT_EQ(tensor.values, values.get<std::vector<float>>()) << tensor.name;
    }
}

TEST(PeftAdapter, ReadsPeftSaveF32) {
    const Adapter adapter = read_adapter(source_path("tests/goldens/adapters/peft_tiny"));
    EXPECT_EQ(adapter.config.base_model, "kindred-tiny-llama");
    EXPECT_EQ(adapter.config.r, 4u);
    EXPECT_EQ(adapter.config.lora_alpha, 8.0);
    EXPECT_EQ(adapter.config.lora_dropout, 0.05);
    EXPECT_FALSE(adapter.config.use_rslora);
    EXPECT_EQ(adapter.config.target_modules.size(), 7u);
    expect_golden_values(adapter, "tensors");
}

TEST(PeftAdapter, ReadsPeftSaveBf16) {
    expect_golden_values(read_adapter(source_path("tests/goldens/adapters/peft_tiny_bf16")), "tensors_bf16");
}

TEST(PeftAdapter, KeysParseAndFormatForEveryModule) {
    for (const std::string_view module : kLoraModules) {
        for (const bool is_a : {true, false}) {
            const LoraKey key{17, std::string(module), is_a};
            EXPECT_EQ(parse_lora_key(lora_key(key)), key) << lora_key(key);
        }
    }
    EXPECT_EQ(lora_key({0, "q_proj", true}), "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight");
    EXPECT_EQ(lora_key({2, "down_proj", false}), "base_model.model.model.layers.2.mlp.down_proj.lora_B.weight");
}

TEST(PeftAdapter, UnparseableKeysNameTheKey) {
    for (const std::string key : {
             "base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight",
             "base_model.model.model.layers.x.self_attn.q_proj.lora_A.weight",
             "base_model.model.model.layers.01.self_attn.q_proj.lora_A.weight",
             "base_model.model.model.layers.99999999999.self_attn.q_proj.lora_A.weight",
             "base_model.model.model.layers.0.mlp.q_proj.lora_A.weight",
             "base_model.model.model.layers.0.self_attn.qkv_proj.lora_A.weight",
             "base_model.model.model.layers.0.self_attn.q_proj.lora_C.weight",
             "base_model.model.lm_head.lora_A.weight",
             "",
         }) {
        expect_error([&] { parse_lora_key(key); }, "'" + key + "'");
    }
}

TEST(PeftAdapter, WriteThenReadIsExact) {
    const Adapter golden = read_adapter(source_path("tests/goldens/adapters/peft_tiny"));
    const ScratchDir scratch{"kindred-adapters"};
    const std::string dir = scratch / "adapter";
    write_adapter(dir, golden);
    const Adapter back = read_adapter(dir);
    EXPECT_EQ(back.config.base_model, golden.config.base_model);
    EXPECT_EQ(back.config.r, golden.config.r);
    EXPECT_EQ(back.config.lora_alpha, golden.config.lora_alpha);
    EXPECT_EQ(back.config.lora_dropout, golden.config.lora_dropout);
    EXPECT_EQ(back.config.target_modules, golden.config.target_modules);
    expect_golden_values(back, "tensors");
    const json config = read_json(dir + "/adapter_config.json");
    EXPECT_EQ(config["peft_type"], "LORA");
    EXPECT_EQ(config["task_type"], "CAUSAL_LM");
}

TEST(PeftAdapter, RsloraFlagRoundTrips) {
    Adapter adapter = read_adapter(source_path("tests/goldens/adapters/peft_tiny"));
    adapter.config.use_rslora = true;
    adapter.config.base_model.clear();
    const ScratchDir scratch{"kindred-adapters"};
    const std::string dir = scratch / "adapter";
    write_adapter(dir, adapter);
    const Adapter back = read_adapter(dir);
    EXPECT_TRUE(back.config.use_rslora);
    EXPECT_TRUE(back.config.base_model.empty());
    EXPECT_TRUE(read_json(dir + "/adapter_config.json")["base_model_name_or_path"].is_null());
}

// PEFT's layers_to_transform (Kindred's adapter.first_layer): written as a list, read as a list or
// a single index, sorted; a tensor for a layer it does not list, or a layer listed twice, is refused.
TEST(PeftAdapter, LayersToTransformRoundTripsAndBoundsTheTensors) {
    const Adapter golden = read_adapter(source_path("tests/goldens/adapters/peft_tiny"));
    Adapter upper = golden;
    upper.tensors.clear();
    for (const auto& tensor : golden.tensors)
        if (parse_lora_key(tensor.name).layer == 1) upper.tensors.push_back(tensor);
    ASSERT_FALSE(upper.tensors.empty());
    upper.config.layers_to_transform = {1};
    const ScratchDir scratch{"kindred-adapters"};
    const std::string dir = scratch / "upper";
    write_adapter(dir, upper);
    EXPECT_EQ(read_json(dir + "/adapter_config.json")["layers_to_transform"], json::array({1}));
    EXPECT_EQ(read_adapter(dir).config.layers_to_transform, std::vector<std::uint32_t>{1});
    EXPECT_TRUE(read_json(source_path("tests/goldens/adapters/peft_tiny/adapter_config.json"))["layers_to_transform"].is_null());
    EXPECT_TRUE(golden.config.layers_to_transform.empty());

    const std::string single = edited_copy(scratch, "single", [](json& c) { c["layers_to_transform"] = 1; });
    std::filesystem::remove(single + "/adapter_model.safetensors");
    std::filesystem::copy_file(dir + "/adapter_model.safetensors", single + "/adapter_model.safetensors");
    EXPECT_EQ(read_adapter(single).config.layers_to_transform, std::vector<std::uint32_t>{1});

    Adapter outside = golden;  // tensors of layers 0 and 1, but only layer 1 listed
    outside.config.layers_to_transform = {1};
    expect_error([&] { write_adapter(scratch / "outside", outside); }, "which layers_to_transform does not list");
    for (const json& bad : {json::array({1, 1}), json::array({-1}), json("1")}) {
        const std::string edited = edited_copy(scratch, "bad" + bad.dump(), [&](json& c) { c["layers_to_transform"] = bad; });
        expect_error([&] { read_adapter(edited); }, "layers_to_transform");
    }
}

TEST(PeftAdapter, UnsupportedConfigNamesTheField) {
    const std::vector<std::pair<std::string, json>> cases = {
        {"peft_type", "PREFIX_TUNING"}, {"use_dora", true},           {"bias", "all"},
        {"modules_to_save", json::array({"lm_head"})},                 {"fan_in_fan_out", true},
        {"rank_pattern", json{{"q_proj", 8}}},                         {"alpha_pattern", json{{"q_proj", 8}}},
        {"lora_bias", true},                                           {"target_modules", "all-linear"},
        {"r", 0},                                                      {"r", "four"},
        {"lora_alpha", nullptr},
    };
    const ScratchDir scratch{"kindred-adapters"};
    for (const auto& [field, value] : cases) {
        const std::string dir = edited_copy(scratch, field + value.dump(), [&](json& c) { c[field] = value; });
        expect_error([&] { read_adapter(dir); }, "'" + field + "'");
    }
    const std::string dir = edited_copy(scratch, "no_r", [](json& c) { c.erase("r"); });
    expect_error([&] { read_adapter(dir); }, "field 'r' is missing");
}

// Expert stacks (PEFT's target_parameters): the nested ParamWrapper's tensors sit under
// mlp.experts.base_layer, the outer one's under mlp.experts; which parameter each adapts follows
// the list's order (the last listed is outermost). A is [experts · r, in], B [out, r · experts].
Adapter expert_adapter(std::vector<std::string> parameters) {
    Adapter adapter;
    adapter.config.r = 2;
    adapter.config.target_modules = {"q_proj"};
    adapter.config.target_parameters = std::move(parameters);
    const auto tensor = [](const std::string& name, std::uint64_t rows, std::uint64_t cols) {
        return LoraTensor{name, {rows, cols}, std::vector<float>(rows * cols, 0.5f)};
    };
    const std::string layer = "base_model.model.model.layers.0.";
    adapter.tensors = {tensor(layer + "self_attn.q_proj.lora_A.weight", 2, 8),
                       tensor(layer + "self_attn.q_proj.lora_B.weight", 8, 2),
                       tensor(layer + "mlp.experts.base_layer.lora_A.weight", 6, 8),   // 3 experts, in 8
                       tensor(layer + "mlp.experts.base_layer.lora_B.weight", 12, 6),  // gate_up: out 2 · 6
                       tensor(layer + "mlp.experts.lora_A.weight", 6, 6),
                       tensor(layer + "mlp.experts.lora_B.weight", 8, 6)};
    return adapter;
}

TEST(PeftAdapter, ExpertStacksRoundTripAndNameTheirParameter) {
    EXPECT_EQ(parse_lora_key("base_model.model.model.layers.4.mlp.experts.base_layer.lora_B.weight"),
              (LoraKey{4, std::string(kExpertsNested), false}));
    EXPECT_EQ(parse_lora_key("base_model.model.model.layers.4.mlp.experts.lora_A.weight"),
              (LoraKey{4, std::string(kExpertsOuter), true}));
    expect_error([] { parse_lora_key("base_model.model.model.layers.4.self_attn.experts.lora_A.weight"); }, "wrong parent");

    const Adapter adapter = expert_adapter({"mlp.experts.gate_up_proj", "mlp.experts.down_proj"});
    EXPECT_EQ(expert_parameter(adapter.config, kExpertsNested, "x"), "mlp.experts.gate_up_proj");
    EXPECT_EQ(expert_parameter(adapter.config, kExpertsOuter, "x"), "mlp.experts.down_proj");
    const Adapter reversed = expert_adapter({"mlp.experts.down_proj", "mlp.experts.gate_up_proj"});
    EXPECT_EQ(expert_parameter(reversed.config, kExpertsNested, "x"), "mlp.experts.down_proj");
    EXPECT_EQ(expert_parameter(reversed.config, kExpertsOuter, "x"), "mlp.experts.gate_up_proj");

    const ScratchDir scratch{"kindred-adapters"};
    const std::string dir = scratch / "experts";
    write_adapter(dir, adapter);
    const Adapter back = read_adapter(dir);
    EXPECT_EQ(back.config.target_parameters, adapter.config.target_parameters);
    EXPECT_EQ(read_json(dir + "/adapter_config.json")["target_parameters"],
              json({"mlp.experts.gate_up_proj", "mlp.experts.down_proj"}));
    ASSERT_EQ(back.tensors.size(), adapter.tensors.size());

    // Expert stacks alone, as PEFT writes them (target_modules null), on the listed layers only:
    // layers_to_transform is read there too.
    Adapter stacks = adapter;
    stacks.config.target_modules.clear();
    stacks.tensors.erase(stacks.tensors.begin(), stacks.tensors.begin() + 2);  // the q_proj pair
    stacks.config.layers_to_transform = {0};
    const std::string stacks_dir = scratch / "stacks";
    write_adapter(stacks_dir, stacks);
    json config = read_json(stacks_dir + "/adapter_config.json");
    config["target_modules"] = nullptr;
    std::ofstream(stacks_dir + "/adapter_config.json") << config.dump();
    const Adapter stacks_back = read_adapter(stacks_dir);
    EXPECT_TRUE(stacks_back.config.target_modules.empty());
    EXPECT_EQ(stacks_back.config.layers_to_transform, std::vector<std::uint32_t>{0});
}

TEST(PeftAdapter, InconsistentExpertStacksAreRefused) {
    const ScratchDir scratch{"kindred-adapters"};
    const std::string dir = scratch / "experts";
    Adapter one = expert_adapter({"mlp.experts.down_proj"});  // the nested wrapper has no parameter
    expect_error([&] { write_adapter(dir, one); }, "mlp.experts.base_layer, which target_parameters (1 listed)");
    Adapter rank = expert_adapter({"mlp.experts.gate_up_proj", "mlp.experts.down_proj"});
    rank.tensors[4] = LoraTensor{rank.tensors[4].name, {5, 6}, std::vector<float>(30, 0.5f)};  // 5 is no multiple of r
    expect_error([&] { write_adapter(dir, rank); }, "inconsistent with r = 2");
    Adapter pair = expert_adapter({"mlp.experts.gate_up_proj", "mlp.experts.down_proj"});
    pair.tensors[5] = LoraTensor{pair.tensors[5].name, {8, 4}, std::vector<float>(32, 0.5f)};  // A has 6 rows
    expect_error([&] { write_adapter(dir, pair); }, "r · experts differ");
    for (const json& parameters : {json({"mlp.experts.gate_proj"}), json({"mlp.experts.down_proj", "mlp.experts.down_proj"}),
                                   json("mlp.experts.down_proj")}) {
        const std::string edited = edited_copy(scratch, "parameters" + std::to_string(parameters.dump().size()),
                                               [&](json& c) { c["target_parameters"] = parameters; });
        expect_error([&] { read_adapter(edited); }, "'target_parameters'");
    }
}

TEST(PeftAdapter, MissingFilesAreNamed) {
    const ScratchDir scratch{"kindred-adapters"};
    const std::string dir = scratch / "adapter";
    std::filesystem::create_directories(dir);
    expect_error([&] { read_adapter(dir); }, "adapter_config.json: missing");
    std::filesystem::copy(source_path("tests/goldens/adapters/peft_tiny/adapter_config.json"), dir + "/adapter_config.json");
    expect_error([&] { read_adapter(dir); }, "adapter_model.safetensors: missing");
}

TEST(PeftAdapter, InconsistentTensorsAreRefused) {
    const Adapter golden = read_adapter(source_path("tests/goldens/adapters/peft_tiny"));
    const ScratchDir scratch{"kindred-adapters"};
    const std::string dir = scratch / "adapter";

    Adapter no_b = golden;
    no_b.tensors.erase(no_b.tensors.begin() + 1);  // layers.0.mlp.down_proj.lora_B
    expect_error([&] { write_adapter(dir, no_b); }, "layer 0 down_proj has lora_A but no lora_B");

    Adapter wrong_rank = golden;
    wrong_rank.config.r = 8;
    expect_error([&] { write_adapter(dir, wrong_rank); }, "inconsistent with r = 8");

    Adapter twice = golden;
    twice.tensors.push_back(golden.tensors.front());
    expect_error([&] { write_adapter(dir, twice); }, "appears twice");

    Adapter untargeted = golden;
    untargeted.config.target_modules = {"q_proj"};
    expect_error([&] { write_adapter(dir, untargeted); }, "target_modules does not list");

    Adapter short_values = golden;
    short_values.tensors.front().values.pop_back();
    expect_error([&] { write_adapter(dir, short_values); }, "values for shape");

    // A reader-side check too: the same inconsistency in a file on disk.
    Adapter bad_rank_file = golden;
    bad_rank_file.config.r = 4;
    write_adapter(dir, bad_rank_file);
    const std::string config = dir + "/adapter_config.json";
    json edited = read_json(config);
    edited["r"] = 2;
    std::ofstream(config) << edited.dump();
    expect_error([&] { read_adapter(dir); }, "adapter_model.safetensors: tensor");
}

}  // namespace
}  // namespace kindred::peft
