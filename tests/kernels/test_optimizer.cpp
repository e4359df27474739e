// Tests for kernels/optimizer.h: five torch.optim.AdamW steps with clip_grad_norm_ before each
// (tests/goldens/train_kernels/adamw.json, written by tools/goldens/train_kernels.py), and the
// norm/clipping/decay edge cases.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <span>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "kernel_test_util.h"
#include "kernels/optimizer.h"
#include "test_paths.h"

namespace kindred::kernels {
namespace {

using Buffers = std::vector<std::vector<float>>;

TEST(AdamW, MatchesTorchWithClippingOverFiveSteps) {
    std::ifstream in(testing::source_path("tests/goldens/train_kernels/adamw.json"));
    const auto j = nlohmann::json::parse(in);
    const AdamWConfig config{j.at("lr"), j.at("beta1"), j.at("beta2"), j.at("eps"), j.at("weight_decay")};
    const double max_norm = j.at("max_norm");
    auto params = j.at("initial").get<Buffers>();
    Buffers m, v;
    for (const auto& p : params) {
        m.emplace_back(p.size(), 0.0f);
        v.emplace_back(p.size(), 0.0f);
    }
    std::int64_t step = 0;
    for (const auto& expected : j.at("steps")) {
        ++step;
        SCOPED_TRACE(step);
        auto grads = expected.at("grads").get<Buffers>();
        std::vector<std::span<float>> views(grads.begin(), grads.end());
        const double norm = clip_grad_norm(views, max_norm);
        // torch sums squares in fp32 per tensor, we in double: ~1e-7 relative apart.
        EXPECT_NEAR(norm, expected.at("norm").get<double>(), 1e-6 * norm);
        // The update itself is fed torch's clipped gradients, so that it is compared on equal inputs.
        const auto clipped = expected.at("clipped").get<Buffers>();
        for (std::size_t b = 0; b < grads.size(); ++b) {
            for (std::size_t i = 0; i < grads[b].size(); ++i)  // ≤ 1–2 fp32 ulps: torch's norm is fp32
                EXPECT_NEAR(grads[b][i], clipped[b][i], 4e-7 * std::fabs(clipped[b][i]));
            adamw_step(params[b].data(), clipped[b].data(), m[b].data(), v[b].data(),
                       static_cast<std::int64_t>(params[b].size()), config, step);
            const auto p_ref = expected.at("params")[b].get<std::vector<float>>();
            const auto m_ref = expected.at("exp_avg")[b].get<std::vector<float>>();
            const auto v_ref = expected.at("exp_avg_sq")[b].get<std::vector<float>>();
            // Same fp32 operations in the same order as torch's CPU kernels (FMAs included), on the
            // same inputs: the moments are bit-identical. The parameter's final addcdiv_ differs by
            // one ulp for ~0.02% of elements in a 100k-element probe (a rounding of torch's
            // vectorised kernel not reproduced), which 5 steps can compound to a few ulps.
            EXPECT_EQ(m[b], m_ref);
            EXPECT_EQ(v[b], v_ref);
            for (std::size_t i = 0; i < p_ref.size(); ++i)
                EXPECT_NEAR(params[b][i], p_ref[i], 4 * 1.2e-7 * std::fabs(p_ref[i])) << i;
        }
    }
}

TEST(AdamW, ZeroGradientOnlyDecays) {
    std::vector<float> p{1.0f, -2.0f, 0.5f}, g(3, 0.0f), m(3, 0.0f), v(3, 0.0f);
    const AdamWConfig config{0.1, 0.9, 0.999, 1e-8, 0.5};
    adamw_step(p.data(), g.data(), m.data(), v.data(), 3, config, 1);
    const auto decay = static_cast<float>(1.0 - 0.1 * 0.5);
    EXPECT_EQ(p, (std::vector<float>{decay, -2.0f * decay, 0.5f * decay}));  // m = 0: the update is exactly 0
    EXPECT_THROW(adamw_step(p.data(), g.data(), m.data(), v.data(), 3, config, 0), Error);
}

TEST(GradNorm, SumsSquaresOfAllBuffersInDouble) {
    const auto a = testing::random_floats(1000, 61), b = testing::random_floats(7, 62);
    double expected = 0.0;
    for (const float x : a) expected += static_cast<double>(x) * x;
    for (const float x : b) expected += static_cast<double>(x) * x;
    const std::vector<std::span<const float>> buffers{a, b, {}};
    EXPECT_EQ(global_grad_norm(buffers), std::sqrt(expected));
    EXPECT_EQ(global_grad_norm({}), 0.0);
}

TEST(GradNorm, ClipsOnlyAboveMaxNorm) {
    std::vector<float> g{3.0f, 4.0f};
    std::vector<std::span<float>> views{g};
    EXPECT_EQ(clip_grad_norm(views, 10.0), 5.0);
    EXPECT_EQ(g, (std::vector<float>{3.0f, 4.0f}));  // coefficient ≥ 1: untouched
    EXPECT_EQ(clip_grad_norm(views, 1.0), 5.0);
    const auto coefficient = static_cast<float>(1.0 / (5.0 + 1e-6));
    EXPECT_EQ(g, (std::vector<float>{3.0f * coefficient, 4.0f * coefficient}));
    std::vector<float> bad{1.0f, std::numeric_limits<float>::infinity()};
    std::vector<std::span<float>> bad_views{bad};
    EXPECT_FALSE(std::isfinite(clip_grad_norm(bad_views, 1.0)));
    EXPECT_EQ(bad[0], 1.0f);
}

}  // namespace
}  // namespace kindred::kernels
