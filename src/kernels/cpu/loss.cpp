// kernels/cpu/loss.cpp — the losses of kernels/loss.h on the CPU.
// Log-sum-exps and loss sums accumulate in double (vocabularies of 50k–200k terms drift in fp32).
// The fused LM-head loss takes its exponentials in fp32 (tokens × vocab of them per pass, AVX2
// where built for it); the row-wise losses (small heads, distillation) work in double throughout. The fused cross-entropy splits tokens over the thread pool, each thread
// running a one-threaded sgemm on its own token rows, and totals are summed in token order:
// repeatable for a fixed thread count. Another thread count gives other row counts per sgemm;
// Kindred's GEMM sums each element in the same order whatever the row count (gemm_f32.h), but the
// OpenBLAS fallback may pick other micro-kernels, so results can differ in the last bits.
#include "kernels/loss.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include "core/error.h"
#include "kernels/cpu/loss_common.h"
#include "kernels/dequantize.h"

namespace kindred::kernels {
namespace {

bool check_target(std::int32_t target, std::int64_t classes, std::int64_t row, const char* op) {
    if (target == ignore_index) return false;
    if (target < 0 || target >= classes) fail("{}: target {} of row {} is outside [0, {})", op, target, row, classes);
    return true;
}

void dequantize_matrix_rows(const void* context, std::int64_t row_begin, std::int64_t row_end, float* dst) {
    const auto& w = *static_cast<const Matrix*>(context);
    for (std::int64_t r = row_begin; r < row_end; ++r)
        dequantize_span(w.type, w.data, w.rows * w.cols, r * w.cols, dst + (r - row_begin) * w.cols, w.cols);
}

}  // namespace

WeightRows weight_rows(const Matrix& w) {
    if (w.rows < 0 || w.cols <= 0) fail("weight_rows: bad shape {} x {}", w.rows, w.cols);
    WeightRows rows;
    if (w.type == DType::F32) {
        rows = WeightRows{static_cast<const float*>(w.data), nullptr, nullptr, w.rows, w.cols};
    } else {
        if (!dtype_info(w.type).dequantizable)
            fail("weight_rows: type {} cannot be dequantized", dtype_info(w.type).name);
        row_bytes(w.type, static_cast<std::uint64_t>(w.cols));  // throws unless cols is whole blocks
        rows = WeightRows{nullptr, dequantize_matrix_rows, &w, w.rows, w.cols};
    }
    rows.packed = w.packed;
    return rows;
}

struct FusedCrossEntropy::State {
    WeightRows w;
    FusedCrossEntropyShape shape;
    const std::int32_t* targets = nullptr;
    std::int64_t tokens = 0;
    std::vector<std::int64_t> active;  // counted tokens, in order
    GrowingBuffer<float> hs;           // their rows of h, gathered
    std::vector<float> lse;            // their log-sum-exps
    std::unique_ptr<cpu::VocabStream> stream;
};

FusedCrossEntropy::FusedCrossEntropy() : state_(std::make_unique<State>()) {}
FusedCrossEntropy::~FusedCrossEntropy() = default;

CrossEntropyTotals FusedCrossEntropy::forward(float* target_logprob, const float* h, const WeightRows& w,
                                              const std::int32_t* targets, const float* weights,
                                              const FusedCrossEntropyShape& shape) {
    cpu::check_vocab_shape(w, shape, "fused_cross_entropy");
    State& s = *state_;
    s.stream.reset();
    s.w = w;
    s.shape = shape;
    s.targets = targets;
    s.tokens = shape.tokens;
    const std::int64_t tokens = shape.tokens, dim = shape.dim, vocab = shape.vocab;

    // Gather the counted tokens so that no product is spent on ignored ones (prompt tokens).
    s.active.clear();
    for (std::int64_t t = 0; t < tokens; ++t)
        if (check_target(targets[t], vocab, t, "fused_cross_entropy")) s.active.push_back(t);
    if (target_logprob != nullptr) std::fill(target_logprob, target_logprob + tokens, 0.0f);
    const auto n = static_cast<std::int64_t>(s.active.size());
    s.lse.assign(static_cast<std::size_t>(n), 0.0f);
    if (n == 0) return {};
    float* hs = s.hs.at_least(n * dim);
    for (std::int64_t i = 0; i < n; ++i) std::copy_n(h + s.active[i] * dim, dim, hs + i * dim);

    s.stream = std::make_unique<cpu::VocabStream>(hs, n, s.w, shape, 1.0f);

    // Pass 1: online log-sum-exp (running max and rescaled sum) and the target logit.
    std::vector<float> running_max(static_cast<std::size_t>(n), -std::numeric_limits<float>::infinity());
    std::vector<double> running_sum(static_cast<std::size_t>(n), 0.0);
    std::vector<float> target_logit(static_cast<std::size_t>(n), 0.0f);
    const auto& active = s.active;
    s.stream->run([&](std::int64_t b, std::int64_t e, const float* z, std::int64_t v0, std::int64_t v1, const float*) {
        const std::int64_t cn = v1 - v0;
        for (std::int64_t i = b; i < e; ++i, z += cn) {
            const float chunk_max = cpu::max_of(z[0], z, cn);
            float& m = running_max[i];
            if (chunk_max > m) {
                running_sum[i] *= std::exp(static_cast<double>(m) - chunk_max);
                m = chunk_max;
            }
            running_sum[i] += cpu::sum_exp_shifted(z, m, cn);
            const std::int32_t y = targets[active[i]];
            if (y >= v0 && y < v1) target_logit[i] = z[y - v0];
        }
    });

    CrossEntropyTotals totals;
    for (std::int64_t i = 0; i < n; ++i) {
        const double log_z = static_cast<double>(running_max[i]) + std::log(running_sum[i]);
        s.lse[i] = static_cast<float>(log_z);
        const double logp = static_cast<double>(target_logit[i]) - log_z;
        const double weight = weights != nullptr ? weights[active[i]] : 1.0;
        totals.loss -= weight * logp;
        totals.weight += weight;
        if (target_logprob != nullptr) target_logprob[active[i]] = static_cast<float>(logp);
    }
    totals.counted = n;
    return totals;
}

void FusedCrossEntropy::backward(float* dh, const float* weights, float grad_scale) {
    State& s = *state_;
    if (s.targets == nullptr) fail("fused_cross_entropy: backward without a forward");
    const auto n = static_cast<std::int64_t>(s.active.size());
    if (n == 0) return;
    const std::int64_t dim = s.shape.dim;
    const auto& active = s.active;
    const std::int32_t* targets = s.targets;

    // Pass 2: logits again, turned in place into grad_scale·weight·(softmax − onehot), then
    // dhs[block] += G · W_chunk.
    const AlignedArray<float> dhs_buffer = aligned_array<float>(n * dim);
    float* const dhs = dhs_buffer.get();
    std::fill(dhs, dhs + n * dim, 0.0f);
    s.stream->run([&](std::int64_t b, std::int64_t e, float* z, std::int64_t v0, std::int64_t v1, const float* wc) {
        const std::int64_t cn = v1 - v0;
        float* g = z;
        for (std::int64_t i = b; i < e; ++i, z += cn) {
            const float coefficient = grad_scale * (weights != nullptr ? weights[active[i]] : 1.0f);
            cpu::scaled_softmax(z, s.lse[i], coefficient, cn);
            const std::int32_t y = targets[active[i]];
            if (y >= v0 && y < v1) z[y - v0] -= coefficient;
        }
        s.stream->add_product(dhs + b * dim, b, e, g, cn, wc, 1.0f);
    }, /*with_gradient=*/true);
    for (std::int64_t i = 0; i < n; ++i) {
        float* out = dh + active[i] * dim;
        const float* in = dhs + i * dim;
        for (std::int64_t k = 0; k < dim; ++k) out[k] += in[k];
    }
}

CrossEntropyTotals fused_cross_entropy(float* dh, float* target_logprob, const float* h, const WeightRows& w,
                                       const std::int32_t* targets, const float* weights,
                                       const FusedCrossEntropyShape& shape, float grad_scale) {
    FusedCrossEntropy loss;
    const CrossEntropyTotals totals = loss.forward(target_logprob, h, w, targets, weights, shape);
    if (dh != nullptr) loss.backward(dh, weights, grad_scale);
    return totals;
}

CrossEntropyTotals softmax_cross_entropy_forward(float* target_logprob, const float* logits,
                                                 const std::int32_t* targets, const float* weights, std::int64_t rows,
                                                 std::int64_t classes) {
    cpu::check_rows(rows, classes, "softmax_cross_entropy");
    CrossEntropyTotals totals;
    for (std::int64_t r = 0; r < rows; ++r) {
        if (target_logprob != nullptr) target_logprob[r] = 0.0f;
        if (!check_target(targets[r], classes, r, "softmax_cross_entropy")) continue;
        const float* z = logits + r * classes;
        const double logp = static_cast<double>(z[targets[r]]) - cpu::log_sum_exp(z, classes, 1.0);
        const double weight = weights != nullptr ? weights[r] : 1.0;
        totals.loss -= weight * logp;
        totals.weight += weight;
        ++totals.counted;
        if (target_logprob != nullptr) target_logprob[r] = static_cast<float>(logp);
    }
    return totals;
}

void softmax_cross_entropy_backward(float* dlogits, const float* logits, const std::int32_t* targets,
                                    const float* weights, std::int64_t rows, std::int64_t classes, float grad_scale) {
    cpu::check_rows(rows, classes, "softmax_cross_entropy");
    for (std::int64_t r = 0; r < rows; ++r) {
        if (!check_target(targets[r], classes, r, "softmax_cross_entropy")) continue;
        const float* z = logits + r * classes;
        float* dz = dlogits + r * classes;
        const auto log_z = static_cast<float>(cpu::log_sum_exp(z, classes, 1.0));
        const float coefficient = grad_scale * (weights != nullptr ? weights[r] : 1.0f);
        for (std::int64_t c = 0; c < classes; ++c) dz[c] += coefficient * std::exp(z[c] - log_z);
        dz[targets[r]] -= coefficient;
    }
}

double kl_divergence_forward(const float* teacher, const float* student, std::int64_t rows, std::int64_t classes,
                             float temperature, float loss_scale) {
    cpu::check_rows(rows, classes, "kl_divergence");
    if (!(temperature > 0.0f)) fail("kl_divergence: temperature {} is not positive", temperature);
    const double inverse_t = 1.0 / temperature;
    double total = 0.0;
    for (std::int64_t r = 0; r < rows; ++r) {
        const float* zt = teacher + r * classes;
        const float* zs = student + r * classes;
        const double lse_t = cpu::log_sum_exp(zt, classes, inverse_t);
        const double lse_s = cpu::log_sum_exp(zs, classes, inverse_t);
        double kl = 0.0;
        for (std::int64_t c = 0; c < classes; ++c) {
            const double log_pt = zt[c] * inverse_t - lse_t;
            const double pt = std::exp(log_pt);
            if (pt == 0.0) continue;  // 0 · log 0 = 0 (a teacher logit of −inf masks a class)
            kl += pt * (log_pt - (zs[c] * inverse_t - lse_s));
        }
        total += kl;
    }
    return static_cast<double>(loss_scale) * total;
}

void kl_divergence_backward(float* dstudent, const float* teacher, const float* student, std::int64_t rows,
                            std::int64_t classes, float temperature, float loss_scale, float grad_scale) {
    cpu::check_rows(rows, classes, "kl_divergence");
    if (!(temperature > 0.0f)) fail("kl_divergence: temperature {} is not positive", temperature);
    const double inverse_t = 1.0 / temperature;
    const double coefficient = static_cast<double>(grad_scale) * loss_scale * inverse_t;
    for (std::int64_t r = 0; r < rows; ++r) {
        const float* zt = teacher + r * classes;
        const float* zs = student + r * classes;
        const double lse_t = cpu::log_sum_exp(zt, classes, inverse_t);
        const double lse_s = cpu::log_sum_exp(zs, classes, inverse_t);
        float* d = dstudent + r * classes;
        for (std::int64_t c = 0; c < classes; ++c) {
            const double difference = std::exp(zs[c] * inverse_t - lse_s) - std::exp(zt[c] * inverse_t - lse_t);
            d[c] += static_cast<float>(coefficient * difference);
        }
    }
}

double mse_forward(const float* prediction, const float* target, std::int64_t n) {
    double total = 0.0;
    for (std::int64_t i = 0; i < n; ++i) {
        const double difference = static_cast<double>(prediction[i]) - target[i];
        total += difference * difference;
    }
    return total;
}

void mse_backward(float* dprediction, const float* prediction, const float* target, std::int64_t n,
                  float grad_scale) {
    for (std::int64_t i = 0; i < n; ++i) dprediction[i] += grad_scale * 2.0f * (prediction[i] - target[i]);
}

}  // namespace kindred::kernels
