// train/safety_teacher.h — the rules-prompted safety teacher of the L_safe term: the frozen base
// model (no adapter) reads the SAME conversation with safety rules prepended to its system message
// (the dataset renders that as TokenizedExample::teacher_tokens), and its next-token distribution
// at every assistant target token, softened by τ, is what the student is pulled towards:
// L_safe = KL(σ(z_T/τ) ‖ σ(z_θ/τ)) (kernels::fused_topk_kl, plain KL without the τ² factor).
//
// Storage: per target token the teacher keeps its top-k token ids and probabilities at τ plus the
// residual mass 1 − Σ (one "everything else" bucket; the KL is then exact for the distributions
// coarsened to k + 1 outcomes). Computed on first use of an example, cached in memory by example
// index: the teacher is frozen, so every later epoch reuses it for free. Data-parallel ranks share
// what each computed (share()), so the cache is the same on every rank.
//
// Memory / speed trade-off (SmolLM2-135M: vocab 49152, hidden 576, 30 layers):
//  - top-k cache (this class): k·8 + 4 bytes per target token (int32 id + fp32 prob per entry, one
//    fp32 residual) = 260 B at k = 32; 100k target tokens (a few thousand replies) hold 26 MB.
//    Cost: ONE extra frozen forward per example over the whole run (at its first use), plus a
//    softmax and a top-k selection over the vocabulary per target token (measured: ≈ 1.8 s of CPU
//    per fixture conversation of 324–629 teacher tokens, the default rules being ~166 of them, on
//    this 2-core machine). The KL then
//    streams the vocabulary like the LM loss does: fused_topk_kl forward + backward took 3.4 s vs
//    fused_cross_entropy's 3.2 s at 512 tokens x 576 x 49152 (fp32 W, same loaded machine).
//  - exact logits cached: vocab·4 bytes per target token = 196 KB (fp32), 756× more: 100k target
//    tokens would need 19.7 GB, which does not fit.
//  - exact on the fly: no memory, but one extra base forward per row per step, every epoch (about
//    +1/3 of a QLoRA step's compute: a forward is ~1/3 of forward + backward), and the KL over the
//    full vocabulary.
// What the top-k cache gives up: the tail's shape — only its total mass is matched. The bucketed
// KL is the exact KL of the two distributions coarsened to k + 1 outcomes, so it never exceeds the
// full KL (coarsening cannot increase a divergence) and is 0 when the full KL is. How much of the
// teacher is resolved depends strongly on τ: measured on the empathetic replies of
// tests/train/fixtures/prepared.jsonl (335 target tokens, SmolLM2-135M Q4_1, default rules), the
// mean top-k mass was, for k = 32 / 256 / 1024: 0.91 / 0.98 / 0.996 at τ = 1 and only
// 0.31 / 0.51 / 0.67 at τ = 2 (τ = 2 flattens a 49k vocabulary a lot). With the defaults (τ = 2,
// k = 32) the term therefore pulls on the teacher's 32 favourite tokens and on how much mass the
// student leaves outside them; raise k (256: 2 KB per target token) or lower τ for a finer teacher.
//
// Shared prefixes: every example's teacher input starts with the same rules (and usually the same
// system message), so the keys/values of the previous example's input are kept and reused for the
// whole chunks of the next one that match it token for token and precede its first target: with
// the default rules (~166 tokens) that skips two or three of every example's first chunks. The
// chunks sit on a fixed grid (multiples of chunk_tokens from position 0) and a reused chunk holds
// exactly what recomputing it would give (same tokens, same preceding keys/values, same row
// count), so the targets are bitwise the same whichever example came before: resumed and
// data-parallel runs, whose examples arrive in another order, get the same teacher. It holds one
// KV cache the size of the longest input seen (rounded up to 512 tokens).
//
// Not thread-safe: one targets() call at a time (it runs the shared Decoder, which allows one
// forward at a time).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "model/decoder.h"
#include "model/kv_cache.h"
#include "train/chat_dataset.h"
#include "train/data_parallel.h"

namespace kindred::train {

// The rules text, written as a system prompt: no diagnosis; no medical, legal or financial
// directives; in a crisis encourage reaching out to trusted people and professional help (crisis
// lines); never encourage harming oneself or others; no judgement; stay warm.
std::string default_safety_rules();

struct TeacherTargets {  // one example, aligned with its target tokens in order
    std::int64_t k = 0;
    std::vector<std::int32_t> ids;  // [targets x k], most probable first (ties: lower id first)
    std::vector<float> probs;       // [targets x k], the teacher's softmax at τ
    std::vector<float> residual;    // [targets], 1 − Σ of the row's probs (clamped at 0)
    std::size_t targets() const { return residual.size(); }
};

class SafetyTeacher {
public:
    // base: the frozen decoder with NO adapter attached (the same object the trainer's
    // TrainableDecoder wraps is fine: that one never attaches its adapters to the Decoder). Not
    // const because Decoder::forward uses its shared activation buffers. Throws Error for
    // top_k < 1 or top_k > vocab, τ <= 0 (or not finite), chunk_tokens < 1, or an attached adapter.
    // chunk_tokens: tokens per teacher forward (all logits of a chunk are chunk_tokens x vocab
    // floats: 12.6 MB at 64 x 49152, instead of a whole conversation's ~100 MB at 512 tokens).
    SafetyTeacher(model::Decoder& base, float temperature, std::int64_t top_k, std::int64_t chunk_tokens = 64);

    // The teacher's distributions at the example's target tokens, computed on first call for
    // `example_index` and cached (later calls return the same object; the index must keep naming
    // the same example). Throws Error naming the example's line when teacher_tokens is empty while
    // the example has targets, when teacher_positions do not match the student's targets in count
    // and next-token ids, or when the base has an adapter attached by then.
    const TeacherTargets& targets(std::size_t example_index, const TokenizedExample& example);

    // Data parallel: after the ranks have run their rows of a step, the targets of `fresh` (the
    // same examples in the same order on every rank), each computed by the rank owners[i], are
    // cached on every rank, bit for bit the owner's: the teacher runs once per example in the job,
    // never once per rank, and an example that lands on another rank in a later epoch is not
    // recomputed there. Every rank must call it (a collective). Throws Error when an owner has not
    // computed its example.
    void share(std::span<const std::size_t> fresh, std::span<const int> owners, std::span<const TokenizedExample> examples,
               const DataParallel& parallel);
    bool cached(std::size_t example_index) const { return cache_.contains(example_index); }

    std::size_t cached_examples() const { return cache_.size(); }
    std::size_t computed_examples() const { return computed_; }  // teacher forwards run here
    std::size_t forwarded_tokens() const { return forwarded_tokens_; }  // input tokens those forwards ran
    std::size_t reused_tokens() const { return reused_tokens_; }  // input tokens a previous input's keys/values covered
    std::size_t cached_bytes() const { return cached_bytes_; }  // ids, probs and residuals held
    float temperature() const { return temperature_; }
    std::int64_t top_k() const { return top_k_; }

private:
    TeacherTargets compute(const TokenizedExample& example);
    const TeacherTargets& insert(std::size_t example_index, TeacherTargets targets);

    model::Decoder& base_;
    float temperature_;
    std::int64_t top_k_;
    std::int64_t chunk_tokens_;
    std::optional<model::KvCache> kv_;     // keys/values of kv_tokens_ (whole chunks reuse them)
    std::vector<std::int32_t> kv_tokens_;  // the teacher input whose prefix kv_ holds
    std::size_t forwarded_tokens_ = 0;
    std::size_t reused_tokens_ = 0;
    std::unordered_map<std::size_t, TeacherTargets> cache_;  // node-based: references stay valid
    std::size_t cached_bytes_ = 0;
    std::size_t computed_ = 0;
};

}  // namespace kindred::train
