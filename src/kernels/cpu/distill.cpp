// kernels/cpu/distill.cpp — the soft-label cross-entropy of the classifier heads and the fused
// top-k distillation KL of kernels/loss.h on the CPU. Numerics follow loss.cpp (shared helpers in
// loss_common.h): small rows in double; the fused KL streams the vocabulary like
// fused_cross_entropy, fp32 exponentials summed in double.
//
// fused_topk_kl keeps, per row, the student's logits at the teacher's k ids apart from the rest:
// pass 1 records them and masks them out of the chunk, so the tail mass 1 − Σ_i s_i is summed
// directly (online, max-shifted) instead of as 1 minus a sum close to 1, which would lose all its
// digits exactly when the teacher's residual is small. Rows run in parallel blocks; each row's
// state is touched by one thread per chunk and chunks run in order.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "core/error.h"
#include "kernels/cpu/loss_common.h"
#include "kernels/loss.h"

namespace kindred::kernels {
namespace {

// Σ_c target[c] for one row; Error for a negative or non-finite target.
double target_mass(const float* target, std::int64_t classes, std::int64_t row) {
    double mass = 0.0;
    for (std::int64_t c = 0; c < classes; ++c) {
        if (!(target[c] >= 0.0f) || !std::isfinite(target[c]))
            fail("soft_cross_entropy: target {} of row {} class {} is not a non-negative number", target[c], row, c);
        mass += target[c];
    }
    return mass;
}

}  // namespace

double soft_cross_entropy_forward(const float* logits, const float* target_probs, std::int64_t rows,
                                  std::int64_t classes) {
    cpu::check_rows(rows, classes, "soft_cross_entropy");
    double total = 0.0;
    for (std::int64_t r = 0; r < rows; ++r) {
        const float* z = logits + r * classes;
        const float* t = target_probs + r * classes;
        if (target_mass(t, classes, r) == 0.0) continue;  // an unlabelled row
        const double log_z = cpu::log_sum_exp(z, classes, 1.0);
        for (std::int64_t c = 0; c < classes; ++c)
            if (t[c] != 0.0f) total -= t[c] * (static_cast<double>(z[c]) - log_z);
    }
    return total;
}

void soft_cross_entropy_backward(float* dlogits, const float* logits, const float* target_probs, std::int64_t rows,
                                 std::int64_t classes, float grad_scale) {
    cpu::check_rows(rows, classes, "soft_cross_entropy");
    for (std::int64_t r = 0; r < rows; ++r) {
        const float* z = logits + r * classes;
        const float* t = target_probs + r * classes;
        const double mass = target_mass(t, classes, r);
        if (mass == 0.0) continue;
        const double log_z = cpu::log_sum_exp(z, classes, 1.0);
        float* dz = dlogits + r * classes;
        for (std::int64_t c = 0; c < classes; ++c)
            dz[c] += static_cast<float>(grad_scale * (std::exp(z[c] - log_z) * mass - t[c]));
    }
}

namespace {

// The positive-term weight of class c; Error unless it is a finite positive number.
double positive_weight(const float* pos_weight, std::int64_t c) {
    if (pos_weight == nullptr) return 1.0;
    if (!(pos_weight[c] > 0.0f) || !std::isfinite(pos_weight[c]))
        fail("sigmoid_cross_entropy: pos_weight {} of class {} is not a positive number", pos_weight[c], c);
    return pos_weight[c];
}

double checked_target(const float* targets, std::int64_t row, std::int64_t classes, std::int64_t c) {
    const float y = targets[row * classes + c];
    if (!(y >= 0.0f && y <= 1.0f)) fail("sigmoid_cross_entropy: target {} of row {} class {} is outside [0, 1]", y, row, c);
    return y;
}

// log(1 + e^x) without overflow for large x or cancellation for very negative x.
double softplus(double x) { return std::max(x, 0.0) + std::log1p(std::exp(-std::fabs(x))); }

}  // namespace

double sigmoid_cross_entropy_forward(const float* logits, const float* targets, const float* pos_weight,
                                     std::int64_t rows, std::int64_t classes) {
    cpu::check_rows(rows, classes, "sigmoid_cross_entropy");
    double total = 0.0;
    for (std::int64_t r = 0; r < rows; ++r)
        for (std::int64_t c = 0; c < classes; ++c) {
            const double z = logits[r * classes + c], y = checked_target(targets, r, classes, c);
            total += positive_weight(pos_weight, c) * y * softplus(-z) + (1.0 - y) * softplus(z);
        }
    return total;
}

void sigmoid_cross_entropy_backward(float* dlogits, const float* logits, const float* targets, const float* pos_weight,
                                    std::int64_t rows, std::int64_t classes, float grad_scale) {
    cpu::check_rows(rows, classes, "sigmoid_cross_entropy");
    for (std::int64_t r = 0; r < rows; ++r)
        for (std::int64_t c = 0; c < classes; ++c) {
            const double z = logits[r * classes + c], y = checked_target(targets, r, classes, c);
            const double pw = positive_weight(pos_weight, c);
            const double sigma = 1.0 / (1.0 + std::exp(-z));
            dlogits[r * classes + c] += static_cast<float>(grad_scale * (sigma * (pw * y + 1.0 - y) - pw * y));
        }
}

double fused_topk_kl(float* dh, const float* h, const WeightRows& w, const TopKTeacher& teacher,
                     const FusedCrossEntropyShape& shape, float temperature, float grad_scale) {
    cpu::check_vocab_shape(w, shape, "fused_topk_kl");
    if (!(temperature > 0.0f) || !std::isfinite(temperature))
        fail("fused_topk_kl: temperature {} is not a positive number", temperature);
    const std::int64_t n = shape.tokens, dim = shape.dim, vocab = shape.vocab, k = teacher.k;
    if (k < 1 || k > vocab) fail("fused_topk_kl: top-k {} is outside [1, {}]", k, vocab);
    if (n == 0) return 0.0;
    if (teacher.ids == nullptr || teacher.probs == nullptr || teacher.residual == nullptr)
        fail("fused_topk_kl: the teacher's ids, probs and residual are all required");

    // Each row's k slots sorted by id, so a chunk finds its ids by advancing a cursor; sorting also
    // exposes a repeated id, which would count one student probability twice.
    std::vector<std::int32_t> order(static_cast<std::size_t>(n * k));
    std::vector<double> mass(static_cast<std::size_t>(n));  // Σ_i p_i + r, the teacher's total
    for (std::int64_t i = 0; i < n; ++i) {
        const std::int32_t* ids = teacher.ids + i * k;
        const float* p = teacher.probs + i * k;
        std::int32_t* slots = order.data() + i * k;
        std::iota(slots, slots + k, 0);
        std::sort(slots, slots + k, [&](std::int32_t a, std::int32_t b) { return ids[a] < ids[b]; });
        double total = teacher.residual[i];
        if (!(teacher.residual[i] >= 0.0f) || !std::isfinite(teacher.residual[i]))
            fail("fused_topk_kl: residual {} of row {} is not a non-negative number", teacher.residual[i], i);
        for (std::int64_t j = 0; j < k; ++j) {
            const std::int32_t id = ids[slots[j]];
            if (id < 0 || id >= vocab) fail("fused_topk_kl: id {} of row {} is outside [0, {})", id, i, vocab);
            if (j > 0 && id == ids[slots[j - 1]]) fail("fused_topk_kl: id {} repeats in row {}", id, i);
            if (!(p[j] >= 0.0f) || !std::isfinite(p[j]))
                fail("fused_topk_kl: probability {} of row {} is not a non-negative number", p[j], i);
            total += p[j];
        }
        mass[static_cast<std::size_t>(i)] = total;
    }

    const auto inverse_t = static_cast<float>(1.0 / temperature);
    cpu::VocabStream stream(h, n, w, shape, inverse_t);
    std::vector<std::int64_t> cursor(static_cast<std::size_t>(n));
    // Calls at(slot, z_slot) for each of row i's teacher ids inside [v0, v1), z the row's chunk.
    auto each_id_in_chunk = [&](std::int64_t i, std::int64_t v0, std::int64_t v1, float* z, auto&& at) {
        const std::int32_t* ids = teacher.ids + i * k;
        const std::int32_t* slots = order.data() + i * k;
        std::int64_t& j = cursor[static_cast<std::size_t>(i)];
        for (; j < k && ids[slots[j]] < v1; ++j) at(slots[j], z[ids[slots[j]] - v0]);
    };

    // Pass 1: the student's logits at the teacher ids, and an online log-sum-exp of the tail.
    std::vector<float> top_logit(static_cast<std::size_t>(n * k));
    std::vector<float> tail_max(static_cast<std::size_t>(n), -std::numeric_limits<float>::infinity());
    std::vector<double> tail_sum(static_cast<std::size_t>(n), 0.0);
    stream.run([&](std::int64_t b, std::int64_t e, float* z, std::int64_t v0, std::int64_t v1, const float*) {
        const std::int64_t cn = v1 - v0;
        for (std::int64_t i = b; i < e; ++i, z += cn) {
            each_id_in_chunk(i, v0, v1, z, [&](std::int32_t slot, float& logit) {
                top_logit[static_cast<std::size_t>(i * k + slot)] = logit;
                logit = -std::numeric_limits<float>::infinity();
            });
            const float chunk_max = cpu::max_of(z[0], z, cn);
            if (chunk_max == -std::numeric_limits<float>::infinity()) continue;  // all teacher ids
            float& m = tail_max[static_cast<std::size_t>(i)];
            if (chunk_max > m) {
                tail_sum[static_cast<std::size_t>(i)] *= std::exp(static_cast<double>(m) - chunk_max);
                m = chunk_max;
            }
            tail_sum[static_cast<std::size_t>(i)] += cpu::sum_exp_shifted(z, m, cn);
        }
    });

    // Per row: log Z of the student, log of its tail mass 1 − Σ_i s_i (−inf when k = vocab: no
    // tail exists, and the residual bucket is then dropped from loss and gradient alike, a
    // teacher's residual there being only the rounding of 1 − Σ p).
    std::vector<double> log_z(static_cast<std::size_t>(n)), log_tail(static_cast<std::size_t>(n));
    double total = 0.0;
    for (std::int64_t i = 0; i < n; ++i) {
        const auto row = static_cast<std::size_t>(i);
        const float* zt = top_logit.data() + i * k;
        const float* p = teacher.probs + i * k;
        double shift = tail_max[row];
        for (std::int64_t j = 0; j < k; ++j) shift = std::max(shift, static_cast<double>(zt[j]));
        const double tail = tail_sum[row] == 0.0 ? 0.0 : tail_sum[row] * std::exp(tail_max[row] - shift);
        double sum = tail;
        for (std::int64_t j = 0; j < k; ++j) sum += std::exp(zt[j] - shift);
        log_z[row] = shift + std::log(sum);
        log_tail[row] = tail == 0.0 ? -std::numeric_limits<double>::infinity() : std::log(tail / sum);
        double kl = 0.0;
        for (std::int64_t j = 0; j < k; ++j)
            if (p[j] > 0.0f) kl += p[j] * (std::log(static_cast<double>(p[j])) - (zt[j] - log_z[row]));
        const double r = teacher.residual[i];
        if (r > 0.0 && tail > 0.0) kl += r * (std::log(r) - log_tail[row]);
        total += kl;
    }
    if (dh == nullptr) return total;

    // Pass 2: the chunk's logits again, turned in place into
    //   (grad_scale/τ) · (s_v · (Σ p + r) − q_v),  q_v = p_i at teacher id i, r · s_v / (1 − Σ s) elsewhere,
    // then dh[block] += G · W_chunk.
    std::fill(cursor.begin(), cursor.end(), 0);
    stream.run([&](std::int64_t b, std::int64_t e, float* z, std::int64_t v0, std::int64_t v1, const float* wc) {
        const std::int64_t cn = v1 - v0;
        float* g = z;
        for (std::int64_t i = b; i < e; ++i, z += cn) {
            const auto row = static_cast<std::size_t>(i);
            const double scale = static_cast<double>(grad_scale) * inverse_t;
            const double r = std::isinf(log_tail[row]) ? 0.0 : teacher.residual[i];
            const double row_mass = std::isinf(log_tail[row]) ? mass[row] - teacher.residual[i] : mass[row];
            const double tail_coefficient = row_mass - (r > 0.0 ? r * std::exp(-log_tail[row]) : 0.0);
            cpu::scaled_softmax(z, static_cast<float>(log_z[row]), static_cast<float>(scale * tail_coefficient), cn);
            each_id_in_chunk(i, v0, v1, z, [&](std::int32_t slot, float& out) {
                const double s = std::exp(top_logit[static_cast<std::size_t>(i * k + slot)] - log_z[row]);
                out = static_cast<float>(scale * (s * row_mass - teacher.probs[i * k + slot]));
            });
        }
        stream.add_product(dh + b * dim, b, e, g, cn, wc, 1.0f);
    }, /*with_gradient=*/true);
    return total;
}

}  // namespace kindred::kernels
