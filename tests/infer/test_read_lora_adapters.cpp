// infer::read_lora_adapter: a PEFT folder as the adapters a decoder applies, including one trained
// on the top layers only (layers_to_transform, LoraConfig::first_layer), for inference and for a
// TrainableDecoder (`kindred eval emotion`).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/error.h"
#include "formats/model_config.h"
#include "formats/peft_adapter.h"
#include "formats/safetensors.h"
#include "infer/loaded_model.h"
#include "model/decoder.h"
#include "model/lora_adapters.h"
#include "scratch_dir.h"
#include "test_paths.h"

namespace kindred::infer {
namespace {

using kindred::testing::ScratchDir;
using kindred::testing::source_path;

TEST(ReadLoraAdapters, TopLayersOnlyBecomeFirstLayer) {
    const std::string directory = source_path("tests/goldens/inference/tiny-llama");
    const auto checkpoint = safetensors::Checkpoint::open(directory);
    const model::Decoder decoder =
        model::Decoder::from_checkpoint(checkpoint, model_config_from_hf_file(directory + "/config.json"));
    // A PEFT folder of the tiny model's shapes: every layer's adapters, non-zero values.
    model::LoraConfig lora;
    lora.rank = 2;
    lora.targets = {"q", "down"};
    const model::LoraAdapters made(decoder.config(), lora, false);
    peft::Adapter golden;
    golden.config.r = 2;
    golden.config.lora_alpha = lora.alpha;
    golden.config.target_modules = {"q_proj", "down_proj"};
    for (const auto& info : made.tensors()) {
        peft::LoraTensor tensor{info.name, {static_cast<std::uint64_t>(info.rows), static_cast<std::uint64_t>(info.cols)}, {}};
        for (std::int64_t i = 0; i < info.rows * info.cols; ++i) tensor.values.push_back(0.01f * static_cast<float>(i % 17 + 1));
        golden.tensors.push_back(std::move(tensor));
    }
    peft::Adapter upper = golden;
    upper.tensors.clear();
    for (const auto& tensor : golden.tensors)
        if (peft::parse_lora_key(tensor.name).layer == 1) upper.tensors.push_back(tensor);
    upper.config.layers_to_transform = {1};
    const ScratchDir scratch{"kindred-read-lora"};
    peft::write_adapter(scratch / "upper", upper);

    for (const auto use : {model::LoraUse::Inference, model::LoraUse::Training}) {
        const auto adapters = read_lora_adapter(scratch / "upper", decoder, "tiny-llama", use);
        EXPECT_EQ(adapters->first_layer(), 1);
        EXPECT_EQ(adapters->tensors().size(), upper.tensors.size());
        EXPECT_EQ(adapters->trainable(), use == model::LoraUse::Training);
        const auto& tensor = upper.tensors.front();
        std::vector<float> back(tensor.values.size());
        adapters->get_hf(tensor.name, back);
        EXPECT_EQ(back, tensor.values);
    }
    // A set of layers that is not a run ending at the last one is refused by name.
    upper.config.layers_to_transform = {0, 1};
    peft::write_adapter(scratch / "all", upper);  // layers 0 and 1 listed, layer 0's tensors absent
    try {
        read_lora_adapter(scratch / "all", decoder, "tiny-llama", model::LoraUse::Inference);
        FAIL() << "missing layer-0 tensors were accepted";
    } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find("is missing"), std::string::npos) << error.what();
    }
    peft::Adapter lower = golden;
    lower.tensors.clear();
    for (const auto& tensor : golden.tensors)
        if (peft::parse_lora_key(tensor.name).layer == 0) lower.tensors.push_back(tensor);
    lower.config.layers_to_transform = {0};
    peft::write_adapter(scratch / "lower", lower);
    try {
        read_lora_adapter(scratch / "lower", decoder, "tiny-llama", model::LoraUse::Inference);
        FAIL() << "a bottom-layers adapter was accepted";
    } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find("layers_to_transform must be a run of layers ending at the model's last"),
                  std::string::npos)
            << error.what();
    }
}

}  // namespace
}  // namespace kindred::infer
