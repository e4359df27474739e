#include "eval/eqbench2_run.h"

#include <algorithm>
#include <optional>
#include <string_view>
#include <utility>

#include "core/error.h"
#include "core/progress.h"
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

EqBench2Result run_eqbench2(const std::vector<EqBench2Question>& questions, const EqBench2Completion& complete,
                            const EqBench2RunOptions& options) {
    const std::size_t n = options.limit == 0 ? questions.size() : std::min(options.limit, questions.size());
    std::optional<Progress> progress;
    if (options.progress) {
        ProgressOptions look;
        look.label = "eqbench2";
        look.unit = "q";
        progress.emplace(static_cast<std::int64_t>(n), std::move(look));
    }
    std::vector<EqBench2QuestionResult> results;
    std::size_t parseable = 0;
    for (std::size_t i = 0; i < n; ++i) {
        const EqBench2Question& question = questions[i];
        const std::string prompt = eqbench2_prompt(question);
        EqBench2QuestionResult result{question.id, std::nullopt, {}, 0};
        // The harness adds 0.15 to a double starting at 0.01 after every failed try.
        double temperature = kEqBench2Temperature;
        for (int attempt = 0; attempt < kEqBench2Attempts && !result.score; ++attempt) {
            result.answer = complete(question, prompt, temperature, attempt);
            result.score = score_eqbench2_answer(question, parse_eqbench2_answer(result.answer));
            result.attempts = attempt + 1;
            temperature += kEqBench2RetryTemperatureStep;
        }
        if (result.score) ++parseable;
        results.push_back(std::move(result));
        if (progress) progress->update(static_cast<std::int64_t>(i + 1), {{"parseable", static_cast<double>(parseable)}});
    }
    if (progress) progress->finish({{"parseable", static_cast<double>(parseable)}});
    return summarize_eqbench2(std::move(results));
}

EqBench2Result run_eqbench2(infer::LoadedModel& model, const std::vector<EqBench2Question>& questions,
                            const EqBench2RunOptions& options) {
    const std::size_t n = options.limit == 0 ? questions.size() : std::min(options.limit, questions.size());
    // KV cache for the longest prompt plus the answer, not the model's whole context.
    const std::int64_t model_context = model.decoder().config().context_length;
    std::int64_t longest = 0;
    for (std::size_t i = 0; i < n; ++i) {
        const auto tokens = static_cast<std::int64_t>(model.encode_chat(user_message(eqbench2_prompt(questions[i]))).size());
        if (tokens >= model_context) {
            fail("EQ-Bench v2 question {}: the prompt has {} tokens but the model's context holds {}", questions[i].id, tokens,
                 model_context);
        }
        longest = std::max(longest, tokens);
    }
    infer::Session session(model.decoder(), model.tokenizer(), std::min(model_context, longest + kEqBench2CompletionTokens));

    infer::GenerationOptions generation;
    generation.max_tokens = kEqBench2CompletionTokens;
    generation.stop_tokens = model.stop_tokens();
    generation.stop_strings = model.stop_strings();
    generation.harmony = model.harmony();
    // Plain temperature sampling, as the harness gets from the OpenAI-style APIs it calls
    // (top-p 1, no top-k, no penalties).
    generation.sampling.top_k = 0;
    generation.sampling.top_p = 1.0f;
    generation.sampling.min_p = 0.0f;
    generation.sampling.repeat_penalty = 1.0f;

    const EqBench2Completion complete = [&](const EqBench2Question& question, const std::string& prompt, double temperature,
                                            int attempt) {
        // A new question starts from an empty cache so its answer does not depend on the one
        // before; a retry reuses the cached prompt.
        if (attempt == 0) session.reset();
        generation.sampling.temperature = static_cast<float>(temperature);
        generation.sampling.seed = draw_seed(options.seed, question.id, attempt);
        return strip(session.generate(model.encode_chat(user_message(prompt)), generation).text);
    };
    return run_eqbench2(questions, complete, options);
}

bool eqbench2_passes(const EqBench2Result& result) {
    return result.n > 0 && result.parseable_fraction >= kEqBench2MinParseableFraction;
}

}  // namespace kindred::eval
