// `--quantize` at the command line: values other than none/q4_k/nf4, and quantizing a model whose
// weights are already quantized, exit non-zero naming the flag or the tensor. Loading an HF
// checkpoint quantized is tested in tests/infer/test_loaded_model_checkpoint.cpp.
#include <gtest/gtest.h>

#include <string>

#include "run_kindred.h"

namespace kindred::testing {
namespace {

TEST(QuantizeCli, BadValueNamesTheFlag) {
    const CommandResult result = run_kindred("score --model default --quantize q4_k_m --text hello", /*merge_stderr=*/true);
    EXPECT_NE(result.exit_code, 0);
    EXPECT_EQ(result.signal, 0);
    EXPECT_NE(result.output.find("--quantize"), std::string::npos) << result.output;
}

TEST(QuantizeCli, AnAlreadyQuantizedGgufIsRefused) {
    const CommandResult result = run_kindred("score --model default --quantize nf4 --text hello", /*merge_stderr=*/true);
    EXPECT_EQ(result.exit_code, 1);
    EXPECT_NE(result.output.find("already quantized"), std::string::npos) << result.output;
    EXPECT_NE(result.output.find("blk.0."), std::string::npos) << result.output;  // names a tensor
}

}  // namespace
}  // namespace kindred::testing
