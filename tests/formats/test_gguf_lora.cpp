// GGUF LoRA adapters (llama.cpp `--lora` layout): PEFT -> GGUF name mapping, llama.cpp's q/k row
// permutation against the formula evaluated by tools/goldens/adapters.py, the writer against
// llama.cpp's own convert_lora_to_gguf.py output for the same PEFT adapter, write/read round trips,
// refusals, and tensor shapes that fit the default model's base tensors the way llama.cpp's
// loader checks them.
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>


#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/half.h"
#include "formats/gguf.h"
#include "formats/gguf_lora.h"
#include "scratch_dir.h"
#include "test_paths.h"

namespace kindred::gguf_lora {
namespace {

using nlohmann::json;
using testing::ScratchDir;
using testing::source_path;

constexpr std::uint32_t kTinyHeads = 4;    // the golden adapter's base (adapters.py tiny_base)
constexpr std::uint32_t kTinyKvHeads = 2;

json read_json(const std::string& path) {
    std::ifstream in(path);
    return json::parse(in);
}

void expect_error(const std::function<void()>& body, const std::string& phrase) {
    try {
        body();
        FAIL() << "no Error; expected one containing '" << phrase << "'";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(phrase), std::string::npos) << e.what();
    }
}

peft::Adapter golden() { return peft::read_adapter(source_path("tests/goldens/adapters/peft_tiny")); }

WriteOptions tiny_options() {
    WriteOptions options;
    options.architecture = "llama";
    options.n_head = kTinyHeads;
    options.n_head_kv = kTinyKvHeads;
    options.lora_alpha = 8.0f;
    options.r = 4;
    return options;
}

TEST(GgufLora, ModuleNamesForAllSevenTargets) {
    const std::vector<std::pair<std::string, std::string>> names = {
        {"q_proj", "attn_q"}, {"k_proj", "attn_k"}, {"v_proj", "attn_v"}, {"o_proj", "attn_output"},
        {"gate_proj", "ffn_gate"}, {"up_proj", "ffn_up"}, {"down_proj", "ffn_down"},
    };
    for (const auto& [peft_name, gguf_name] : names) {
        EXPECT_EQ(gguf_module_name(peft_name), gguf_name);
        EXPECT_EQ(peft_module_name(gguf_name), peft_name);
        const std::string a = peft::lora_key({5, peft_name, true});
        const std::string b = peft::lora_key({5, peft_name, false});
        EXPECT_EQ(gguf_tensor_name(a), "blk.5." + gguf_name + ".weight.lora_a");
        EXPECT_EQ(gguf_tensor_name(b), "blk.5." + gguf_name + ".weight.lora_b");
        EXPECT_EQ(peft_key(gguf_tensor_name(a)), a);
        EXPECT_EQ(peft_key(gguf_tensor_name(b)), b);
    }
    EXPECT_THROW(gguf_module_name("lm_head"), Error);
    for (const std::string bad : {"blk.0.attn_q.weight", "blk.x.attn_q.weight.lora_a", "blk.00.attn_q.weight.lora_a",
                                  "blk.0.attn_qkv.weight.lora_a", "output.weight.lora_a", "blk.weight.lora_a",
                                  "blk..weight.lora_b"}) {
        EXPECT_THROW(peft_key(bad), Error) << bad;
    }
}

TEST(GgufLora, PermutationMatchesLlamaCppFormula) {
    for (const json& c : read_json(source_path("tests/goldens/adapters/permute.json"))) {
        const auto n_head = c["n_head"].get<std::uint32_t>();
        const auto n_head_kv = c["n_head_kv"].get<std::uint32_t>();
        const std::uint32_t heads = n_head_kv != n_head ? n_head_kv : n_head;
        const auto input = c["input"].get<std::vector<float>>();
        const auto output = c["output"].get<std::vector<float>>();
        const auto rows = c["rows"].get<std::uint64_t>();
        const auto cols = c["cols"].get<std::uint64_t>();
        EXPECT_EQ(permute_qk_rows(input, rows, cols, heads), output) << n_head << "/" << n_head_kv;
        EXPECT_EQ(permute_qk_rows(output, rows, cols, heads, true), input) << n_head << "/" << n_head_kv;
    }
    const std::vector<float> six(6);
    EXPECT_THROW(permute_qk_rows(six, 6, 1, 2), Error);  // 6 rows are not 2 heads of two halves
    EXPECT_THROW(permute_qk_rows(six, 4, 1, 2), Error);  // size mismatch
}

TEST(GgufLora, WritesLlamaCppLayout) {
    const peft::Adapter adapter = golden();
    const ScratchDir scratch{"kindred-adapters"};
    const std::string path = scratch / "adapter.gguf";
    write(path, adapter.tensors, tiny_options());
    const gguf::File file = gguf::File::open(path);
    EXPECT_EQ(file.metadata().string("general.type"), "adapter");
    EXPECT_EQ(file.metadata().string("adapter.type"), "lora");
    EXPECT_EQ(file.metadata().string("general.architecture"), "llama");
    EXPECT_EQ(file.metadata().real("adapter.lora.alpha"), 8.0);
    ASSERT_EQ(file.tensors().size(), adapter.tensors.size());

    const json expected = read_json(source_path("tests/goldens/adapters/expected.json"))["tensors"];
    for (const peft::LoraTensor& tensor : adapter.tensors) {
        const gguf::TensorInfo& info = file.tensor(gguf_tensor_name(tensor.name));
        EXPECT_EQ(info.type, DType::F32);
        EXPECT_EQ(info.dims, (std::vector<std::uint64_t>{tensor.shape[1], tensor.shape[0]})) << info.name;
        std::vector<float> stored(info.element_count());
        std::memcpy(stored.data(), info.data.data(), stored.size() * sizeof(float));
        auto want = expected[tensor.name]["values"].get<std::vector<float>>();
        const peft::LoraKey key = peft::parse_lora_key(tensor.name);
        if (!key.is_a && (key.module == "q_proj" || key.module == "k_proj")) {
            want = permute_qk_rows(want, tensor.shape[0], tensor.shape[1],
                                   key.module == "q_proj" ? kTinyHeads : kTinyKvHeads);
            EXPECT_NE(stored, expected[tensor.name]["values"].get<std::vector<float>>()) << "not permuted";
        }
        EXPECT_EQ(stored, want) << info.name;
    }
}

// llamacpp_tiny.gguf is peft_tiny converted by llama.cpp's convert_lora_to_gguf.py (F32).
TEST(GgufLora, MatchesLlamaCppConverter) {
    const gguf::File reference = gguf::File::open(source_path("tests/goldens/adapters/llamacpp_tiny.gguf"));
    const ScratchDir scratch{"kindred-adapters"};
    const std::string path = scratch / "adapter.gguf";
    write(path, golden().tensors, tiny_options());
    const gguf::File ours = gguf::File::open(path);
    for (const char* key : {"general.architecture", "general.type", "adapter.type", "adapter.lora.alpha"}) {
        ASSERT_NE(ours.metadata().find(key), nullptr) << key;
        EXPECT_EQ(*ours.metadata().find(key), *reference.metadata().find(key)) << key;
    }
    ASSERT_EQ(ours.tensors().size(), reference.tensors().size());
    for (const gguf::TensorInfo& want : reference.tensors()) {
        const gguf::TensorInfo& got = ours.tensor(want.name);
        EXPECT_EQ(got.type, want.type) << want.name;
        EXPECT_EQ(got.dims, want.dims) << want.name;
        EXPECT_TRUE(std::equal(got.data.begin(), got.data.end(), want.data.begin(), want.data.end())) << want.name;
    }
    // And the reader takes llama.cpp's file back to PEFT's tensors.
    const auto tensors = to_peft(read(source_path("tests/goldens/adapters/llamacpp_tiny.gguf")), kTinyHeads, kTinyKvHeads);
    const peft::Adapter adapter = golden();
    ASSERT_EQ(tensors.size(), adapter.tensors.size());
    for (const peft::LoraTensor& tensor : tensors) {
        const auto it = std::find_if(adapter.tensors.begin(), adapter.tensors.end(),
                                     [&](const peft::LoraTensor& t) { return t.name == tensor.name; });
        ASSERT_NE(it, adapter.tensors.end()) << tensor.name;
        EXPECT_EQ(tensor.shape, it->shape) << tensor.name;
        EXPECT_EQ(tensor.values, it->values) << tensor.name;
    }
}

TEST(GgufLora, RoundTripF32IsExact) {
    const peft::Adapter adapter = golden();
    const ScratchDir scratch{"kindred-adapters"};
    const std::string path = scratch / "adapter.gguf";
    write(path, adapter.tensors, tiny_options());
    const Adapter back = read(path);
    EXPECT_EQ(back.architecture, "llama");
    EXPECT_EQ(back.lora_alpha, 8.0f);
    const auto tensors = to_peft(back, kTinyHeads, kTinyKvHeads);
    ASSERT_EQ(tensors.size(), adapter.tensors.size());
    for (std::size_t i = 0; i < tensors.size(); ++i) {
        EXPECT_EQ(tensors[i].name, adapter.tensors[i].name);
        EXPECT_EQ(tensors[i].shape, adapter.tensors[i].shape);
        EXPECT_EQ(tensors[i].values, adapter.tensors[i].values) << tensors[i].name;
    }
}

TEST(GgufLora, RoundTripF16RoundsEachValueOnce) {
    const peft::Adapter adapter = golden();
    WriteOptions options = tiny_options();
    options.type = DType::F16;
    options.architecture = "qwen2";  // no permutation outside llama
    const ScratchDir scratch{"kindred-adapters"};
    const std::string path = scratch / "adapter.gguf";
    write(path, adapter.tensors, options);
    EXPECT_EQ(gguf::File::open(path).tensors().front().type, DType::F16);
    const auto tensors = to_peft(read(path), 0, 0);
    ASSERT_EQ(tensors.size(), adapter.tensors.size());
    for (std::size_t i = 0; i < tensors.size(); ++i) {
        std::vector<float> want;
        for (const float v : adapter.tensors[i].values) want.push_back(fp16_to_fp32(fp32_to_fp16(v)));
        EXPECT_EQ(tensors[i].values, want) << tensors[i].name;  // exact: one fp16 rounding each way
    }
}

TEST(GgufLora, RsloraStoresEquivalentAlpha) {
    WriteOptions options = tiny_options();
    options.use_rslora = true;
    const ScratchDir scratch{"kindred-adapters"};
    const std::string path = scratch / "adapter.gguf";
    write(path, golden().tensors, options);
    // llama.cpp scales by alpha / r; rsLoRA by alpha / sqrt(r) = (alpha * sqrt(r)) / r; sqrt(4) = 2.
    EXPECT_EQ(read(path).lora_alpha, 16.0f);
}

TEST(GgufLora, RefusesBadInput) {
    const peft::Adapter adapter = golden();
    const ScratchDir scratch{"kindred-adapters"};
    const std::string path = scratch / "adapter.gguf";
    WriteOptions options = tiny_options();
    options.n_head = 0;
    expect_error([&] { write(path, adapter.tensors, options); }, "needs n_head and n_head_kv");
    options = tiny_options();
    options.n_head = 3;  // 32 q rows do not split into 3 heads
    expect_error([&] { write(path, adapter.tensors, options); },
                 "tensor 'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight'");
    options = tiny_options();
    options.type = DType::Q4_0;
    expect_error([&] { write(path, adapter.tensors, options); }, "must be F32 or F16");
    options = tiny_options();
    options.r = 8;
    expect_error([&] { write(path, adapter.tensors, options); }, "inconsistent with r = 8");
    EXPECT_FALSE(std::filesystem::exists(path));

    const auto write_gguf = [&](const std::function<void(gguf::Writer&)>& edit) {
        gguf::Writer writer;
        writer.metadata().set("general.architecture", {std::string("llama")});
        writer.metadata().set("general.type", {std::string("adapter")});
        writer.metadata().set("adapter.type", {std::string("lora")});
        writer.metadata().set("adapter.lora.alpha", {8.0f});
        edit(writer);
        writer.write(path);
    };
    const std::vector<float> a(4 * 8), b(6 * 4);
    const auto bytes = [](const std::vector<float>& v) {
        return std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(v.data()), v.size() * 4);
    };
    write_gguf([](gguf::Writer& w) { w.metadata().set("general.type", {std::string("model")}); });
    expect_error([&] { read(path); }, "general.type");
    write_gguf([](gguf::Writer& w) { w.metadata().set("adapter.type", {std::string("control_vector")}); });
    expect_error([&] { read(path); }, "adapter.type");
    write_gguf([&](gguf::Writer& w) { w.add_tensor("blk.0.attn_v.weight.lora_a", DType::F32, {8, 4}, bytes(a)); });
    expect_error([&] { read(path); }, "layer 0 v_proj has lora_A but no lora_B");
    write_gguf([&](gguf::Writer& w) {
        w.add_tensor("blk.0.attn_v.weight.lora_a", DType::F32, {8, 4}, bytes(a));
        w.add_tensor("blk.0.attn_v.weight.lora_b", DType::F32, {6, 4}, bytes(b));  // rank 6 != 4
    });
    expect_error([&] { read(path); }, "blk.0.attn_v.weight.lora_b");
    write_gguf([&](gguf::Writer& w) { w.add_tensor("output.weight.lora_a", DType::F32, {8, 4}, bytes(a)); });
    expect_error([&] { read(path); }, "'output.weight.lora_a'");
}

// Shapes for the default model (SmolLM2-135M, llama: 9 heads, 3 KV heads) checked the way
// llama.cpp's adapter loader checks them against the base tensors. The file this test writes was
// loaded once by hand with llama.cpp's --lora (llama-perplexity: "loaded 420 tensors from lora file").
TEST(GgufLora, FitsDefaultModelTensors) {
    const gguf::File base = gguf::File::open(testing::default_model_path());
    const auto& meta = base.metadata();
    const std::uint32_t rank = 8;
    std::vector<peft::LoraTensor> tensors;
    for (std::uint32_t layer = 0; layer < meta.uint("llama.block_count"); ++layer) {
        for (const std::string_view module : peft::kLoraModules) {
            const std::string base_name = fmt::format("blk.{}.{}.weight", layer, gguf_module_name(module));
            const auto& dims = base.tensor(base_name).dims;  // {in, out}
            for (const bool is_a : {true, false}) {
                peft::LoraTensor t{peft::lora_key({layer, std::string(module), is_a}),
                                   is_a ? std::vector<std::uint64_t>{rank, dims[0]}
                                        : std::vector<std::uint64_t>{dims[1], rank},
                                   {}};
                t.values.resize(t.shape[0] * t.shape[1]);
                for (std::size_t i = 0; i < t.values.size(); ++i) {
                    t.values[i] = static_cast<float>(static_cast<int>((i * 7919 + layer) % 17) - 8) * 1e-3f;
                }
                tensors.push_back(std::move(t));
            }
        }
    }
    WriteOptions options;
    options.architecture = meta.string("general.architecture");
    options.n_head = static_cast<std::uint32_t>(meta.uint("llama.attention.head_count"));
    options.n_head_kv = static_cast<std::uint32_t>(meta.uint("llama.attention.head_count_kv"));
    options.r = rank;
    options.lora_alpha = 16.0f;
    const ScratchDir scratch{"kindred-adapters"};
    const std::string path = scratch / "smollm2_lora.gguf";
    write(path, tensors, options);
    const Adapter adapter = read(path);
    ASSERT_EQ(adapter.tensors.size(), tensors.size());
    for (std::size_t i = 0; i + 1 < adapter.tensors.size(); i += 2) {
        const Tensor& a = adapter.tensors[i];
        const Tensor& b = adapter.tensors[i + 1];
        const std::string base_name = a.name.substr(0, a.name.size() - std::string_view(".lora_a").size());
        ASSERT_EQ(b.name, base_name + ".lora_b");
        const auto& dims = base.tensor(base_name).dims;
        EXPECT_EQ(dims[0], a.dims[0]) << a.name;  // llama.cpp: model->ne[0] == a->ne[0]
        EXPECT_EQ(dims[1], b.dims[1]) << b.name;  //            model->ne[1] == b->ne[1]
        EXPECT_EQ(a.dims[1], b.dims[0]) << a.name;  //          a->ne[1] == b->ne[0]
    }
}

}  // namespace
}  // namespace kindred::gguf_lora
