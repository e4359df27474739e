// Tests for kernels/cpu/bf16_gemm.h: rounding of rows, both packings, and AMX products against a
// double-precision product of the bf16-rounded operands. Skipped where the CPU has no AMX-BF16.
#include <gtest/gtest.h>

#include <sys/mman.h>
#include <unistd.h>

#include <bit>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "core/half.h"
#include "kernel_test_util.h"
#include "kernels/cpu/bf16_gemm.h"

namespace kindred::kernels::cpu::bf16 {
namespace {

using kindred::testing::random_floats;

TEST(Bf16Gemm, RoundRowsRoundsToNearestEvenAndPadsWithZeros) {
    SKIP_WITHOUT_AMX();
    // 40 values: the vector body (16 at a time) and the scalar tail both run.
    std::vector<float> row = random_floats(40, 3, -100.0f, 100.0f);
    row[0] = std::bit_cast<float>(0x3f808000u);  // exactly between two bf16 values: ties to even (down)
    row[1] = std::bit_cast<float>(0x3f818000u);  // tie, rounds up to even
    row[2] = std::numeric_limits<float>::infinity();
    row[3] = std::bit_cast<float>(0x7f7fffffu);  // largest float rounds to +inf
    row[4] = -0.0f;
    row[38] = std::bit_cast<float>(0x3f808001u);  // just above the tie, in the tail
    std::vector<std::uint16_t> out(64, 0xffff);
    round_rows(out.data(), 64, row.data(), 40, 1, 40);
    EXPECT_EQ(out[0], 0x3f80);
    EXPECT_EQ(out[1], 0x3f82);
    EXPECT_EQ(out[2], 0x7f80);
    EXPECT_EQ(out[3], 0x7f80);
    EXPECT_EQ(out[4], 0x8000);
    EXPECT_EQ(out[38], 0x3f81);
    for (int c = 0; c < 40; ++c) EXPECT_EQ(out[c], fp32_to_bf16(row[c])) << c;
    for (int c = 40; c < 64; ++c) EXPECT_EQ(out[c], 0) << "padding " << c;
    round_rows(out.data(), 64, row.data() + 5, 40, 1, 2, -0.5f);  // scaled before rounding
    EXPECT_EQ(out[0], fp32_to_bf16(-0.5f * row[5]));
    EXPECT_EQ(out[1], fp32_to_bf16(-0.5f * row[6]));
}

struct Shape {
    std::int64_t m, n, k;
};

// bf16 values that end right before a page the process may not touch.
class GuardedBuffer {
public:
    explicit GuardedBuffer(std::size_t elements) {
        const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
        const std::size_t bytes = elements * sizeof(std::uint16_t);
        size_ = (bytes + page - 1) / page * page + page;
        base_ = static_cast<std::uint8_t*>(mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
        if (base_ == MAP_FAILED) throw std::runtime_error("mmap failed");
        guard_ = base_ + size_ - page;
        if (mprotect(guard_, page, PROT_NONE) != 0) throw std::runtime_error("mprotect failed");
        data_ = reinterpret_cast<std::uint16_t*>(guard_ - bytes);
    }
    ~GuardedBuffer() { munmap(base_, size_); }
    GuardedBuffer(const GuardedBuffer&) = delete;
    GuardedBuffer& operator=(const GuardedBuffer&) = delete;
    std::uint16_t* data() { return data_; }

private:
    std::uint8_t* base_ = nullptr;
    std::uint8_t* guard_ = nullptr;
    std::uint16_t* data_ = nullptr;
    std::size_t size_ = 0;
};

// The reference: Σ_k bf16(a)·bf16(b) in double, and Σ_k |bf16(a)·bf16(b)| for the bound.
// Tolerance: fp32 accumulation of k exact products (a bf16 x bf16 product is exact in fp32)
// errs by at most k·2^-24 · Σ|a·b| whatever the order of the sums (recursive-summation bound).
void expect_gemm_matches(Shape s, bool transposed, bool accumulate) {
    SCOPED_TRACE(::testing::Message() << "m=" << s.m << " n=" << s.n << " k=" << s.k
                                      << (transposed ? " B=wT" : " B=w") << (accumulate ? " +=" : ""));
    const std::int64_t lda = round_up(s.k, block_k) + 32;  // a stride wider than the padding
    const auto a = random_floats(static_cast<std::size_t>(s.m * s.k), static_cast<std::uint32_t>(s.m + 7 * s.k));
    const auto w = random_floats(static_cast<std::size_t>(s.n * s.k), static_cast<std::uint32_t>(s.n + 5 * s.k));
    // B[kk][j]: w is [n x k] when transposed, else [k x n].
    auto b_at = [&](std::int64_t kk, std::int64_t j) { return transposed ? w[j * s.k + kk] : w[kk * s.n + j]; };

    // Exactly m rows, ending at an inaccessible page: a read past row m faults.
    GuardedBuffer a16(static_cast<std::size_t>(s.m * lda));
    std::fill(a16.data(), a16.data() + s.m * lda, fp32_to_bf16(1e30f));  // columns past the padding
    const float scale = 0.75f;
    round_rows(a16.data(), lda, a.data(), s.k, s.m, s.k, scale);
    std::vector<std::uint16_t> packed(static_cast<std::size_t>(packed_elements(s.k, s.n)), 0xffff);
    if (transposed)
        pack_transposed(packed.data(), w.data(), s.k, s.n, s.k);
    else
        pack(packed.data(), w.data(), s.n, s.k, s.n);

    const std::int64_t ldc = s.n + 3;
    std::vector<float> c(static_cast<std::size_t>(s.m * ldc), 0.5f);
    gemm(c.data(), ldc, a16.data(), lda, packed.data(), s.m, s.n, s.k, accumulate);

    int failures = 0;
    for (std::int64_t i = 0; i < s.m && failures < 5; ++i) {
        for (std::int64_t j = 0; j < ldc; ++j) {
            const float got = c[i * ldc + j];
            if (j >= s.n) {
                ASSERT_EQ(got, 0.5f) << "column " << j << " past n was written";
                continue;
            }
            double sum = 0.0, magnitude = 0.0;
            for (std::int64_t kk = 0; kk < s.k; ++kk) {
                const double term = static_cast<double>(bf16_to_fp32(fp32_to_bf16(scale * a[i * s.k + kk]))) *
                                    bf16_to_fp32(fp32_to_bf16(b_at(kk, j)));
                sum += term;
                magnitude += std::abs(term);
            }
            const double expected = sum + (accumulate ? 0.5 : 0.0);
            const double tolerance = kindred::testing::fp32_sum_bound(s.k, magnitude);
            if (std::abs(got - expected) > tolerance) {
                ADD_FAILURE() << "c[" << i << "][" << j << "] = " << got << ", expected " << expected << " +- "
                              << tolerance;
                ++failures;
            }
        }
    }
}

TEST(Bf16Gemm, MatchesTheRoundedProductOnRaggedShapes) {
    SKIP_WITHOUT_AMX();
    const Shape shapes[] = {{1, 1, 1},   {5, 17, 31},  {16, 16, 32}, {17, 33, 33},
                            {33, 50, 96}, {130, 40, 577}, {200, 70, 64}, {3, 100, 1100}};
    for (const Shape& s : shapes)
        for (bool transposed : {true, false})
            for (bool accumulate : {false, true}) expect_gemm_matches(s, transposed, accumulate);
}

TEST(Bf16Gemm, PackingsOfOneMatrixAgree) {
    SKIP_WITHOUT_AMX();
    // w [n x k] packed as wᵀ equals wᵀ ([k x n], materialised) packed plainly.
    const std::int64_t n = 37, k = 70;
    const auto w = random_floats(static_cast<std::size_t>(n * k), 11);
    std::vector<float> wt(static_cast<std::size_t>(k * n));
    for (std::int64_t j = 0; j < n; ++j)
        for (std::int64_t kk = 0; kk < k; ++kk) wt[kk * n + j] = w[j * k + kk];
    std::vector<std::uint16_t> one(static_cast<std::size_t>(packed_elements(k, n)), 1);
    std::vector<std::uint16_t> two(one.size(), 2);
    pack_transposed(one.data(), w.data(), k, n, k);
    pack(two.data(), wt.data(), n, k, n);
    EXPECT_EQ(one, two);
}

}  // namespace
}  // namespace kindred::kernels::cpu::bf16
