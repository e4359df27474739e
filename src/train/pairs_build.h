// train/pairs_build.h — `kindred pairs build --config RECIPE.yaml`: preference pairs for the DPO
// stage (docs/dpo.md) written as train/preference_pairs.h JSONL, each line with its `source` and
// `provenance`. The recipe is the DPO recipe (train/dpo.h); this reads its `pairs:` section.
//
// Prompts come from `pairs.prompts`, a chat or prepared-example JSONL (`kindred data prepare`
// output): for every conversation with a target assistant turn, the prompt is everything before
// its FIRST target turn and the gold reply is that turn (its style prefix left out); its head
// labels go with the pair. Emotion-only lines have no reply and are skipped. `pairs.max_prompts`
// takes the first N such conversations. The same is done for `pairs.dev_prompts` into
// `pairs.dev_out` (the dev pairs of dev preference accuracy), with its own limit.
//
// Sources, each switchable:
//  (a) gold_vs_model: y+ = the gold reply, y− = a reply sampled from the model for the same prompt:
//      the reference (the SFT adapter of reference.adapter, the default: on-policy pairs) or the
//      base (`pairs.gold_vs_model.sampler: base`). A sample cut by max_tokens (unless
//      `pairs.sampling.keep_truncated`), an empty one, or one equal to the gold reply is dropped and
//      counted: a cut reply would teach the preference "ends mid-sentence" rather than the content.
//  (b) judge: two samples of the reference model for the same prompt (two seeds), ranked by a judge:
//      any OpenAI-compatible chat-completions endpoint (`pairs.judge.url`, `.model`, the key from
//      the environment variable `.api_key_env`), with the judge prompt read from `.prompt` (a text
//      file with {conversation}, {reply_a}, {reply_b}; the judge answers A or B). With
//      `.both_orders` (default) each pair is judged twice with the replies swapped and kept only
//      when both verdicts agree (position bias). Judgements are cached in `.cache` (JSONL, appended
//      as each arrives, keyed by judge model, prompt file and both texts), so a rerun or a resumed
//      build asks only what is missing; retries and timeouts are the chat client's (net/).
//  (c) safety: for prompts whose last user turn triggers a rule of the controller's built-in safety
//      rules (train/safety_replies.h), y+ = the gold reply when it breaks no rule (else the rule's
//      fallback reply) and y− = a directive, dismissive or harmful reply written for the rule, the
//      kinds taken in turn (a prompt whose rule has no such reply makes no pair). `pairs.safety.prompts`
//      adds a chat JSONL of further prompts (conversations ending in a user turn).
// Sampling uses the product's sampler (infer/sampler.h) with `pairs.sampling.*`, seeded per prompt
// from `pairs.seed`, so a build is repeatable at a fixed thread count.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/config.h"
#include "infer/sampler.h"

namespace kindred::infer {
class LoadedModel;
}

namespace kindred::train {

struct JudgeSettings {
    bool enabled = false;
    std::string url;               // base URL of an OpenAI-compatible API, e.g. http://127.0.0.1:8080/v1
    std::string model;             // the judge model's name at that endpoint
    std::string prompt;            // judge prompt file
    std::string api_key_env = "OPENAI_API_KEY";  // environment variable holding the key (may be unset)
    std::string cache;             // judgement cache (JSONL); default <pairs.out>.judgements.jsonl
    bool both_orders = true;
    double timeout_s = 60.0;       // per request
    std::int64_t max_retries = 4;  // per request, on 429/5xx and transport errors
};

struct PairsBuildSettings {
    std::string out = "data/pairs.jsonl";
    std::string prompts;           // chat / prepared JSONL
    std::size_t max_prompts = 0;   // 0 = every conversation
    std::string dev_out;           // empty: no dev pairs
    std::string dev_prompts;
    std::size_t dev_max_prompts = 0;
    std::uint64_t seed = 0;
    infer::SamplingParams sampling;  // seed replaced per prompt
    std::int64_t max_tokens = 96;    // per sampled reply
    bool keep_truncated = false;     // keep samples cut at max_tokens (dropped and counted by default)
    bool gold_vs_model = true;
    bool sample_from_base = false;   // pairs.gold_vs_model.sampler: reference | base
    JudgeSettings judge;
    bool safety = true;
    std::string safety_prompts;      // optional chat JSONL
};

// Reads `pairs.*` (every key, with defaults; errors name key and line). Files are checked when the
// build runs, not here (a training run only needs pairs.out as data.path's default).
PairsBuildSettings read_pairs_settings(Config& config);

// Fails naming the key when a source is switched on without what it reads or an input file is
// missing; build_pairs checks this first, and callers that build pairs only after long work
// (kindred ablate) check it before that work starts.
void check_pairs_inputs(const PairsBuildSettings& settings);

struct SourceCounts {
    std::size_t made = 0;
    std::size_t truncated = 0;  // a sample cut by max_tokens
    std::size_t empty = 0;      // an empty sample
    std::size_t identical = 0;  // chosen and rejected the same text
    std::size_t tied = 0;       // judge: no verdict, or the two orders disagreed
    std::size_t cached = 0;     // judge: verdicts read from the cache
};

struct PairsBuildReport {
    std::size_t prompts = 0;      // conversations with a reply (train file)
    std::size_t dev_prompts = 0;
    SourceCounts gold_vs_model, judge, safety;  // over both files
    std::size_t pairs = 0, dev_pairs = 0;       // lines written
    std::size_t sampled_tokens = 0;
    double seconds = 0.0;
};

// A judge: the text of its answer to one chat (system + user), or an Error. Injected so tests and
// the CLI decide where it comes from (cli: net/'s OpenAI-compatible client).
using JudgeCall = std::function<std::string(const std::string& system, const std::string& user)>;

// Builds the pairs of `settings` with `model` (the base with the reference adapter attached) and
// writes settings.out (and dev_out) atomically. `judge` must be set when the judge source is on.
// `log` receives one line per stage (may be empty).
PairsBuildReport build_pairs(const PairsBuildSettings& settings, infer::LoadedModel& model, const JudgeCall& judge,
                             const std::function<void(const std::string&)>& log);

// The verdict in a judge's answer: 'A', 'B', or 0 when it names neither or both (the answer's last
// standalone A or B wins: judges reason first and answer last).
char parse_verdict(const std::string& answer);

}  // namespace kindred::train
