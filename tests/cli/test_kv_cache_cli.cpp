// `--kv-cache` at the command line: a value other than f32/f16/q8_0 exits non-zero naming the flag;
// the commands say which cache type ran. What each type costs is tested in
// tests/infer/test_kv_cache_precision.cpp.
#include <gtest/gtest.h>

#include <string>

#include <nlohmann/json.hpp>

#include "run_kindred.h"

namespace kindred::testing {
namespace {

TEST(KvCacheCli, BadValueNamesTheFlag) {
    const CommandResult result = run_kindred("score --model default --kv-cache q4_0 --text hello", /*merge_stderr=*/true);
    EXPECT_NE(result.exit_code, 0);
    EXPECT_EQ(result.signal, 0);
    EXPECT_NE(result.output.find("--kv-cache"), std::string::npos) << result.output;
}

// (chat names it in its greeting, which only a terminal sees.)
TEST(KvCacheCli, CommandsSayWhichCacheRuns) {
    const CommandResult scored = run_kindred("score --model default --kv-cache q8_0 --json --text 'How are you today?'");
    ASSERT_EQ(scored.exit_code, 0) << scored.output;
    EXPECT_EQ(nlohmann::json::parse(scored.output)["kv_cache"], "q8_0");
    const CommandResult generated =
        run_kindred("generate --model default --kv-cache f16 --max-tokens 2 --temperature 0 --json --prompt Hi");
    ASSERT_EQ(generated.exit_code, 0) << generated.output;
    EXPECT_EQ(nlohmann::json::parse(generated.output)["kv_cache"], "f16");
    const CommandResult verbose =
        run_kindred("score --verbose --model default --kv-cache f16 --text 'How are you today?'", /*merge_stderr=*/true);
    ASSERT_EQ(verbose.exit_code, 0) << verbose.output;
    EXPECT_NE(verbose.output.find("kindred: kv cache: f16\n"), std::string::npos) << verbose.output;
}

}  // namespace
}  // namespace kindred::testing
