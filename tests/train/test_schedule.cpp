// Tests for train/schedule.h against transformers' schedulers
// (tests/goldens/train_kernels/schedules.json, written by tools/goldens/train_kernels.py).
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "test_paths.h"
#include "train/schedule.h"

namespace kindred::train {
namespace {

TEST(LrSchedule, MatchesTransformers) {
    std::ifstream in(testing::source_path("tests/goldens/train_kernels/schedules.json"));
    const auto cases = nlohmann::json::parse(in).at("cases");
    ASSERT_EQ(cases.size(), 4u);
    for (const auto& c : cases) {
        SCOPED_TRACE(c.at("name").get<std::string>());
        const LrSchedule schedule{c.at("peak_lr"), c.at("warmup_steps"), c.at("total_steps"),
                                  c.at("decay") == "cosine" ? LrDecay::Cosine : LrDecay::Constant,
                                  c.at("min_lr_ratio"), c.at("cycles")};
        const auto expected = c.at("lr").get<std::vector<double>>();
        for (std::size_t step = 0; step < expected.size(); ++step) {
            // The same double formula as transformers' lr_lambda times LambdaLR's base_lr; only
            // libm's cos against CPython's (the same libm here) could differ, by an ulp or two.
            EXPECT_NEAR(learning_rate(schedule, static_cast<std::int64_t>(step)), expected[step],
                        1e-15 + 1e-13 * expected[step])
                << "step " << step;
        }
    }
}

TEST(LrSchedule, WarmupStartsAtZeroAndCosineEndsAtFloor) {
    const LrSchedule s{1.0, 4, 20, LrDecay::Cosine, 0.25, 0.5};
    EXPECT_EQ(learning_rate(s, 0), 0.0);
    EXPECT_EQ(learning_rate(s, 2), 0.5);
    EXPECT_EQ(learning_rate(s, 4), 1.0);
    EXPECT_NEAR(learning_rate(s, 20), 0.25, 1e-15);
}

TEST(LrSchedule, RejectsInconsistentSchedules) {
    EXPECT_THROW(validate(LrSchedule{-1.0, 0, 10, LrDecay::Cosine, 0.0, 0.5}), Error);
    EXPECT_THROW(validate(LrSchedule{1.0, -1, 10, LrDecay::Cosine, 0.0, 0.5}), Error);
    EXPECT_THROW(validate(LrSchedule{1.0, 0, 0, LrDecay::Cosine, 0.0, 0.5}), Error);
    EXPECT_THROW(validate(LrSchedule{1.0, 0, 10, LrDecay::Cosine, 1.5, 0.5}), Error);
    EXPECT_THROW(validate(LrSchedule{1.0, 0, 10, LrDecay::Cosine, 0.0, 0.0}), Error);
    EXPECT_NO_THROW(validate(LrSchedule{1.0, 3, 0, LrDecay::Constant, 0.0, 0.5}));
    EXPECT_THROW(learning_rate(LrSchedule{1.0, 3, 0, LrDecay::Constant, 0.0, 0.5}, -1), Error);
}

}  // namespace
}  // namespace kindred::train
