// train::model_fingerprint: what data-parallel ranks compare at start-up to be sure they loaded the
// same model, for a GGUF file and for an HF checkpoint directory (config.json and its shards).
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "core/error.h"
#include "scratch_dir.h"
#include "train/data_parallel.h"

namespace kindred::train {
namespace {

TEST(ModelFingerprint, ADirectoryCoversItsConfigAndEveryShard) {
    const testing::ScratchDir dir("kindred-fingerprint");
    std::ofstream(dir / "config.json") << R"({"model_type": "llama"})";
    std::ofstream(dir / "model-00001-of-00002.safetensors") << "first";
    std::ofstream(dir / "model-00002-of-00002.safetensors") << "second";
    std::ofstream(dir / "README.md") << "not part of the model";
    const std::string before = model_fingerprint(dir.path().string());
    EXPECT_EQ(before, model_fingerprint(dir.path().string()));
    std::ofstream(dir / "README.md") << "edited";
    EXPECT_EQ(before, model_fingerprint(dir.path().string()));
    std::ofstream(dir / "model-00002-of-00002.safetensors") << "changed";
    EXPECT_NE(before, model_fingerprint(dir.path().string()));
    EXPECT_EQ(model_fingerprint(dir / "config.json"), file_fingerprint(dir / "config.json"));  // a file: its own
    std::remove((dir / "config.json").c_str());
    EXPECT_THROW(model_fingerprint(dir.path().string()), Error);
}

}  // namespace
}  // namespace kindred::train
