// tests/train/tiny_sft_model.h — what the SFT-loop tests share: the random tiny Llama of
// tests/goldens/inference (2 layers, hidden 64, vocab 96, context 64) loaded once at a fixed
// thread count, and fresh per-process scratch folders.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

#include <fmt/format.h>

#include "core/thread_pool.h"
#include "formats/model_config.h"
#include "formats/safetensors.h"
#include "model/decoder.h"
#include "test_paths.h"

namespace kindred::train::testing {

inline std::filesystem::path fresh_dir(const std::string& name) {
    const auto dir = std::filesystem::temp_directory_path() / fmt::format("kindred_sft_{}_{}", name, ::getpid());
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    return dir;
}

struct Tiny {
    safetensors::Checkpoint checkpoint;
    std::unique_ptr<model::Decoder> decoder;
    explicit Tiny(const std::string& directory)
        : checkpoint(safetensors::Checkpoint::open(directory)),
          decoder(std::make_unique<model::Decoder>(
              model::Decoder::from_checkpoint(checkpoint, model_config_from_hf_file(directory + "/config.json")))) {}
};

// Not const: run_sft's safety teacher runs the base's own forward.
inline model::Decoder& tiny() {
    // Bitwise comparisons need the same summation order in every run: one fixed thread count.
    static const bool threads_fixed = [] {
        set_thread_count(2);
        return true;
    }();
    (void)threads_fixed;
    static Tiny model(kindred::testing::source_path("tests/goldens/inference/tiny-llama"));
    return *model.decoder;
}

}  // namespace kindred::train::testing
