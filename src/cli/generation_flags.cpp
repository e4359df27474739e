#include "cli/ranks.h"
#include "cli/generation_flags.h"

#include <charconv>
#include <limits>
#include <random>

#include "cli/kv_cache_flag.h"
#include "cli/products_flag.h"
#include "cli/quantize_flag.h"
#include "core/error.h"

namespace kindred::cli {

void add_generation_flags(CLI::App& command, GenerationFlags& flags) {
    auto& s = flags.sampling;
    command.add_option("--model", flags.model, "GGUF model file, Hugging Face checkpoint directory, or `default` for the embedded SmolLM2-135M-Instruct")
        ->capture_default_str();
    command.add_option("--adapter", flags.adapter, "PEFT LoRA adapter directory to apply over the model");
    add_quantize_flag(command, flags.quantize);
    add_products_flag(command, flags.products);
    add_kv_cache_flag(command, flags.kv_cache);
    command.add_option("--threads", flags.threads, "CPU threads (0 = KINDRED_THREADS or every core)")->capture_default_str();
    command.add_option("--max-tokens", flags.max_tokens, "Most tokens to generate per reply")->capture_default_str();
    command.add_option("--temperature", s.temperature, "Sampling temperature; 0 = greedy")->capture_default_str();
    command.add_option("--top-k", s.top_k, "Keep the k most likely tokens (0 = off)")->capture_default_str();
    command.add_option("--top-p", s.top_p, "Nucleus sampling mass in (0, 1] (1 = off)")->capture_default_str();
    command.add_option("--min-p", s.min_p, "Drop tokens below min-p x the top probability (0 = off)")->capture_default_str();
    command.add_option("--repeat-penalty", s.repeat_penalty, "Divide positive / multiply negative logits of recent tokens (1 = off)")
        ->capture_default_str();
    command.add_option("--repeat-last-n", s.repeat_last_n, "Tokens the penalties look back over (-1 = all, 0 = off)")
        ->capture_default_str();
    command.add_option("--presence-penalty", s.presence_penalty, "Subtract from the logit of every token seen (OpenAI)")
        ->capture_default_str();
    command.add_option("--frequency-penalty", s.frequency_penalty, "Subtract per occurrence of a seen token (OpenAI)")
        ->capture_default_str();
    command.add_option("--seed", flags.seed, "Random seed (unsigned 64-bit); the same seed gives the same text");
}

void apply_generation_flags(GenerationFlags& flags) {
    if (flags.max_tokens < 1) fail("--max-tokens must be >= 1, got {}", flags.max_tokens);
    if (flags.context < 0) fail("--context must be >= 0, got {}", flags.context);
    apply_threads_flag(flags.threads);
    // The vocabulary is not known yet; logit-bias ids are checked again once it is.
    flags.sampling.validate(std::numeric_limits<std::int64_t>::max());
    if (flags.seed.empty()) {
        std::random_device device;
        flags.sampling.seed = (static_cast<std::uint64_t>(device()) << 32) | device();
    } else {
        const char* end = flags.seed.data() + flags.seed.size();
        const auto parsed = std::from_chars(flags.seed.data(), end, flags.sampling.seed);
        if (parsed.ec != std::errc{} || parsed.ptr != end) fail("--seed must be an unsigned 64-bit integer, got '{}'", flags.seed);
    }
}

}  // namespace kindred::cli
