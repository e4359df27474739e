// Tests for kernels/lora.h: PEFT goldens (tests/goldens/train_kernels/lora.json, written by
// tools/goldens/train_kernels.py), finite differences for dA, dB and dx (with and without
// dropout), the RNG's published values, PEFT's init bound and dropout's statistics.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "gradient_check.h"
#include "kernel_test_util.h"
#include "kernels/lora.h"
#include "test_paths.h"

namespace kindred::kernels {
namespace {

using testing::check_gradient;
using testing::GradientCheckOptions;
using testing::random_floats;

nlohmann::json golden() {
    std::ifstream in(testing::source_path("tests/goldens/train_kernels/lora.json"));
    return nlohmann::json::parse(in);
}

std::vector<float> floats(const nlohmann::json& j) { return j.get<std::vector<float>>(); }

void expect_close(const std::vector<float>& actual, const std::vector<float>& expected, double abs, const char* what) {
    ASSERT_EQ(actual.size(), expected.size()) << what;
    for (std::size_t i = 0; i < actual.size(); ++i) ASSERT_NEAR(actual[i], expected[i], abs) << what << " index " << i;
}

// Products of ≤ 10 fp32 terms of size ≤ 3 (x, dy ~ N(0,1); A, B ~ 0.3·N(0,1)) times scale ≤ 4:
// fp32 rounding ≲ 10 · 6e-8 · 3 · 4 ≈ 7e-6 in the worst case; the references are float64.
constexpr double golden_tolerance = 1e-5;

TEST(Lora, MatchesPeftForwardAndBackward) {
    const auto all = golden();
    for (const char* name : {"plain", "rslora"}) {
        SCOPED_TRACE(name);
        const auto& j = all.at(name);
        const float scale = lora_scale(j.at("alpha").get<float>(), j.at("rank").get<std::int64_t>(),
                                       j.at("rslora").get<bool>());
        EXPECT_FLOAT_EQ(scale, j.at("scaling").get<float>());
        const LoraShape s{j.at("tokens"), j.at("in"), j.at("out"), j.at("rank"), scale};
        const auto a = floats(j.at("a")), b = floats(j.at("b")), x = floats(j.at("x")), dy = floats(j.at("dy"));
        std::vector<float> y(s.tokens * s.out, 0.0f), xa(s.tokens * s.rank);
        lora_forward(y.data(), xa.data(), x.data(), a.data(), b.data(), s);
        expect_close(y, floats(j.at("lora_y")), golden_tolerance, "y");
        std::vector<float> du(x.size(), 0.0f), da(a.size(), 0.0f), db(b.size(), 0.0f);
        lora_backward(du.data(), da.data(), db.data(), dy.data(), x.data(), xa.data(), a.data(), b.data(), s);
        expect_close(da, floats(j.at("da")), golden_tolerance, "da");
        expect_close(db, floats(j.at("db")), golden_tolerance, "db");
        expect_close(du, floats(j.at("dx_lora")), golden_tolerance, "dx");
    }
}

// L = Σ y·dy is linear in A, in B and in x separately (the dropout mask is fixed by its seed), so a
// central difference has no truncation error and a large step only shrinks the fp32 rounding noise
// of y (~1e-7 · Σ|y·dy|) divided by 2h. With h = 0.1 the measured max abs error is 3.7e-6 on O(1)
// gradients (3e-5 at h = 1e-2, 3.5e-4 at 1e-3: pure noise/h), so abs 3e-5 + rel 1e-4.
struct Problem {
    LoraShape s{7, 9, 6, 3, lora_scale(6.0f, 3, false)};
    std::vector<float> x = random_floats(7 * 9, 51), a = random_floats(3 * 9, 52), b = random_floats(6 * 3, 53),
                       dy = random_floats(7 * 6, 54);
    float p = 0.0f;
    std::uint64_t seed = 99;

    // Forward through dropout (when p > 0) and LoRA; returns Σ y·dy in double.
    double loss() const {
        std::vector<float> u(x.size()), y(s.tokens * s.out, 0.0f), xa(s.tokens * s.rank);
        std::vector<std::uint8_t> keep(x.size());
        if (p > 0.0f)
            dropout_forward(u.data(), keep.data(), x.data(), static_cast<std::int64_t>(x.size()), p, seed, 0);
        else
            u = x;
        lora_forward(y.data(), xa.data(), u.data(), a.data(), b.data(), s);
        double sum = 0.0;
        for (std::size_t i = 0; i < y.size(); ++i) sum += static_cast<double>(y[i]) * dy[i];
        return sum;
    }
};

TEST(Lora, BackwardMatchesFiniteDifferences) {
    for (const float p : {0.0f, 0.3f}) {
        SCOPED_TRACE(p);
        Problem pr;
        pr.p = p;
        const auto n = static_cast<std::int64_t>(pr.x.size());
        std::vector<float> u(pr.x.size()), xa(pr.s.tokens * pr.s.rank), y(pr.s.tokens * pr.s.out, 0.0f);
        std::vector<std::uint8_t> keep(pr.x.size());
        if (p > 0.0f)
            dropout_forward(u.data(), keep.data(), pr.x.data(), n, p, pr.seed, 0);
        else
            u = pr.x;
        lora_forward(y.data(), xa.data(), u.data(), pr.a.data(), pr.b.data(), pr.s);
        std::vector<float> du(pr.x.size(), 0.0f), da(pr.a.size(), 0.0f), db(pr.b.size(), 0.0f);
        lora_backward(du.data(), da.data(), db.data(), pr.dy.data(), u.data(), xa.data(), pr.a.data(), pr.b.data(),
                      pr.s);
        std::vector<float> dx(pr.x.size(), 0.0f);
        if (p > 0.0f)
            dropout_backward(dx.data(), du.data(), keep.data(), n, p);
        else
            dx = du;
        const GradientCheckOptions options{1e-1, 3e-5, 1e-4};
        auto loss = [&] { return pr.loss(); };
        const auto ra = check_gradient(pr.a, da, loss, options);
        EXPECT_TRUE(ra.passed()) << "dA: " << ra.describe();
        const auto rb = check_gradient(pr.b, db, loss, options);
        EXPECT_TRUE(rb.passed()) << "dB: " << rb.describe();
        const auto rx = check_gradient(pr.x, dx, loss, options);
        EXPECT_TRUE(rx.passed()) << "dx: " << rx.describe();
    }
}

TEST(Lora, BackwardAccumulatesAndSkipsNullGradients) {
    Problem pr;
    std::vector<float> xa(pr.s.tokens * pr.s.rank), y(pr.s.tokens * pr.s.out, 0.0f);
    lora_forward(y.data(), xa.data(), pr.x.data(), pr.a.data(), pr.b.data(), pr.s);
    std::vector<float> once(pr.a.size(), 0.0f), twice(pr.a.size(), 0.0f);
    lora_backward(nullptr, once.data(), nullptr, pr.dy.data(), pr.x.data(), xa.data(), pr.a.data(), pr.b.data(), pr.s);
    for (int i = 0; i < 2; ++i)
        lora_backward(nullptr, twice.data(), nullptr, pr.dy.data(), pr.x.data(), xa.data(), pr.a.data(), pr.b.data(),
                      pr.s);
    for (std::size_t i = 0; i < once.size(); ++i) EXPECT_EQ(twice[i], 2.0f * once[i]);  // x + x is exact
}

TEST(Lora, ScaleConventions) {
    EXPECT_EQ(lora_scale(16.0f, 8, false), 2.0f);
    EXPECT_EQ(lora_scale(16.0f, 16, true), 4.0f);
    EXPECT_THROW(lora_scale(16.0f, 0, false), Error);
    EXPECT_THROW(lora_forward(nullptr, nullptr, nullptr, nullptr, nullptr, LoraShape{1, 0, 1, 1, 1.0f}), Error);
}

// The first outputs of SplitMix64 seeded with 0, as published with Vigna's reference code.
TEST(CounterRng, IsSplitMix64) {
    const std::uint64_t expected[] = {0xE220A8397B1DCDAFull, 0x6E789E6AA1B965F4ull, 0x06C45D188009454Full};
    for (std::uint64_t i = 0; i < 3; ++i)
        EXPECT_EQ(counter_uniform(0, i), static_cast<float>(expected[i] >> 40) * 0x1.0p-24f);
}

TEST(LoraInit, UsesPeftKaimingBoundAndZeroB) {
    const auto j = golden();
    const std::int64_t rank = 8, in = j.at("kaiming_fan_in"), out = 5;
    const double bound = j.at("kaiming_bound");
    ASSERT_NEAR(bound, 1.0 / std::sqrt(static_cast<double>(in)), 1e-15);  // a = √5 gives exactly 1/√in
    std::vector<float> a(rank * in), b(out * rank, 1.0f);
    lora_init(a.data(), b.data(), rank, in, out, 7);
    float largest = 0.0f;
    double mean = 0.0;
    for (const float v : a) {
        largest = std::max(largest, std::fabs(v));
        mean += v;
    }
    mean /= static_cast<double>(a.size());
    EXPECT_LE(largest, bound);
    EXPECT_GT(largest, 0.99 * bound);  // 4608 uniform draws: P(all below 0.99·bound) = 0.99^4608 ≈ 1e-20
    // Mean of n uniforms on [−b, b] has σ = b/√(3n) ≈ 3.5e-4 here; 5σ.
    EXPECT_LT(std::fabs(mean), 5.0 * bound / std::sqrt(3.0 * static_cast<double>(a.size())));
    for (const float v : b) EXPECT_EQ(v, 0.0f);
    std::vector<float> again(a.size()), other(a.size());
    lora_init(again.data(), b.data(), rank, in, out, 7);
    lora_init(other.data(), b.data(), rank, in, out, 8);
    EXPECT_EQ(a, again);
    EXPECT_NE(a, other);
}

TEST(Dropout, KeepsOneMinusPScaledAndOffsetsAddressOneStream) {
    const std::int64_t n = 100000;
    const float p = 0.1f;
    const std::vector<float> x(n, 1.0f);
    std::vector<float> out(n);
    std::vector<std::uint8_t> keep(n);
    dropout_forward(out.data(), keep.data(), x.data(), n, p, 5, 0);
    std::int64_t kept = 0;
    for (std::int64_t i = 0; i < n; ++i) {
        kept += keep[i];
        EXPECT_EQ(out[i], keep[i] != 0 ? 1.0f / (1.0f - p) : 0.0f);
    }
    // Binomial: σ of the kept fraction = √(p(1−p)/n) ≈ 9.5e-4; 5σ.
    EXPECT_NEAR(static_cast<double>(kept) / n, 1.0 - p, 5.0 * std::sqrt(p * (1.0 - p) / n));
    std::vector<float> tail(100);
    std::vector<std::uint8_t> tail_keep(100);
    dropout_forward(tail.data(), tail_keep.data(), x.data(), 100, p, 5, 500);
    for (std::int64_t i = 0; i < 100; ++i) EXPECT_EQ(tail_keep[i], keep[500 + i]);
    EXPECT_THROW(dropout_forward(out.data(), keep.data(), x.data(), n, 1.0f, 5, 0), Error);
}

}  // namespace
}  // namespace kindred::kernels
