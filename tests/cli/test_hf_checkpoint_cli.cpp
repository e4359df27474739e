// inspect, tokenize, export and generate on a Hugging Face checkpoint directory
// (tests/goldens/tokenizer/byte_fallback/tiny-gemma3: config.json, model.safetensors, a byte_fallback
// tokenizer.json, tokenizer_config.json and chat_template.jinja; tools/goldens/byte_fallback_tokenizer.py),
// each with the meaning it has for a GGUF: the same report keys, the model's own tokenizer (ids as
// the `tokenizers` package gives them), a llama.cpp LoRA GGUF laid out for the base (equal byte for
// byte to llama.cpp's converter on the HF base it was made for), greedy tokens as transformers'.
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cli/run_kindred.h"
#include "formats/gguf.h"
#include "scratch_dir.h"
#include "test_paths.h"

namespace kindred::testing {
namespace {

const std::string kFixture = "tests/goldens/tokenizer/byte_fallback/";

std::string checkpoint() { return source_path(kFixture + "tiny-gemma3"); }

nlohmann::json read_json(const std::string& relative) {
    std::ifstream in(source_path(relative), std::ios::binary);
    return nlohmann::json::parse(in);
}

TEST(HfCheckpointCli, InspectReportsConfigTensorsTokenizerAndTemplate) {
    const CommandResult result = run_kindred("inspect '" + checkpoint() + "' --json");
    ASSERT_EQ(result.exit_code, 0) << result.output;
    const auto report = nlohmann::json::parse(result.output);
    const auto config = read_json(kFixture + "tiny-gemma3/config.json");
    EXPECT_EQ(report["architecture"], "gemma3");
    EXPECT_EQ(report["block_count"], config["num_hidden_layers"]);
    EXPECT_EQ(report["embedding_length"], config["hidden_size"]);
    EXPECT_EQ(report["head_count"], config["num_attention_heads"]);
    EXPECT_EQ(report["head_count_kv"], config["num_key_value_heads"]);
    EXPECT_EQ(report["head_dim"], config["head_dim"]);
    EXPECT_EQ(report["vocab_size"], config["vocab_size"]);
    EXPECT_EQ(report["sliding_window"], config["sliding_window"]);
    EXPECT_NE(report["format"].get<std::string>().find("Hugging Face checkpoint, 1 safetensors file"), std::string::npos);
    // 2 layers x (4 norms, q/k norms, q/k/v/o, gate/up/down) + embedding + final norm; tied output.
    ASSERT_EQ(report["tensors"].size(), 28u);
    bool embedding = false;
    for (const auto& tensor : report["tensors"]) {
        if (tensor["name"] != "model.embed_tokens.weight") continue;
        embedding = true;
        EXPECT_EQ(tensor["type"], "F32");
        EXPECT_EQ(tensor["shape"], nlohmann::json({config["vocab_size"], config["hidden_size"]}));  // PyTorch order
    }
    EXPECT_TRUE(embedding);
    const std::string tokenizer = report["tokenizer"].get<std::string>();
    EXPECT_NE(tokenizer.find("SentencePiece BPE"), std::string::npos) << tokenizer;
    EXPECT_NE(tokenizer.find(std::to_string(read_json(kFixture + "goldens.json")["merges"].get<int>()) + " merges"),
              std::string::npos)
        << tokenizer;
    EXPECT_NE(tokenizer.find("BOS '<bos>' (2), EOS '<eos>' (1)"), std::string::npos) << tokenizer;
    EXPECT_EQ(report["add_bos_token"], true);
    EXPECT_EQ(report["chat_template"].get<std::string>().rfind("Gemma 3 (chat_template.jinja,", 0), 0u)
        << report["chat_template"];

    const CommandResult text = run_kindred("inspect '" + checkpoint() + "'");
    ASSERT_EQ(text.exit_code, 0) << text.output;
    EXPECT_NE(text.output.find("model.layers.1.mlp.down_proj.weight"), std::string::npos) << text.output;
    EXPECT_NE(text.output.find("PyTorch shape"), std::string::npos) << text.output;
}

TEST(HfCheckpointCli, InspectOfTheDefaultGgufReportsTheSameNewKeys) {
    const CommandResult result = run_kindred("inspect default --json");
    ASSERT_EQ(result.exit_code, 0) << result.output;
    const auto report = nlohmann::json::parse(result.output);
    EXPECT_EQ(report["chat_template"].get<std::string>().rfind("SmolLM2 (tokenizer.chat_template,", 0), 0u)
        << report["chat_template"];
    EXPECT_TRUE(report["add_bos_token"].is_boolean());
    EXPECT_EQ(report["shape_order"], "ggml dims, innermost first");
}

TEST(HfCheckpointCli, TokenizeUsesTheCheckpointsTokenizer) {
    const auto golden = read_json(kFixture + "goldens.json");
    std::size_t checked = 0;
    for (const auto& c : golden["variants"]["gemma"]["cases"]) {
        const std::string text = c["text"].get<std::string>();
        // Shell-safe texts with byte fallback, added tokens and spaces; the rest is test_text's job.
        if (text.empty() || text.find_first_of("'\\`$\"\x01\x07\x1b\x7f") != std::string::npos || text.size() > 200 ||
            text.find('\0') != std::string::npos)
            continue;
        const CommandResult result = run_kindred("tokenize --model '" + checkpoint() + "' --json --text '" + text + "'");
        ASSERT_EQ(result.exit_code, 0) << result.output;
        EXPECT_EQ(nlohmann::json::parse(result.output), c["ids"]) << text;
        if (++checked == 12) break;
    }
    EXPECT_EQ(checked, 12u);
}

TEST(HfCheckpointCli, GenerateGivesTransformersGreedyTokens) {
    const auto golden = read_json(kFixture + "tiny-gemma3.json");
    for (const auto& chat : golden["chats"]) {
        // The smallest top-1/top-2 gap along transformers' path is >= 0.0038 in fp32 (see the golden):
        // far above this tiny model's accumulation-order differences, so the tokens must be equal.
        const std::vector<int> expected = chat["generated_ids"].get<std::vector<int>>();
        const CommandResult result = run_kindred("generate --model '" + checkpoint() +
                                                 "' --products fp32 --temperature 0 --json --max-tokens " +
                                                 std::to_string(expected.size()) + " --prompt '" +
                                                 chat["prompt"].get<std::string>() + "'");
        ASSERT_EQ(result.exit_code, 0) << result.output;
        const auto report = nlohmann::json::parse(result.output);
        EXPECT_EQ(report["prompt_tokens"].get<std::size_t>(), chat["prompt_ids"].size());
        EXPECT_EQ(report["tokens"], nlohmann::json(expected));
    }
}

// llamacpp_tiny.gguf is tests/goldens/adapters/peft_tiny converted by llama.cpp's convert_lora_to_gguf.py
// on its HF base: 4 heads, 2 KV heads, as tests/goldens/inference/tiny-llama's config.json says.
TEST(HfCheckpointCli, ExportForAnHfBaseEqualsLlamaCppsConverter) {
    const ScratchDir scratch("kindred-export-hf");
    const std::string out = scratch / "adapter.gguf";
    const CommandResult result =
        run_kindred("export --adapter '" + source_path("tests/goldens/adapters/peft_tiny") +
                        "' --format gguf-lora --model '" + source_path("tests/goldens/inference/tiny-llama") +
                        "' --out '" + out + "'",
                    true);
    ASSERT_EQ(result.exit_code, 0) << result.output;
    const gguf::File ours = gguf::File::open(out);
    const gguf::File reference = gguf::File::open(source_path("tests/goldens/adapters/llamacpp_tiny.gguf"));
    EXPECT_EQ(ours.metadata().string("general.architecture"), "llama");
    ASSERT_EQ(ours.tensors().size(), reference.tensors().size());
    for (const gguf::TensorInfo& want : reference.tensors()) {
        const gguf::TensorInfo& got = ours.tensor(want.name);
        EXPECT_EQ(got.dims, want.dims) << want.name;
        EXPECT_TRUE(std::equal(got.data.begin(), got.data.end(), want.data.begin(), want.data.end())) << want.name;
    }
    // A Gemma 3 base: llama.cpp's architecture name, and no q/k permutation.
    const std::string gemma = scratch / "gemma.gguf";
    ASSERT_EQ(run_kindred("export --adapter '" + source_path("tests/goldens/adapters/peft_tiny") +
                              "' --format gguf-lora --model '" + checkpoint() + "' --out '" + gemma + "'",
                          true)
                  .exit_code,
              0);
    EXPECT_EQ(gguf::File::open(gemma).metadata().string("general.architecture"), "gemma3");
}

TEST(HfCheckpointCli, DirectoriesMissingAFileAreClearErrors) {
    const ScratchDir scratch("kindred-hf-missing");
    std::filesystem::copy(checkpoint(), scratch.path() / "model");
    const std::string model = (scratch.path() / "model").string();
    std::filesystem::remove(scratch.path() / "model" / "tokenizer.json");
    for (const std::string& command : {"inspect '" + model + "'", "tokenize --model '" + model + "' --text hi"}) {
        const CommandResult result = run_kindred(command, true);
        EXPECT_EQ(result.exit_code, 1) << command << ": " << result.output;
        EXPECT_NE(result.output.find("tokenizer.json is missing"), std::string::npos) << result.output;
    }
    std::filesystem::remove(scratch.path() / "model" / "config.json");
    for (const std::string& command :
         {"inspect '" + model + "'", "export --adapter '" + source_path("tests/goldens/adapters/peft_tiny") +
                                         "' --format gguf-lora --model '" + model + "' --out '" + (scratch / "a.gguf") + "'"}) {
        const CommandResult result = run_kindred(command, true);
        EXPECT_EQ(result.exit_code, 1) << command << ": " << result.output;
        EXPECT_NE(result.output.find("config.json"), std::string::npos) << result.output;
    }
}

}  // namespace
}  // namespace kindred::testing
