// Adapter shapes are checked before anything is sized by them, on every family the decoder runs:
// a LoRA rank above a target's smaller dimension is refused naming the key and the module.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <utility>

#include "core/error.h"
#include "formats/model_config.h"
#include "model/lora_adapters.h"
#include "test_paths.h"

namespace kindred::model {
namespace {

class AdapterShapes : public ::testing::TestWithParam<const char*> {};

TEST_P(AdapterShapes, RankAboveATargetsSmallerDimensionIsRefusedNamingKeyAndModule) {
    const ModelConfig config = model_config_from_hf_file(
        kindred::testing::source_path(std::string("tests/goldens/inference/") + GetParam() + "/config.json"));
    // k maps hidden -> kv_heads · head_dim, the smallest product of every tiny model.
    const std::int64_t smallest = std::min(config.hidden_size, config.num_kv_heads * config.head_dim);
    LoraConfig lora;
    lora.targets = {"q", "k"};
    lora.rank = static_cast<int>(smallest);
    EXPECT_NO_THROW(LoraAdapters(config, lora, false));
    // The first target (in q, k, v, o, gate, up, down order) the rank does not fit is named.
    for (const auto& [rank, module] : {std::pair{static_cast<int>(smallest) + 1, "'k'"}, std::pair{100000, "'q'"}}) {
        lora.rank = rank;
        try {
            LoraAdapters adapters(config, lora, false);
            FAIL() << "rank " << rank << " was accepted";
        } catch (const Error& error) {
            const std::string message = error.what();
            EXPECT_NE(message.find("adapter.rank"), std::string::npos) << message;
            EXPECT_NE(message.find(module), std::string::npos) << message;
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Families, AdapterShapes, ::testing::Values("tiny-llama", "tiny-qwen3", "tiny-gemma3"),
                         [](const auto& param_info) {
                             std::string name = param_info.param;
                             std::replace(name.begin(), name.end(), '-', '_');
                             return name;
                         });

}  // namespace
}  // namespace kindred::model
