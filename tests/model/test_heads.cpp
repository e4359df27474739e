// Tests for model/heads.h: layout, reproducible init, forward against a plain loop, backward by
// finite differences, and the heads.safetensors + heads.json round trip with its errors.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "kernels/gradient_check.h"
#include "core/error.h"
#include "formats/safetensors.h"
#include "kernels/lora.h"
#include "model/heads.h"

namespace kindred::model {
namespace {

namespace fs = std::filesystem;

std::vector<float> random_values(std::size_t n, std::uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    std::vector<float> v(n);
    for (float& x : v) x = dist(rng);
    return v;
}

HeadsConfig small_config(std::uint64_t seed = 7) {
    HeadsConfig config;
    config.emotion_classes = 5;
    config.strategy_classes = 3;
    config.seed = seed;
    return config;
}

fs::path fresh_dir(const std::string& name) {
    const auto dir = fs::temp_directory_path() / fmt::format("kindred_heads_{}_{}", name, ::getpid());
    fs::remove_all(dir);
    fs::create_directories(dir);
    return dir;
}

TEST(Heads, LayoutNamesAndShapes) {
    const Heads heads(16, small_config());
    const auto& t = heads.tensors();
    ASSERT_EQ(t.size(), 6u);
    EXPECT_EQ(t[0].name, "heads.emotion.weight");
    EXPECT_EQ(t[1].name, "heads.emotion.bias");
    EXPECT_EQ(t[2].name, "heads.strategy.weight");
    EXPECT_EQ(t[4].name, "heads.valence_arousal.weight");
    EXPECT_EQ(t[5].name, "heads.valence_arousal.bias");
    EXPECT_EQ(t[0].rows, 5);
    EXPECT_EQ(t[0].cols, 16);
    EXPECT_EQ(t[1].offset, 5 * 16);
    EXPECT_EQ(t[2].offset, 5 * 16 + 5);
    EXPECT_EQ(heads.params().size(), static_cast<std::size_t>((5 + 3 + 2) * 17));
    EXPECT_EQ(heads.outputs(Head::ValenceArousal), 2);

    HeadsConfig no_strategy = small_config();
    no_strategy.strategy = false;
    const Heads partial(16, no_strategy);
    ASSERT_EQ(partial.tensors().size(), 4u);
    EXPECT_FALSE(partial.enabled(Head::Strategy));
    std::vector<float> y(3);
    const std::vector<float> x(16, 0.0f);
    EXPECT_THROW(partial.forward(Head::Strategy, x.data(), 1, y.data()), Error);
    EXPECT_THROW(partial.tensor("heads.strategy.weight"), Error);

    HeadsConfig one_class = small_config();
    one_class.emotion_classes = 1;
    EXPECT_THROW(Heads(16, one_class), Error);
    EXPECT_THROW(Heads(0, small_config()), Error);
}

// nn.Linear's default bound 1/√hidden; the values are the documented counter stream, the same for a
// head whether or not another head is enabled, and reproducible from the seed.
TEST(Heads, InitIsSeededAndIndependentOfOtherHeads) {
    const std::int64_t hidden = 16;
    const Heads a(hidden, small_config(7)), b(hidden, small_config(7)), c(hidden, small_config(8));
    EXPECT_TRUE(std::equal(a.params().begin(), a.params().end(), b.params().begin()));
    EXPECT_FALSE(std::equal(a.params().begin(), a.params().end(), c.params().begin()));
    const float bound = 0.25f;  // 1/√16
    for (const float v : a.params()) EXPECT_LE(std::fabs(v), bound);
    // Element i of the strategy head (index 1) is bound·(2u − 1), u from stream seed ^ 2·φ.
    const std::uint64_t stream = 7 ^ (2 * 0x9E3779B97F4A7C15ull);
    const auto& w = a.tensor("heads.strategy.weight");
    EXPECT_EQ(a.params()[static_cast<std::size_t>(w.offset + 5)],
              bound * (2.0f * kernels::counter_uniform(stream, 5) - 1.0f));
    const auto& bias = a.tensor("heads.strategy.bias");  // the bias continues the weight's stream
    EXPECT_EQ(a.params()[static_cast<std::size_t>(bias.offset + 1)],
              bound * (2.0f * kernels::counter_uniform(stream, static_cast<std::uint64_t>(3 * hidden + 1)) - 1.0f));

    HeadsConfig only_va = small_config(7);
    only_va.emotion = only_va.strategy = false;
    const Heads va(hidden, only_va);
    const auto& full = a.tensor("heads.valence_arousal.weight");
    for (std::int64_t i = 0; i < 2 * (hidden + 1); ++i)
        EXPECT_EQ(va.params()[static_cast<std::size_t>(i)], a.params()[static_cast<std::size_t>(full.offset + i)]);
}

TEST(Heads, ForwardMatchesPlainLoop) {
    const std::int64_t hidden = 16, n = 4;
    const Heads heads(hidden, small_config());
    const auto pooled = random_values(n * hidden, 1);
    for (const Head head : {Head::Emotion, Head::Strategy, Head::ValenceArousal}) {
        const std::int64_t out = heads.outputs(head);
        std::vector<float> y(static_cast<std::size_t>(n * out));
        heads.forward(head, pooled.data(), n, y.data());
        for (std::int64_t r = 0; r < n; ++r)
            for (std::int64_t c = 0; c < out; ++c) {
                double sum = heads.bias(head)[c];
                for (std::int64_t k = 0; k < hidden; ++k)
                    sum += static_cast<double>(pooled[r * hidden + k]) * heads.weight(head)[c * hidden + k];
                // 16 fp32 products of values ≤ 1 summed in fp32: ≲ 16 · 6e-8.
                EXPECT_NEAR(y[r * out + c], sum, 1e-6) << head_name(head) << " " << r << " " << c;
            }
    }
}

// L = Σ y ⊙ g for a fixed random g (so dL/dy = g) through forward; backward's grads(W), grads(b)
// and dpooled against central differences. L is linear in each checked input, so truncation
// vanishes and only fp32 rounding of y (≈ 6e-8 · |y| ≲ 1e-7 per element, ~10 elements moved per
// input) over 2h = 2e-2 remains: ≲ 5e-5 at worst, typically far less (measured max abs error
// 4.9e-6). Hence abs 5e-5 + rel 1e-4.
TEST(Heads, BackwardMatchesFiniteDifferences) {
    const std::int64_t hidden = 12, n = 3;
    Heads heads(hidden, small_config(3));
    auto pooled = random_values(n * hidden, 2);
    const testing::GradientCheckOptions options{1e-2, 5e-5, 1e-4};
    for (const Head head : {Head::Emotion, Head::Strategy, Head::ValenceArousal}) {
        SCOPED_TRACE(head_name(head));
        const std::int64_t out = heads.outputs(head);
        const auto g = random_values(static_cast<std::size_t>(n * out), 4);
        auto loss = [&] {
            std::vector<float> y(static_cast<std::size_t>(n * out));
            heads.forward(head, pooled.data(), n, y.data());
            double total = 0.0;
            for (std::size_t i = 0; i < y.size(); ++i) total += static_cast<double>(y[i]) * g[i];
            return total;
        };
        heads.zero_grads();
        std::vector<float> dpooled(pooled.size(), 0.5f);  // backward adds: start from a non-zero value
        heads.backward(head, pooled.data(), g.data(), n, dpooled.data());
        for (float& d : dpooled) d -= 0.5f;
        const auto& w = heads.tensor(std::string("heads.") + head_name(head) + ".weight");
        const auto& b = heads.tensor(std::string("heads.") + head_name(head) + ".bias");
        const auto params = heads.params();
        const auto grads = heads.grads();
        auto check = [&](const HeadTensorInfo& t) {
            const auto offset = static_cast<std::size_t>(t.offset), count = static_cast<std::size_t>(t.rows * t.cols);
            return testing::check_gradient(params.subspan(offset, count),
                                           std::span<const float>(grads.subspan(offset, count)), loss, options);
        };
        const auto weight_check = check(w);
        EXPECT_TRUE(weight_check.passed()) << "W: " << weight_check.describe();
        const auto bias_check = check(b);
        EXPECT_TRUE(bias_check.passed()) << "b: " << bias_check.describe();
        const auto pooled_check = testing::check_gradient(std::span<float>(pooled), dpooled, loss, options);
        EXPECT_TRUE(pooled_check.passed()) << "pooled: " << pooled_check.describe();
        // Other heads' gradients stay untouched.
        for (const auto& t : heads.tensors()) {
            if (t.head == head) continue;
            for (std::int64_t i = 0; i < t.rows * t.cols; ++i)
                EXPECT_EQ(grads[static_cast<std::size_t>(t.offset + i)], 0.0f) << t.name;
        }
    }
    // A null dpooled only skips that gradient.
    heads.zero_grads();
    const std::vector<float> g(static_cast<std::size_t>(n * 2), 1.0f);
    heads.backward(Head::ValenceArousal, pooled.data(), g.data(), n, nullptr);
    EXPECT_NE(heads.grads()[static_cast<std::size_t>(heads.tensor("heads.valence_arousal.bias").offset)], 0.0f);
}

const std::vector<std::string> emotion_labels{"joy", "sadness", "anger", "fear", "surprise"};
const std::vector<std::string> strategy_labels{"Question", "Reflection of feelings", "Other"};

TEST(Heads, WriteReadRoundTrip) {
    const auto dir = fresh_dir("round_trip");
    const Heads heads(16, small_config(11));
    write_heads(dir.string(), heads, emotion_labels, strategy_labels);
    const LoadedHeads loaded = read_heads_with_labels(dir.string(), 16);
    EXPECT_EQ(loaded.emotion_labels, emotion_labels);
    EXPECT_EQ(loaded.strategy_labels, strategy_labels);
    ASSERT_EQ(loaded.heads.tensors().size(), heads.tensors().size());
    EXPECT_TRUE(std::equal(heads.params().begin(), heads.params().end(), loaded.heads.params().begin()));
    EXPECT_EQ(loaded.heads.outputs(Head::Emotion), 5);
    EXPECT_EQ(loaded.heads.outputs(Head::Strategy), 3);
    EXPECT_TRUE(loaded.heads.enabled(Head::ValenceArousal));

    // A subset of heads round-trips as that subset.
    HeadsConfig only_emotion = small_config(12);
    only_emotion.strategy = only_emotion.valence_arousal = false;
    const Heads emotion(16, only_emotion);
    write_heads(dir.string(), emotion, emotion_labels, {});
    const Heads back = read_heads(dir.string(), 16);
    EXPECT_TRUE(back.enabled(Head::Emotion));
    EXPECT_FALSE(back.enabled(Head::Strategy));
    EXPECT_FALSE(back.enabled(Head::ValenceArousal));
    EXPECT_TRUE(std::equal(emotion.params().begin(), emotion.params().end(), back.params().begin()));
    fs::remove_all(dir);
}

// The emotion head's decision rule and input format travel in heads.json; a file written before
// those keys existed reads as a softmax head with no threshold and no recorded system message.
TEST(Heads, EmotionActivationThresholdAndSystemPromptRoundTrip) {
    const auto dir = fresh_dir("decision_rule");
    HeadsConfig config = small_config(13);
    config.strategy = config.valence_arousal = false;
    config.emotion_activation = EmotionActivation::Sigmoid;
    Heads heads(16, config);
    heads.set_emotion_threshold(0.27);
    heads.set_emotion_system_prompt("Name the emotions.");
    write_heads(dir.string(), heads, emotion_labels, {});
    const LoadedHeads loaded = read_heads_with_labels(dir.string(), 16);
    EXPECT_EQ(loaded.heads.config().emotion_activation, EmotionActivation::Sigmoid);
    EXPECT_DOUBLE_EQ(loaded.heads.config().emotion_threshold, 0.27);
    EXPECT_EQ(loaded.heads.config().emotion_system_prompt, "Name the emotions.");
    // Sigmoid probabilities are per label: σ(0) = ½, σ(ln 3) = ¾.
    const float logits[] = {0.0f, std::log(3.0f), 0.0f, 0.0f, 0.0f};
    float p[5];
    loaded.heads.emotion_probabilities(logits, 1, p);
    EXPECT_FLOAT_EQ(p[0], 0.5f);
    EXPECT_FLOAT_EQ(p[1], 0.75f);

    // The keys as older files lack them.
    const std::string config_path = (dir / "heads.json").string();
    nlohmann::json json = nlohmann::json::parse(std::ifstream(config_path));
    for (const char* key : {"emotion_activation", "emotion_threshold", "emotion_system_prompt"}) json.erase(key);
    std::ofstream(config_path) << json.dump();
    const LoadedHeads old = read_heads_with_labels(dir.string(), 16);
    EXPECT_EQ(old.heads.config().emotion_activation, EmotionActivation::Softmax);
    EXPECT_TRUE(std::isnan(old.heads.config().emotion_threshold));
    EXPECT_TRUE(old.heads.config().emotion_system_prompt.empty());
    // Softmax probabilities share one unit: (1, 3, 1, 1, 1) / 7.
    old.heads.emotion_probabilities(logits, 1, p);
    EXPECT_NEAR(p[1], 3.0f / 7.0f, 1e-7f);

    for (const auto& [key, value] : {std::pair{"emotion_activation", nlohmann::json("tanh")},
                                     std::pair{"emotion_threshold", nlohmann::json(1.5)},
                                     std::pair{"emotion_system_prompt", nlohmann::json(3)}}) {
        nlohmann::json bad = json;
        bad[key] = value;
        std::ofstream(config_path) << bad.dump();
        EXPECT_THROW(read_heads_with_labels(dir.string(), 16), Error) << key;
    }
    fs::remove_all(dir);
}

// No gmock here: a substring check that prints the whole message on failure.
#define EXPECT_CONTAINS(text, needle)                                                     \
    do {                                                                                  \
        const std::string text_ = (text);                                                 \
        EXPECT_NE(text_.find(needle), std::string::npos) << "'" << text_ << "' lacks " << (needle); \
    } while (false)

// The message of the Error f() throws (fails the test when none is thrown).
template <typename F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.what();
    }
    ADD_FAILURE() << "no Error thrown";
    return {};
}

TEST(Heads, ReadErrorsNameFileAndTensor) {
    const auto dir = fresh_dir("errors");
    const std::string root = dir.string();
    const Heads heads(16, small_config());
    EXPECT_CONTAINS(error_of([&] { write_heads(root, heads, {emotion_labels.data(), 4}, strategy_labels); }),
                    "emotion head");

    EXPECT_CONTAINS(error_of([&] { read_heads(root, 16); }), "heads.json");  // nothing written

    write_heads(root, heads, emotion_labels, strategy_labels);
    // Hidden mismatch: heads.json says 16.
    const std::string hidden = error_of([&] { read_heads(root, 32); });
    EXPECT_CONTAINS(hidden, "heads.json");
    EXPECT_CONTAINS(hidden, "32");

    // The json claims more emotion classes than the tensors hold: the wrong shape is named.
    {
        std::ofstream(dir / "heads.json") << R"({"format": "kindred-heads", "version": 1, "hidden": 16,
            "emotion_labels": ["a","b","c","d","e","f"], "strategy_labels": ["x","y","z"], "valence_arousal": true})";
        const std::string message = error_of([&] { read_heads(root, 16); });
        EXPECT_CONTAINS(message, "heads.safetensors");
        EXPECT_CONTAINS(message, "heads.emotion.weight");
        EXPECT_CONTAINS(message, "shape");
    }
    // A tensor the json declares is missing from the file.
    {
        HeadsConfig without_va = small_config();
        without_va.valence_arousal = false;
        write_heads(root, Heads(16, without_va), emotion_labels, strategy_labels);
        std::ofstream(dir / "heads.json") << R"({"format": "kindred-heads", "version": 1, "hidden": 16,
            "emotion_labels": ["a","b","c","d","e"], "strategy_labels": ["x","y","z"], "valence_arousal": true})";
        const std::string message = error_of([&] { read_heads(root, 16); });
        EXPECT_CONTAINS(message, "missing tensor 'heads.valence_arousal.weight'");
    }
    // A tensor the json does not declare.
    {
        write_heads(root, heads, emotion_labels, strategy_labels);
        std::ofstream(dir / "heads.json") << R"({"format": "kindred-heads", "version": 1, "hidden": 16,
            "emotion_labels": ["a","b","c","d","e"], "strategy_labels": [], "valence_arousal": true})";
        EXPECT_CONTAINS(error_of([&] { read_heads(root, 16); }), "unexpected tensor 'heads.strategy");
    }
    // Bad json fields are named.
    {
        std::ofstream(dir / "heads.json") << R"({"format": "kindred-heads", "version": 1, "hidden": 16,
            "emotion_labels": "joy", "strategy_labels": [], "valence_arousal": true})";
        EXPECT_CONTAINS(error_of([&] { read_heads(root, 16); }), "'emotion_labels'");
        std::ofstream(dir / "heads.json") << R"({"format": "kindred-heads", "version": 1, "hidden": 16})";
        EXPECT_CONTAINS(error_of([&] { read_heads(root, 16); }), "missing key 'emotion_labels'");
        std::ofstream(dir / "heads.json") << "{not json";
        EXPECT_CONTAINS(error_of([&] { read_heads(root, 16); }), "heads.json");
    }
    // A wrong dtype.
    {
        write_heads(root, heads, emotion_labels, strategy_labels);
        safetensors::Writer writer;
        std::vector<std::uint16_t> halves(static_cast<std::size_t>(heads.params().size()), 0);
        std::size_t at = 0;
        for (const auto& t : heads.tensors()) {
            std::vector<std::uint64_t> shape{static_cast<std::uint64_t>(t.rows)};
            if (!t.is_bias) shape.push_back(static_cast<std::uint64_t>(t.cols));
            const auto count = static_cast<std::size_t>(t.rows * t.cols);
            writer.add_tensor(t.name, DType::F16, shape,
                              {reinterpret_cast<const std::uint8_t*>(halves.data() + at), count * 2});
            at += count;
        }
        writer.write((dir / "heads.safetensors").string());
        EXPECT_CONTAINS(error_of([&] { read_heads(root, 16); }), "'heads.emotion.weight' is not F32");
    }
    fs::remove_all(dir);
}

}  // namespace
}  // namespace kindred::model
