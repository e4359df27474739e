#include "eval/eqbench2_run.h"

#include <algorithm>
#include <optional>
#include <string_view>
#include <utility>

#include "core/error.h"
#include "core/progress.h"
#include "infer/batch.h"
#include "infer/generator.h"
#include "infer/loaded_model.h"

namespace kindred::eval {
namespace {

// The harness keeps `content.strip()`; Python's ASCII whitespace is enough here because the
// parser skips anything around the `name: score` pairs anyway.
std::string strip(std::string_view text) {
    constexpr std::string_view kSpace = " \t\n\v\f\r\x1c\x1d\x1e\x1f";
    const std::size_t begin = text.find_first_not_of(kSpace);
    if (begin == std::string_view::npos) return {};
    return std::string(text.substr(begin, text.find_last_not_of(kSpace) - begin + 1));
}

std::vector<text::ChatMessage> user_message(const std::string& prompt) { return {{"user", prompt, {}}}; }

}  // namespace

// splitmix64's finaliser decorrelates nearby inputs (ids, attempt numbers); FNV-1a hashes the id.
std::uint64_t draw_seed(std::uint64_t seed, std::string_view id, int attempt) {
    const auto mix = [](std::uint64_t value) {
        value += 0x9e3779b97f4a7c15ull;
        value = (value ^ (value >> 30)) * 0xbf58476d1ce4e5b9ull;
        value = (value ^ (value >> 27)) * 0x94d049bb133111ebull;
        return value ^ (value >> 31);
    };
    std::uint64_t hash = 0xcbf29ce484222325ull;
    for (const char c : id) hash = (hash ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
    return mix(mix(seed ^ mix(hash)) + static_cast<std::uint64_t>(attempt));
}

namespace {

// The harness's bookkeeping, whichever way the completions arrive: a question is settled when
// its answer parses or its attempts are spent; results stay in question order.
class Harness {
public:
    Harness(const std::vector<EqBench2Question>& questions, const EqBench2RunOptions& options)
        : questions_(questions), n_(options.limit == 0 ? questions.size() : std::min(options.limit, questions.size())) {
        for (std::size_t i = 0; i < n_; ++i) results_.push_back({questions[i].id, std::nullopt, {}, 0});
        if (options.progress) {
            ProgressOptions look;
            look.label = "eqbench2";
            look.unit = "q";
            progress_.emplace(static_cast<std::int64_t>(n_), std::move(look));
        }
    }

    std::size_t size() const { return n_; }
    const EqBench2Question& question(std::size_t i) const { return questions_[i]; }

    // The harness adds 0.15 to a double starting at 0.01 after every failed try.
    static double temperature(int attempt) {
        double temperature = kEqBench2Temperature;
        for (int a = 0; a < attempt; ++a) temperature += kEqBench2RetryTemperatureStep;
        return temperature;
    }

    // Records attempt `attempt` of question i; true when the question is settled.
    bool answer(std::size_t i, int attempt, std::string text) {
        EqBench2QuestionResult& result = results_[i];
        result.answer = std::move(text);
        result.score = score_eqbench2_answer(questions_[i], parse_eqbench2_answer(result.answer));
        result.attempts = attempt + 1;
        const bool settled = result.score.has_value() || result.attempts >= kEqBench2Attempts;
        if (settled) {
            ++settled_;
            if (result.score) ++parseable_;
            if (progress_) progress_->update(static_cast<std::int64_t>(settled_), {{"parseable", static_cast<double>(parseable_)}});
        }
        return settled;
    }

    EqBench2Result finish() {
        if (progress_) progress_->finish({{"parseable", static_cast<double>(parseable_)}});
        return summarize_eqbench2(std::move(results_));
    }

private:
    const std::vector<EqBench2Question>& questions_;
    std::size_t n_;
    std::vector<EqBench2QuestionResult> results_;
    std::size_t settled_ = 0, parseable_ = 0;
    std::optional<Progress> progress_;
};

}  // namespace

EqBench2Result run_eqbench2(const std::vector<EqBench2Question>& questions, const EqBench2Completion& complete,
                            const EqBench2RunOptions& options) {
    Harness harness(questions, options);
    for (std::size_t i = 0; i < harness.size(); ++i) {
        const std::string prompt = eqbench2_prompt(harness.question(i));
        for (int attempt = 0;; ++attempt)
            if (harness.answer(i, attempt, complete(harness.question(i), prompt, Harness::temperature(attempt), attempt))) break;
    }
    return harness.finish();
}

EqBench2Result run_eqbench2(infer::LoadedModel& model, const std::vector<EqBench2Question>& questions,
                            const EqBench2RunOptions& options) {
    if (options.parallel < 1) fail("EQ-Bench v2: parallel sequences must be >= 1, got {}", options.parallel);
    Harness harness(questions, options);
    std::vector<std::vector<std::int32_t>> prompts;
    // KV cache for the longest prompt plus the answer, not the model's whole context.
    const std::int64_t model_context = model.decoder().config().context_length;
    std::int64_t longest = 0;
    for (std::size_t i = 0; i < harness.size(); ++i) {
        prompts.push_back(model.encode_chat(user_message(eqbench2_prompt(questions[i]))));
        const auto tokens = static_cast<std::int64_t>(prompts.back().size());
        if (tokens >= model_context) {
            fail("EQ-Bench v2 question {}: the prompt has {} tokens but the model's context holds {}", questions[i].id, tokens,
                 model_context);
        }
        longest = std::max(longest, tokens);
    }
    infer::Batch batch(model.decoder(), model.tokenizer(), options.parallel,
                       std::min(model_context, longest + kEqBench2CompletionTokens));

    const auto ask = [&](std::size_t i, int attempt) {
        infer::BatchRequest request;
        request.prompt = prompts[i];
        request.adapter = model.decoder().adapter();
        request.options.max_tokens = kEqBench2CompletionTokens;
        request.options.stop_tokens = model.stop_tokens();
        request.options.stop_strings = model.stop_strings();
        request.options.harmony = model.harmony();
        // Plain temperature sampling, as the harness gets from the OpenAI-style APIs it calls
        // (top-p 1, no top-k, no penalties).
        request.options.sampling.top_k = 0;
        request.options.sampling.top_p = 1.0f;
        request.options.sampling.min_p = 0.0f;
        request.options.sampling.repeat_penalty = 1.0f;
        request.options.sampling.temperature = static_cast<float>(Harness::temperature(attempt));
        request.options.sampling.seed = draw_seed(options.seed, questions[i].id, attempt);
        return request;
    };
    // Each question runs in one slot from its first attempt to its last; a retry reuses the slot's
    // cached prompt. A new question starts from the keys/values of its own prompt only.
    struct Running {
        std::size_t question = 0;
        int attempt = 0;
    };
    std::vector<Running> running(static_cast<std::size_t>(options.parallel));
    std::size_t next = 0;
    infer::run_batched(
        batch,
        [&](std::int64_t slot) -> std::optional<infer::BatchRequest> {
            if (next == harness.size()) return std::nullopt;
            running[static_cast<std::size_t>(slot)] = {next, 0};
            return ask(next++, 0);
        },
        [&](std::int64_t slot, infer::GenerationResult result) -> std::optional<infer::BatchRequest> {
            Running& it = running[static_cast<std::size_t>(slot)];
            if (harness.answer(it.question, it.attempt, strip(result.text))) return std::nullopt;
            ++it.attempt;
            return ask(it.question, it.attempt);
        });
    return harness.finish();
}

bool eqbench2_passes(const EqBench2Result& result) {
    return result.n > 0 && result.parseable_fraction >= kEqBench2MinParseableFraction;
}

}  // namespace kindred::eval
