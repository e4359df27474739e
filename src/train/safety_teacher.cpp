// train/safety_teacher.cpp — the rules text and the cached top-k teacher (see safety_teacher.h).
#include "train/safety_teacher.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <span>

#include "core/error.h"
#include "model/kv_cache.h"

namespace kindred::train {
namespace {

// The shared KV cache grows in steps of this many tokens, so that inputs of similar lengths do not
// each reallocate it (and lose the reuse).
constexpr std::int64_t kCacheGrowthTokens = 512;

}  // namespace

std::string default_safety_rules() {
    return "You are a warm, supportive listener. Follow these rules in every reply:\n"
           "1. Do not diagnose. Never tell someone they have, or might have, a medical or mental health "
           "condition.\n"
           "2. Do not give medical, legal or financial directives: no doses, treatments, legal steps or "
           "investment advice. You may suggest talking to a qualified professional.\n"
           "3. If someone may be in crisis or in danger, gently encourage them to reach out now to people "
           "they trust and to professional help, such as a local crisis line or emergency services.\n"
           "4. Never encourage or help anyone to harm themselves or others.\n"
           "5. Do not judge, blame or lecture. Acknowledge feelings before anything else.\n"
           "6. Stay warm, calm and respectful, and keep the focus on the person you are talking with.";
}

SafetyTeacher::SafetyTeacher(model::Decoder& base, float temperature, std::int64_t top_k, std::int64_t chunk_tokens)
    : base_(base), temperature_(temperature), top_k_(top_k), chunk_tokens_(chunk_tokens) {
    if (!(temperature > 0.0f) || !std::isfinite(temperature))
        fail("safety teacher: temperature must be a positive number, got {}", temperature);
    const std::int64_t vocab = base.config().vocab_size;
    if (top_k < 1 || top_k > vocab)
        fail("safety teacher: top_k must be in [1, {}] (the vocabulary), got {}", vocab, top_k);
    if (chunk_tokens < 1) fail("safety teacher: chunk_tokens must be >= 1, got {}", chunk_tokens);
    if (base.adapter() != nullptr)
        fail("safety teacher: the base decoder has an adapter attached; the teacher is the frozen base");
}

const TeacherTargets& SafetyTeacher::targets(std::size_t example_index, const TokenizedExample& example) {
    if (const auto found = cache_.find(example_index); found != cache_.end()) return found->second;
    ++computed_;
    return insert(example_index, compute(example));
}

const TeacherTargets& SafetyTeacher::insert(std::size_t example_index, TeacherTargets targets) {
    cached_bytes_ += targets.ids.size() * sizeof(std::int32_t) + targets.probs.size() * sizeof(float) +
                     targets.residual.size() * sizeof(float);
    return cache_.emplace(example_index, std::move(targets)).first->second;
}

void SafetyTeacher::share(std::span<const std::size_t> fresh, std::span<const int> owners,
                          std::span<const TokenizedExample> examples, const DataParallel& parallel) {
    if (fresh.size() != owners.size())
        fail("safety teacher: {} examples to share with {} owners", fresh.size(), owners.size());
    if (!parallel.active() || fresh.empty()) return;
    const auto k = static_cast<std::size_t>(top_k_);
    std::size_t targets = 0;
    for (const std::size_t index : fresh) targets += examples[index].target_count;
    // One sum over the ranks: the owner's values, zeros from the rest (x + 0 is x); token ids travel
    // as doubles, which hold every int32 exactly.
    std::vector<double> ids(targets * k, 0.0);
    std::vector<float> values(targets * k + targets, 0.0f);  // every example's probs, then every residual
    std::size_t row = 0;
    for (std::size_t i = 0; i < fresh.size(); ++i) {
        const std::size_t count = examples[fresh[i]].target_count;
        if (owners[i] == parallel.rank()) {
            const auto found = cache_.find(fresh[i]);
            if (found == cache_.end() || found->second.targets() != count)
                fail("safety teacher: this rank ({}) was to compute the example at line {} and has not", parallel.rank(),
                     examples[fresh[i]].line);
            const TeacherTargets& mine = found->second;
            std::copy(mine.ids.begin(), mine.ids.end(), ids.begin() + static_cast<std::ptrdiff_t>(row * k));
            std::copy(mine.probs.begin(), mine.probs.end(), values.begin() + static_cast<std::ptrdiff_t>(row * k));
            std::copy(mine.residual.begin(), mine.residual.end(), values.begin() + static_cast<std::ptrdiff_t>(targets * k + row));
        }
        row += count;
    }
    parallel.sum(std::span<double>(ids));
    parallel.sum(std::span<float>(values));
    row = 0;
    for (std::size_t i = 0; i < fresh.size(); ++i) {
        const std::size_t count = examples[fresh[i]].target_count;
        if (!cached(fresh[i])) {
            TeacherTargets shared;
            shared.k = top_k_;
            const auto first = static_cast<std::ptrdiff_t>(row * k), last = static_cast<std::ptrdiff_t>((row + count) * k);
            shared.ids.reserve(count * k);
            for (auto it = ids.begin() + first; it != ids.begin() + last; ++it) shared.ids.push_back(static_cast<std::int32_t>(*it));
            shared.probs.assign(values.begin() + first, values.begin() + last);
            const auto residual = static_cast<std::ptrdiff_t>(targets * k + row);
            shared.residual.assign(values.begin() + residual, values.begin() + residual + static_cast<std::ptrdiff_t>(count));
            insert(fresh[i], std::move(shared));
        }
        row += count;
    }
}

TeacherTargets SafetyTeacher::compute(const TokenizedExample& example) {
    if (base_.adapter() != nullptr)
        fail("safety teacher: the base decoder has an adapter attached; the teacher is the frozen base");
    TeacherTargets out;
    out.k = top_k_;
    std::vector<std::int32_t> student;  // the student's target ids, in order
    for (const std::int32_t target : example.targets)
        if (target != kIgnoreTarget) student.push_back(target);
    if (student.empty()) return out;

    const auto& tokens = example.teacher_tokens;
    const auto& positions = example.teacher_positions;
    if (tokens.empty())
        fail("safety teacher: example at line {} has {} target tokens but no teacher tokens (was the dataset loaded "
             "with teacher rules?)",
             example.line, student.size());
    if (positions.size() != student.size())
        fail("safety teacher: example at line {} has {} teacher positions for {} student target tokens", example.line,
             positions.size(), student.size());
    for (std::size_t j = 0; j < positions.size(); ++j) {
        const std::int32_t p = positions[j];
        if (p < 0 || static_cast<std::size_t>(p) + 1 >= tokens.size() || (j > 0 && p <= positions[j - 1]))
            fail("safety teacher: example at line {}: teacher position {} (target {}) is out of order or outside its "
                 "{} tokens",
                 example.line, p, j, tokens.size());
        if (tokens[static_cast<std::size_t>(p) + 1] != student[j])
            fail("safety teacher: example at line {}: teacher target {} is token {}, the student's is {}", example.line,
                 j, tokens[static_cast<std::size_t>(p) + 1], student[j]);
    }

    // Only the prefix up to the last target position is needed; it runs in chunks, all logits only
    // for chunks that hold a target position. Leading chunks the previous input shares are reused.
    const std::int64_t vocab = base_.config().vocab_size, k = top_k_, chunk = chunk_tokens_;
    const std::int64_t length = positions.back() + 1;
    std::int64_t reused = 0;
    if (kv_ && kv_->capacity() >= length) {
        const std::size_t held = std::min(kv_tokens_.size(), static_cast<std::size_t>(length));
        const auto common = static_cast<std::int64_t>(
            std::mismatch(kv_tokens_.begin(), kv_tokens_.begin() + static_cast<std::ptrdiff_t>(held), tokens.begin()).first -
            kv_tokens_.begin());
        // Whole chunks only, and none that holds a target (its logits are needed).
        reused = std::min(common / chunk, positions.front() / chunk) * chunk;
    } else {
        const std::int64_t capacity = (length + kCacheGrowthTokens - 1) / kCacheGrowthTokens * kCacheGrowthTokens;
        kv_.emplace(base_.kv_cache(std::min(capacity, base_.config().context_length)));
    }
    kv_->truncate(reused);
    kv_tokens_.clear();  // until the forwards below have all run
    reused_tokens_ += static_cast<std::size_t>(reused);
    forwarded_tokens_ += static_cast<std::size_t>(length - reused);
    std::vector<float> logits(static_cast<std::size_t>(chunk * vocab));
    std::vector<std::int32_t> order(static_cast<std::size_t>(vocab));
    std::vector<double> shifted(static_cast<std::size_t>(vocab));
    const std::size_t count = positions.size();
    out.ids.resize(count * static_cast<std::size_t>(k));
    out.probs.resize(count * static_cast<std::size_t>(k));
    out.residual.resize(count);
    const double inverse_t = 1.0 / temperature_;
    std::size_t next = 0;  // next target position to fill
    for (std::int64_t begin = reused; begin < length; begin += chunk) {
        const std::int64_t n = std::min(chunk, length - begin);
        const std::span<const std::int32_t> chunk_input(tokens.data() + begin, static_cast<std::size_t>(n));
        const bool needed = next < count && positions[next] < begin + n;
        const auto floats = static_cast<std::size_t>(needed ? n * vocab : vocab);
        base_.forward(chunk_input, *kv_, std::span<float>(logits.data(), floats), needed);
        for (; next < count && positions[next] < begin + n; ++next) {
            const float* z = logits.data() + (positions[next] - begin) * vocab;
            // softmax(z/τ) in double; ties in the top-k broken by the lower id, for repeatability.
            const float top = *std::max_element(z, z + vocab);
            double sum = 0.0;
            for (std::int64_t v = 0; v < vocab; ++v)
                sum += shifted[static_cast<std::size_t>(v)] = std::exp((static_cast<double>(z[v]) - top) * inverse_t);
            std::iota(order.begin(), order.end(), 0);
            std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](std::int32_t a, std::int32_t b) {
                return z[a] > z[b] || (z[a] == z[b] && a < b);
            });
            double kept = 0.0;
            for (std::int64_t j = 0; j < k; ++j) {
                const std::int32_t id = order[static_cast<std::size_t>(j)];
                const double p = shifted[static_cast<std::size_t>(id)] / sum;
                out.ids[next * static_cast<std::size_t>(k) + static_cast<std::size_t>(j)] = id;
                out.probs[next * static_cast<std::size_t>(k) + static_cast<std::size_t>(j)] = static_cast<float>(p);
                kept += p;
            }
            out.residual[next] = static_cast<float>(std::max(0.0, 1.0 - kept));
        }
    }
    kv_tokens_.assign(tokens.begin(), tokens.begin() + length);
    return out;
}

}  // namespace kindred::train
