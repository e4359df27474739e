// `kindred eval emotion`: a 28-label head (written here with random weights, no LoRA: the frozen
// trunk) over the default model on a four-comment GoEmotions-format file: the JSON's counts follow
// the file, the threshold and system message come from heads.json unless overridden, and bad input
// fails naming the file, line or flag. The scores themselves are checked against scikit-learn in
// tests/eval/test_goemotions_eval.cpp.
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "model/heads.h"
#include "run_kindred.h"
#include "scratch_dir.h"

namespace kindred::testing {
namespace {

const std::vector<std::string> kGoEmotions = {
    "admiration", "amusement", "anger", "annoyance", "approval", "caring", "confusion", "curiosity", "desire",
    "disappointment", "disapproval", "disgust", "embarrassment", "excitement", "fear", "gratitude", "grief", "joy",
    "love", "nervousness", "optimism", "pride", "realization", "relief", "remorse", "sadness", "surprise", "neutral"};

struct Fixture {
    ScratchDir scratch{"kindred-eval-emotion"};
    std::string heads = scratch / "heads";
    std::string data = scratch / "dev.tsv";
    Fixture() {
        std::filesystem::create_directories(heads);
        model::HeadsConfig config;
        config.emotion_classes = 28;
        config.strategy = config.valence_arousal = false;
        config.emotion_activation = model::EmotionActivation::Sigmoid;
        config.seed = 5;
        model::Heads trained(576, config);  // SmolLM2-135M's hidden size
        trained.set_emotion_threshold(0.5);
        trained.set_emotion_system_prompt("Name the emotions.");
        model::write_heads(heads, trained, kGoEmotions, {});
        // Labels: joy; anger + annoyance; neutral; gratitude + joy (a quoted text).
        std::ofstream(data) << "What a great day\t17\tid1\n"
                               "This is infuriating\t2,3\tid2\n"
                               "The bus comes at nine\t27\tid3\n"
                               "\"Thanks, \"\"really\"\"!\"\t15,17\tid4\n";
    }
};

nlohmann::json run_json(const std::string& arguments) {
    const CommandResult result = run_kindred("eval emotion --model default " + arguments + " --json");
    EXPECT_EQ(result.exit_code, 0) << result.output;
    return nlohmann::json::parse(result.output);
}

TEST(EvalEmotionCli, ScoresAFileInTheTwentyEightLabels) {
    const Fixture f;
    const auto report = run_json("--adapter '" + f.heads + "' --data '" + f.data + "'");
    EXPECT_EQ(report["examples"], 4);
    EXPECT_EQ(report["head_labels"], "goemotions");
    EXPECT_EQ(report["activation"], "sigmoid");
    EXPECT_DOUBLE_EQ(report["threshold"].get<double>(), 0.5);
    ASSERT_EQ(report["labels"].size(), 28u);
    EXPECT_EQ(report["labels"]["joy"]["support"], 2);
    EXPECT_EQ(report["labels"]["anger"]["support"], 1);
    EXPECT_EQ(report["labels"]["neutral"]["support"], 1);
    EXPECT_EQ(report["labels"]["grief"]["support"], 0);
    for (const char* key : {"macro_f1", "micro_f1"}) {
        EXPECT_GE(report[key].get<double>(), 0.0) << key;
        EXPECT_LE(report[key].get<double>(), 1.0) << key;
    }
    // Every example predicts at least its top label; a threshold above every sigmoid keeps only those.
    const auto strict = run_json("--adapter '" + f.heads + "' --data '" + f.data + "' --threshold 0.999");
    std::int64_t predicted = 0;
    for (const auto& [name, label] : strict["labels"].items()) predicted += label["predicted"].get<std::int64_t>();
    EXPECT_EQ(predicted, 4);
    // Another system message is another input: the scores are of the same shape, the run still works.
    const auto other = run_json("--adapter '" + f.heads + "' --data '" + f.data + "' --system-prompt 'Be kind.'");
    EXPECT_EQ(other["examples"], 4);
}

TEST(EvalEmotionCli, BadInputFailsNamingIt) {
    const Fixture f;
    const auto expect_error = [](const std::string& arguments, const std::string& needle) {
        const CommandResult result = run_kindred("eval emotion --model default " + arguments, /*merge_stderr=*/true);
        EXPECT_EQ(result.signal, 0) << arguments;
        EXPECT_NE(result.exit_code, 0) << arguments << ": " << result.output;
        EXPECT_NE(result.output.find(needle), std::string::npos) << arguments << ": expected '" << needle << "' in: " << result.output;
    };
    expect_error("--adapter '" + f.scratch.path().string() + "' --data '" + f.data + "'", "heads.json");
    expect_error("--adapter '" + f.heads + "' --data '" + f.data + "' --threshold 1.5", "--threshold must lie in (0, 1)");
    std::ofstream(f.scratch / "bad.tsv") << "Fine\t17\ta\nBroken\t31\tb\n";
    expect_error("--adapter '" + f.heads + "' --data '" + f.scratch / "bad.tsv" + "'", "bad.tsv:2: unknown label id 31");
    expect_error("--adapter '" + f.heads + "' --data /nonexistent.tsv", "/nonexistent.tsv");
}

}  // namespace
}  // namespace kindred::testing
