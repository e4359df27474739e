// tests/train/tiny_sft_model.h — what the SFT-loop tests share: the random tiny Llama of
// tests/goldens/inference (2 layers, hidden 64, vocab 96, context 64) loaded once at a fixed
// thread count, a short recipe that trains it, run options, and fresh per-process scratch folders.
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
#include "train/recipe.h"
#include "train/sft.h"
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

// 30 steps of rank-4 LoRA at lr 1e-2 on 48-token rows: enough for the tiny model's losses to fall.
inline SftRecipe tiny_recipe() {
    SftRecipe recipe;
    recipe.adapter.rank = 4;
    recipe.adapter.alpha = 8;
    recipe.adapter.seed = 7;
    recipe.seed = 7;
    recipe.max_seq_len = 48;
    recipe.lr = 1e-2;
    recipe.warmup_steps = 3;
    recipe.max_steps = 30;
    recipe.micro_batch = 1;
    recipe.grad_accumulation = 1;
    recipe.progress = false;
    recipe.checkpoint_every = 5;
    recipe.keep_last = 2;
    recipe.resolved_yaml = "test: true\n";
    return recipe;
}

inline SftOptions options_for(const std::filesystem::path& dir) {
    SftOptions options;
    options.run_dir = dir.string();
    options.base_model = "tiny-llama";
    return options;
}

}  // namespace kindred::train::testing
