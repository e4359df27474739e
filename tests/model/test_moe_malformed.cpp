// The MoE corpus (tests/corpus/gguf-moe-malformed/, written by tools/make_malformed_moe_gguf.py,
// phrases in its EXPECTED.json): valid GGUF containers whose MoE metadata or tensors disagree.
// Reading the config and binding every layer's MoE tensors must fail with kindred::Error naming the
// file and the key or tensor at fault. (Broken MXFP4 pairs of HF checkpoints:
// tests/formats/test_hf_mxfp4.cpp; partial MXFP4 blocks in GGUF are refused by the reader:
// tests/corpus/gguf-malformed/row-not-block-multiple.)
#include <gtest/gtest.h>

#include "formats/gguf.h"
#include "formats/model_config.h"
#include "malformed_corpus.h"
#include "model/moe_weights.h"
#include "model/weights.h"
#include "test_paths.h"

namespace kindred::model {
namespace {

TEST(MoeMalformed, EveryCorpusFileIsRefusedNamingTheKeyOrTensor) {
    testing::expect_every_corpus_file_refused(
        testing::source_path("tests/corpus/gguf-moe-malformed"), [](const std::filesystem::path& path, const std::string&) {
            const auto file = gguf::File::open(path.string());
            const ModelConfig config = model_config_from_gguf(file);
            const Weights weights = load_weights(file);
            for (std::int64_t layer = 0; layer < config.num_layers; ++layer) (void)bind_moe_weights(weights, config, layer);
        });
}

}  // namespace
}  // namespace kindred::model
