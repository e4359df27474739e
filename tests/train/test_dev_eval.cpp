// Tests for train/dev_eval.h on the random tiny Llama (2 layers, hidden 64, vocab 96): the packed
// NLL equals the examples' losses one by one, the heads are read at the right rows, hand-checkable
// head metrics from heads whose predictions are fixed by their biases, the teacher KL (0 when the
// teacher is the student), NaN -> null in JSON, determinism, and the input checks.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"
#include "eval/metrics.h"
#include "kernels/loss.h"
#include "model/heads.h"
#include "model/lora_adapters.h"
#include "model/trainable_decoder.h"
#include "tiny_sft_model.h"
#include "train/dev_eval.h"
#include "train/safety_teacher.h"

namespace kindred::train {
namespace {

using testing::tiny;

constexpr std::int64_t kHidden = 64;  // the tiny model's

// An example of `length` tokens (ids from `seed`, inside the vocabulary of 96) whose targets are
// the next tokens after `prompt` tokens, with one head site at the prompt's last token.
TokenizedExample make_example(std::size_t length, std::size_t prompt, std::uint32_t seed, std::size_t line) {
    TokenizedExample e;
    e.line = line;
    std::uint32_t state = seed * 2654435761u + 12345u;
    for (std::size_t t = 0; t < length; ++t) {
        state = state * 1664525u + 1013904223u;
        e.tokens.push_back(static_cast<std::int32_t>(3 + (state >> 8) % 90));
    }
    e.targets.assign(length, kIgnoreTarget);
    for (std::size_t t = prompt; t + 1 < length; ++t) {
        e.targets[t] = e.tokens[t + 1];
        ++e.target_count;
    }
    HeadSite site;
    site.position = static_cast<std::int32_t>(prompt);
    e.sites.push_back(site);
    return e;
}

struct Fixture {
    model::LoraAdapters adapters{tiny().config(), model::LoraConfig{}, false};
    model::TrainableDecoder trainer{tiny(), adapters, false, 64};
    Fixture() {
        // Non-zero B, so the student differs from the base (LoRA starts with B = 0).
        auto params = adapters.params();
        for (const auto& info : adapters.tensors()) {
            if (!info.is_b) continue;
            for (std::int64_t i = 0; i < info.rows * info.cols; ++i)
                params[static_cast<std::size_t>(info.offset + i)] = 0.01f * static_cast<float>((i * 7919) % 13 - 6);
        }
    }
    // The final hidden state of one example run alone.
    std::vector<float> hidden_alone(const TokenizedExample& e) {
        model::TrainBatch batch{e.tokens, e.targets, {}, {}, {}, {}};
        const auto h = trainer.forward(batch, false);
        return {h.begin(), h.end()};
    }
};

std::vector<TokenizedExample> dev_set() {
    std::vector<TokenizedExample> dev;
    const std::size_t lengths[] = {20, 14, 25, 9, 30};
    for (std::size_t i = 0; i < 5; ++i) dev.push_back(make_example(lengths[i], lengths[i] / 3, static_cast<std::uint32_t>(i), i + 1));
    return dev;
}

// Heads with zero weights: every site gets the biases as outputs, so predictions are known.
model::Heads bias_only_heads(const std::vector<std::pair<std::string, std::vector<float>>>& biases,
                             model::HeadsConfig config = {}) {
    model::Heads heads(kHidden, config);
    std::fill(heads.params().begin(), heads.params().end(), 0.0f);
    for (const auto& [name, values] : biases) {
        const auto& info = heads.tensor(name);
        std::copy(values.begin(), values.end(), heads.params().begin() + info.offset);
    }
    return heads;
}

TEST(DevEval, NllIsThePerTokenMeanOfTheExamplesAlone) {
    Fixture f;
    const auto dev = dev_set();
    double sum = 0.0;
    std::size_t count = 0;
    for (const auto& e : dev) {
        const auto totals = f.trainer.loss_only({e.tokens, e.targets, {}, {}, {}, {}});
        sum += totals.loss;
        count += static_cast<std::size_t>(totals.counted);
    }
    const DevMetrics m = evaluate_dev(f.trainer, nullptr, nullptr, dev, 64);
    EXPECT_EQ(m.nll_tokens, count);
    // Packed rows run the same products as the examples alone; only sgemm blocking over a
    // different row count changes the summation order (fp32, relative ~1e-6).
    EXPECT_NEAR(m.nll, sum / static_cast<double>(count), 1e-5 * m.nll);
    EXPECT_TRUE(std::isnan(m.emotion_macro_f1));
    EXPECT_TRUE(std::isnan(m.strategy_accuracy));
    EXPECT_TRUE(std::isnan(m.va_mse));
    EXPECT_TRUE(std::isnan(m.safe_kl));
    EXPECT_EQ(m.emotion_sites + m.strategy_sites + m.va_sites, 0u);

    // Deterministic: the same call gives the same bits, whatever dropout the adapters have.
    const DevMetrics again = evaluate_dev(f.trainer, nullptr, nullptr, dev, 64);
    EXPECT_EQ(again.nll, m.nll);
    // Shorter rows pack differently; the mean is the same up to summation order.
    const DevMetrics narrow = evaluate_dev(f.trainer, nullptr, nullptr, dev, 30);
    EXPECT_NEAR(narrow.nll, m.nll, 1e-5 * m.nll);
}

// A VA head with random weights: the packed evaluation must read each example's site row, so its
// MSE/MAE equal those computed from each example's hidden state run alone.
TEST(DevEval, HeadsReadTheSiteRowOfEachPackedExample) {
    Fixture f;
    auto dev = dev_set();
    model::HeadsConfig config;
    config.emotion = false;
    config.strategy = false;
    config.seed = 5;
    const model::Heads heads(kHidden, config);
    std::vector<double> truth, predicted;
    for (std::size_t i = 0; i < dev.size(); ++i) {
        auto& site = dev[i].sites[0];
        site.has_va = true;
        site.valence = 0.1f * static_cast<float>(i) - 0.2f;
        site.arousal = 0.3f - 0.05f * static_cast<float>(i);
        const auto h = f.hidden_alone(dev[i]);
        float y[2];
        heads.forward(model::Head::ValenceArousal, h.data() + site.position * kHidden, 1, y);
        truth.insert(truth.end(), {site.valence, site.arousal});
        predicted.insert(predicted.end(), {y[0], y[1]});
    }
    const DevMetrics m = evaluate_dev(f.trainer, &heads, nullptr, dev, 64);
    EXPECT_EQ(m.va_sites, dev.size());
    // Hidden states of a packed row vs alone differ by sgemm summation order (~1e-6 relative);
    // through a 64-wide head with |W| <= 1/8 that moves outputs by ~1e-6.
    EXPECT_NEAR(m.va_mse, eval::mean_squared_error(truth, predicted), 1e-5);
    EXPECT_NEAR(m.va_mae, eval::mean_absolute_error(truth, predicted), 1e-5);
    EXPECT_TRUE(std::isnan(m.emotion_macro_f1));  // head off
    EXPECT_TRUE(std::isnan(m.strategy_macro_f1));
}

TEST(DevEval, HeadMetricsByHand) {
    Fixture f;
    auto dev = dev_set();
    // Emotion bias: argmax 2 (1.5); class 1 (1.0) is within log 2 (0.69) of it, i.e. has at least
    // half its probability, class 3 (0.7) is not. Multi-label prediction {1, 2}.
    std::vector<float> emotion(27, 0.0f);
    emotion[2] = 1.5f;
    emotion[1] = 1.0f;
    emotion[3] = 0.7f;
    std::vector<float> strategy(8, 0.0f);
    strategy[4] = 2.0f;
    const auto heads = bias_only_heads({{"heads.emotion.bias", emotion},
                                        {"heads.strategy.bias", strategy},
                                        {"heads.valence_arousal.bias", {0.1f, -0.2f}}});
    // Single-label truths 2, 5, 2 (predicted 2, 2, 2).
    dev[0].sites[0].emotions = {2};
    dev[1].sites[0].emotions = {5};
    dev[2].sites[0].emotions = {2};
    // Multi-label: {1, 2} (GoEmotions example) and {2, 7} (two labels on a non-GoEmotions example).
    dev[3].multi_label = true;
    dev[3].sites[0].emotions = {1, 2};
    dev[4].sites[0].emotions = {2, 7};
    // Strategy truths 4, 0 (predicted 4, 4).
    dev[0].sites[0].strategy = 4;
    dev[3].sites[0].strategy = 0;
    // VA truths (0.5, 0.3) and (-0.1, -0.2) against (0.1, -0.2): errors 0.4, 0.5, 0.2, 0.
    dev[1].sites[0].has_va = true;
    dev[1].sites[0].valence = 0.5f;
    dev[1].sites[0].arousal = 0.3f;
    dev[2].sites[0].has_va = true;
    dev[2].sites[0].valence = -0.1f;
    dev[2].sites[0].arousal = -0.2f;

    const DevMetrics m = evaluate_dev(f.trainer, &heads, nullptr, dev, 64);
    EXPECT_EQ(m.emotion_sites, 3u);
    EXPECT_NEAR(m.emotion_accuracy, 2.0 / 3.0, 1e-12);
    // Class 2: precision 2/3, recall 1, F1 0.8; class 5: F1 0. Macro over {2, 5}: 0.4.
    EXPECT_NEAR(m.emotion_macro_f1, 0.4, 1e-12);
    EXPECT_EQ(m.emotion_multilabel_sites, 2u);
    // Predicted {1, 2} twice. Label 1: tp 1, fp 1 -> F1 2/3; label 2: tp 2 -> 1; label 7: fn 1 -> 0.
    // Macro over the present labels {1, 2, 7}: 5/9.
    EXPECT_NEAR(m.emotion_multilabel_f1, 5.0 / 9.0, 1e-12);
    // The thresholded rule over all 27 labels (eval/multilabel.h): both sites have softmax
    // probabilities p2 0.135, p1 0.082, p3 0.061 and 0.0301 for the 24 others. t <= 0.03 predicts
    // every label: labels 1 and 7 F1 2/3, label 2 F1 1, the other 24 F1 0 (false positives), macro
    // 7/3 / 27 = 7/81, the best (higher thresholds drop label 7's true positive); ties go to the
    // lowest grid point, 0.01. Micro: 4 true positives, 50 false positives: 8/58.
    EXPECT_DOUBLE_EQ(m.emotion_threshold, 0.01);
    EXPECT_NEAR(m.emotion_threshold_macro_f1, 7.0 / 81.0, 1e-12);
    EXPECT_NEAR(m.emotion_threshold_micro_f1, 8.0 / 58.0, 1e-12);
    EXPECT_EQ(m.strategy_sites, 2u);
    EXPECT_NEAR(m.strategy_accuracy, 0.5, 1e-12);
    EXPECT_NEAR(m.strategy_macro_f1, 1.0 / 3.0, 1e-12);  // class 4: p 1/2, r 1 -> 2/3; class 0: 0
    EXPECT_EQ(m.va_sites, 2u);
    // Truths are floats: 0.3f etc. carry ~1e-8 representation error.
    EXPECT_NEAR(m.va_mse, (0.16 + 0.25 + 0.04 + 0.0) / 4.0, 1e-7);
    EXPECT_NEAR(m.va_mae, (0.4 + 0.5 + 0.2 + 0.0) / 4.0, 1e-7);
    EXPECT_FALSE(std::isnan(m.nll));

    // The same sites scored by eval/metrics.h directly.
    const std::vector<int> truth = {2, 5, 2}, pred = {2, 2, 2};
    EXPECT_DOUBLE_EQ(m.emotion_macro_f1, eval::macro_f1(truth, pred, 27));
}

// The teacher's KL: ~0 when the teacher reads exactly what the student reads and the student is
// the base (B = 0); positive once the teacher has a prompt in front, and then the per-token mean of
// fused_topk_kl over each example's target rows run alone.
TEST(DevEval, SafetyKlAgainstTheTeacher) {
    const std::int64_t vocab = tiny().config().vocab_size;
    auto dev = dev_set();
    for (auto& e : dev) {
        e.teacher_tokens = e.tokens;
        for (std::size_t t = 0; t < e.targets.size(); ++t) {
            if (e.targets[t] != kIgnoreTarget) e.teacher_positions.push_back(static_cast<std::int32_t>(t));
        }
    }
    {
        model::LoraAdapters adapters(tiny().config(), model::LoraConfig{}, false);  // B = 0: student = base
        model::TrainableDecoder trainer(tiny(), adapters, false, 64);
        SafetyTeacher teacher(tiny(), 2.0f, vocab);
        const DevMetrics m = evaluate_dev(trainer, nullptr, &teacher, dev, 64);
        // Teacher (Decoder::forward) and student (TrainableDecoder) compute the same logits through
        // different kernels' summation orders (~1e-6 relative); KL is second order in that difference,
        // and the tail bucket of a k = vocab teacher holds only fp32 rounding (<= 96 · 6e-8).
        EXPECT_GE(m.safe_kl, -1e-6);
        EXPECT_LT(m.safe_kl, 1e-5);
    }
    Fixture f;
    const std::vector<std::int32_t> rules = {1, 30, 31, 32};
    for (auto& e : dev) {
        e.teacher_tokens.insert(e.teacher_tokens.begin(), rules.begin(), rules.end());
        for (auto& p : e.teacher_positions) p += static_cast<std::int32_t>(rules.size());
    }
    SafetyTeacher teacher(tiny(), 2.0f, 8);
    double sum = 0.0;
    std::size_t tokens = 0;
    for (std::size_t i = 0; i < dev.size(); ++i) {
        const auto& targets = teacher.targets(i, dev[i]);
        const auto h = f.hidden_alone(dev[i]);
        std::vector<float> rows;
        for (std::size_t t = 0; t < dev[i].targets.size(); ++t) {
            if (dev[i].targets[t] == kIgnoreTarget) continue;
            rows.insert(rows.end(), h.begin() + static_cast<std::ptrdiff_t>(t) * kHidden,
                        h.begin() + static_cast<std::ptrdiff_t>(t + 1) * kHidden);
        }
        const auto n = static_cast<std::int64_t>(targets.targets());
        sum += kernels::fused_topk_kl(nullptr, rows.data(), f.trainer.output_rows(),
                                      {targets.ids.data(), targets.probs.data(), targets.residual.data(), targets.k},
                                      {n, kHidden, vocab}, 2.0f, 1.0f);
        tokens += targets.targets();
    }
    const DevMetrics m = evaluate_dev(f.trainer, nullptr, &teacher, dev, 64);
    EXPECT_GT(m.safe_kl, 1e-4);
    // Packed vs alone: summation order only (see the NLL test).
    EXPECT_NEAR(m.safe_kl, sum / static_cast<double>(tokens), 1e-5 * m.safe_kl + 1e-7);
}

TEST(DevEval, JsonWritesNanAsNull) {
    DevMetrics m;
    m.nll = 2.5;
    m.nll_tokens = 40;
    m.strategy_sites = 3;
    const auto json = to_json(m);
    EXPECT_EQ(json["nll"], 2.5);
    EXPECT_EQ(json["nll_tokens"], 40);
    EXPECT_TRUE(json["emotion_macro_f1"].is_null());
    EXPECT_TRUE(json["safe_kl"].is_null());
    EXPECT_EQ(json["strategy_sites"], 3);
    EXPECT_EQ(json.size(), 17u);
    EXPECT_TRUE(json["emotion_threshold"].is_null());
    EXPECT_NO_THROW((void)json.dump());  // no NaN reaches the serializer
}

TEST(DevEval, RefusesBadInput) {
    Fixture f;
    auto dev = dev_set();
    const DevMetrics empty = evaluate_dev(f.trainer, nullptr, nullptr, {}, 64);
    EXPECT_TRUE(std::isnan(empty.nll));
    EXPECT_THROW(evaluate_dev(f.trainer, nullptr, nullptr, dev, 0), Error);
    EXPECT_THROW(evaluate_dev(f.trainer, nullptr, nullptr, dev, 65), Error);  // past the trainer's 64
    EXPECT_THROW(evaluate_dev(f.trainer, nullptr, nullptr, dev, 29), Error);  // a 30-token example
    const model::Heads heads(kHidden, {});
    dev[2].sites[0].emotions = {27};  // one past the 27 classes
    try {
        evaluate_dev(f.trainer, &heads, nullptr, dev, 64);
        FAIL() << "expected an Error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("line 3 has emotion label 27"), std::string::npos) << e.what();
    }
    dev[2].sites[0].emotions = {};
    dev[2].sites[0].strategy = 8;
    EXPECT_THROW(evaluate_dev(f.trainer, &heads, nullptr, dev, 64), Error);
    const model::Heads narrow(32, {});
    dev[2].sites[0].strategy = -1;
    EXPECT_THROW(evaluate_dev(f.trainer, &narrow, nullptr, dev, 64), Error);  // hidden 32 vs 64
}

}  // namespace
}  // namespace kindred::train
