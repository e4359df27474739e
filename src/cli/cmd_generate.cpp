// kindred generate: one completion of a prompt (chat-templated unless --raw), streamed to stdout or
// printed as one JSON object with the generated ids, finish reason and timings. --style places
// style tokens as training did; --controller answers through the decoding controller (the reply is
// printed once it is final; --json adds the controller's log without its hidden fields).
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/controller_flags.h"
#include "cli/generation_flags.h"
#include "cli/kv_cache_flag.h"
#include "core/error.h"
#include "infer/generator.h"
#include "infer/loaded_model.h"
#include "infer/styled_prompt.h"
#include "model/kv_cache.h"

namespace kindred::cli {
namespace {

struct GenerateOptions {
    GenerationFlags flags;
    ControllerFlags controller;
    std::string prompt;
    std::string messages_file;
    std::string system;
    bool raw = false;
    bool json = false;
};

// A JSON array of {"role", "content"[, "thinking"]} objects, or an object with such a "messages" array.
std::vector<text::ChatMessage> read_messages(const std::string& path) {
    std::ifstream in(path);
    if (!in) fail("{}: cannot open", path);
    nlohmann::json document;
    try {
        document = nlohmann::json::parse(in);
    } catch (const nlohmann::json::parse_error& error) {
        fail("{}: not valid JSON: {}", path, error.what());
    }
    const nlohmann::json& list = document.is_object() && document.contains("messages") ? document["messages"] : document;
    if (!list.is_array() || list.empty()) fail("{}: expected a non-empty array of messages (or {{\"messages\": [...]}})", path);
    std::vector<text::ChatMessage> messages;
    for (std::size_t i = 0; i < list.size(); ++i) {
        const auto& item = list[i];
        const auto text_field = [&](const char* key, bool required) -> std::string {
            if (!item.is_object() || !item.contains(key)) {
                if (required) fail("{}: message {} has no \"{}\" string", path, i, key);
                return {};
            }
            if (!item[key].is_string()) fail("{}: message {} field \"{}\" must be a string", path, i, key);
            return item[key].get<std::string>();
        };
        messages.push_back({text_field("role", true), text_field("content", true), text_field("thinking", false)});
    }
    return messages;
}

std::vector<text::ChatMessage> chat_messages(const GenerateOptions& options) {
    std::vector<text::ChatMessage> messages;
    if (!options.system.empty()) messages.push_back({"system", options.system, {}});
    if (options.messages_file.empty()) {
        messages.push_back({"user", options.prompt, {}});
    } else {
        for (auto& message : read_messages(options.messages_file)) messages.push_back(std::move(message));
    }
    return messages;
}

std::vector<std::int32_t> prompt_ids(const GenerateOptions& options, const infer::LoadedModel& model) {
    if (options.raw) {
        if (!options.messages_file.empty()) fail("--raw takes --prompt, not --messages");
        if (!options.system.empty()) fail("--raw takes no --system (write it into the prompt)");
        if (!options.controller.style.empty()) fail("--raw takes no --style (style tokens go where the chat template puts them)");
        return model.encode_raw(options.prompt);
    }
    std::optional<data::StyleTokens> style;
    if (!options.controller.style.empty()) style = infer::checked_style(model, options.controller.style);
    return infer::encode_styled_chat(model, chat_messages(options), style);
}

// --controller: the reply once the controller is done with it.
void run_controlled(const GenerateOptions& options, infer::LoadedModel& model) {
    if (options.raw) fail("--controller needs the chat template; it does not take --raw");
    const ControllerSetup setup = controller_setup(options.controller, model, options.flags);
    infer::Controller controller(model, setup.options, setup.rules);
    infer::Session session = options.flags.context > 0 ? infer::Session(model.decoder(), model.tokenizer(), options.flags.context)
                                                        : controller.new_session();
    const infer::ControlledReply reply = controller.reply(session, chat_messages(options), options.flags.sampling.seed);
    append_controller_log(options.controller, reply.log);
    if (!options.json) {
        fmt::print("{}\n", reply.text);
        return;
    }
    const nlohmann::ordered_json report = {
        {"text", reply.text},
        {"completion_tokens", reply.log.reply_tokens},
        {"generated_tokens", reply.log.generated_tokens},
        {"seed", options.flags.sampling.seed},
        {"controller", infer::to_json(reply.log, false)},
        {"timings", {{"total_ms", reply.log.seconds * 1e3}}},
    };
    fmt::print("{}\n", report.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

void run_generate(GenerateOptions& options) {
    apply_generation_flags(options.flags);
    const auto model = infer::LoadedModel::open(options.flags.model, options.flags.adapter, options.flags.quantize,
                                                options.flags.products, options.flags.kv_cache);
    report_kv_cache(model->decoder());
    if (options.controller.enabled) {
        run_controlled(options, *model);
        return;
    }
    const std::vector<std::int32_t> prompt = prompt_ids(options, *model);

    const std::int64_t model_context = model->decoder().config().context_length;
    const auto prompt_size = static_cast<std::int64_t>(prompt.size());
    // Checked before any KV cache is allocated.
    if (prompt_size >= model_context) {
        fail("the prompt has {} tokens but the model's context holds {}; shorten it", prompt_size, model_context);
    }
    // Only as much KV cache as this call can use.
    const std::int64_t context =
        options.flags.context > 0 ? options.flags.context : std::min(model_context, prompt_size + options.flags.max_tokens);
    infer::Session session(model->decoder(), model->tokenizer(), context);
    infer::GenerationOptions generation;
    generation.sampling = options.flags.sampling;
    generation.max_tokens = options.flags.max_tokens;
    generation.stop_tokens = model->stop_tokens();
    generation.stop_strings = model->stop_strings();
    generation.harmony = model->harmony() && !options.raw;  // a raw prompt is continued as text

    infer::TextCallback stream;
    if (!options.json) {
        stream = [](std::string_view piece) {
            std::fwrite(piece.data(), 1, piece.size(), stdout);
            std::fflush(stdout);
        };
    }
    const infer::GenerationResult result = session.generate(prompt, generation, stream);
    if (!options.json) {
        std::fputc('\n', stdout);
        return;
    }
    const auto per_second = [](std::int64_t tokens, double seconds) { return seconds > 0.0 ? static_cast<double>(tokens) / seconds : 0.0; };
    const auto generated = static_cast<std::int64_t>(result.tokens.size());
    const nlohmann::json report = {
        {"text", result.text},
        {"tokens", result.tokens},
        {"prompt_tokens", result.prompt_tokens},
        {"completion_tokens", generated},
        {"finish_reason", infer::finish_reason_name(result.finish_reason)},
        {"seed", options.flags.sampling.seed},
        {"kv_cache", model::kv_cache_type_name(model->decoder().kv_cache_type())},
        {"timings",
         {{"prefill_ms", result.prefill_seconds * 1e3},
          {"decode_ms", result.decode_seconds * 1e3},
          {"prefill_tokens_per_second", per_second(result.prompt_tokens - result.cached_prompt_tokens, result.prefill_seconds)},
          {"decode_tokens_per_second", per_second(generated, result.decode_seconds)}}},
    };
    // Invalid UTF-8 from a model is replaced rather than aborting the dump.
    fmt::print("{}\n", report.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

}  // namespace

void add_generate_command(CLI::App& app) {
    auto options = std::make_shared<GenerateOptions>();
    options->flags.max_tokens = 256;
    CLI::App* command = app.add_subcommand("generate", "Generate a reply to a prompt (chat template applied unless --raw)");
    add_generation_flags(*command, options->flags);
    auto* input = command->add_option_group("input");
    input->add_option("--prompt", options->prompt, "The user message (or, with --raw, the whole prompt)");
    input->add_option("--messages", options->messages_file, "JSON file: [{\"role\": ..., \"content\": ...}, ...]")
        ->check(CLI::ExistingFile);
    input->require_option(1);
    command->add_option("--system", options->system, "System message put before the conversation");
    command->add_option("--context", options->flags.context,
                        "KV cache size in tokens (0 = prompt + max tokens, at most the model's context)");
    command->add_flag("--raw", options->raw, "Send the prompt as plain text, without the chat template");
    command->add_flag("--json", options->json, "Print one JSON object (text, tokens, finish_reason, timings) instead of streaming");
    add_controller_flags(*command, options->controller, /*with_switch=*/true);
    command->callback([options, command] {
        if (options->controller.enabled) recommended_unless_given(*command, options->flags);
        run_generate(*options);
    });
}

}  // namespace kindred::cli
