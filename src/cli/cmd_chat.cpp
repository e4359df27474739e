// kindred chat: an interactive conversation, one line per user message, replies streamed. Lines
// starting with '/' are commands (/reset, /system TEXT, /quit, /help). Prompts and notices go to
// stderr, and only when stdin is a terminal, so piped input yields just the replies on stdout.
// --style places style tokens as training did; --controller answers each message through the
// decoding controller, and only its reply text joins the conversation history.
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include <fmt/format.h>

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

constexpr std::int64_t kDefaultChatContext = 4096;

struct ChatOptions {
    GenerationFlags flags;
    ControllerFlags controller;
    std::string system;
};

class ChatRepl {
public:
    ChatRepl(ChatOptions& options, infer::LoadedModel& model)
        : options_(options),
          model_(model),
          session_(model.decoder(), model.tokenizer(),
                   options.flags.context > 0 ? options.flags.context
                                             : std::min(kDefaultChatContext, model.decoder().config().context_length)),
          interactive_(isatty(STDIN_FILENO) != 0),
          system_(options.system) {
        generation_.sampling = options.flags.sampling;
        generation_.max_tokens = options.flags.max_tokens;
        generation_.stop_tokens = model.stop_tokens();
        generation_.stop_strings = model.stop_strings();
        generation_.harmony = model.harmony();
        model.require_chat_template();
        if (!options.controller.style.empty()) style_ = infer::checked_style(model, options.controller.style);
        if (options.controller.enabled) {
            setup_ = controller_setup(options.controller, model, options.flags);
            controller_.emplace(model, setup_.options, setup_.rules);
        }
    }

    void run() {
        notice("Chatting with {} ({} tokens of context, {} KV cache). /help lists commands.\n", model_.path(),
               session_.context(), model::kv_cache_type_name(model_.decoder().kv_cache_type()));
        std::string line;
        while (true) {
            if (interactive_) std::fputs("> ", stderr);
            if (!std::getline(std::cin, line)) break;
            if (!line.empty() && line.back() == '\r') line.pop_back();
            if (line.empty()) continue;
            if (line.front() == '/') {
                if (!command(line)) break;
                continue;
            }
            reply(line);
        }
        if (interactive_) std::fputc('\n', stderr);
    }

private:
    template <typename... Args>
    void notice(fmt::format_string<Args...> format, Args&&... args) const {
        if (interactive_) fmt::print(stderr, format, std::forward<Args>(args)...);
    }

    // Returns false when the conversation should end.
    bool command(const std::string& line) {
        const std::size_t space = line.find(' ');
        const std::string name = line.substr(0, space);
        const std::string argument = space == std::string::npos ? std::string() : line.substr(space + 1);
        if (name == "/quit" || name == "/exit") return false;
        if (name == "/reset") {
            history_.clear();
            notice("(conversation cleared)\n");
        } else if (name == "/system") {
            system_ = argument;
            history_.clear();
            notice("(system prompt {}; conversation cleared)\n", system_.empty() ? "removed" : "set");
        } else if (name == "/help") {
            notice("/reset clears the conversation, /system TEXT sets the system prompt (and clears), /quit ends.\n");
        } else {
            fmt::print(stderr, "unknown command {} (try /help)\n", name);
        }
        return true;
    }

    std::vector<text::ChatMessage> messages() const {
        std::vector<text::ChatMessage> all;
        if (!system_.empty()) all.push_back({"system", system_, {}});
        all.insert(all.end(), history_.begin(), history_.end());
        return all;
    }

    void reply(const std::string& user) {
        history_.push_back({"user", user, {}});
        // Forget the oldest exchanges until the conversation leaves room for a reply.
        std::vector<std::int32_t> prompt = infer::encode_styled_chat(model_, messages(), style_);
        const std::int64_t reserve = std::min<std::int64_t>(generation_.max_tokens, 64) + (controller_ ? infer::kControllerPromptOverhead : 0);
        while (static_cast<std::int64_t>(prompt.size()) + reserve > session_.context() &&
               history_.size() > 1) {
            history_.erase(history_.begin(), history_.begin() + std::min<std::ptrdiff_t>(2, std::ssize(history_) - 1));
            notice("(oldest messages dropped to fit the context)\n");
            prompt = infer::encode_styled_chat(model_, messages(), style_);
        }
        generation_.sampling.seed = options_.flags.sampling.seed + turn_++;
        try {
            if (controller_) {
                // The reply is shown once the controller is done; the history keeps its text only.
                const infer::ControlledReply controlled = controller_->reply(session_, messages(), generation_.sampling.seed);
                append_controller_log(options_.controller, controlled.log);
                fmt::print("{}\n", controlled.text);
                std::fflush(stdout);
                history_.push_back({"assistant", controlled.text, {}});
                return;
            }
            const infer::GenerationResult result = session_.generate(prompt, generation_, [](std::string_view piece) {
                std::fwrite(piece.data(), 1, piece.size(), stdout);
                std::fflush(stdout);
            });
            std::fputc('\n', stdout);
            std::fflush(stdout);
            history_.push_back({"assistant", result.text, {}});
        } catch (const Error& error) {
            // A message that cannot fit even alone: say so and keep the conversation going.
            history_.pop_back();
            fmt::print(stderr, "kindred: error: {}\n", error.what());
        }
    }

    const ChatOptions& options_;
    infer::LoadedModel& model_;
    infer::Session session_;
    infer::GenerationOptions generation_;
    bool interactive_;
    std::string system_;
    std::vector<text::ChatMessage> history_;
    std::uint64_t turn_ = 0;
    std::optional<data::StyleTokens> style_;
    ControllerSetup setup_;
    std::optional<infer::Controller> controller_;
};

void run_chat(ChatOptions& options) {
    apply_generation_flags(options.flags);
    const auto model = infer::LoadedModel::open(options.flags.model, options.flags.adapter, options.flags.quantize,
                                                options.flags.products, options.flags.kv_cache);
    report_kv_cache(model->decoder());
    ChatRepl(options, *model).run();
}

}  // namespace

void add_chat_command(CLI::App& app) {
    auto options = std::make_shared<ChatOptions>();
    options->flags.max_tokens = 512;
    CLI::App* command = app.add_subcommand("chat", "Chat interactively (one line per message; /reset, /system TEXT, /quit)");
    add_generation_flags(*command, options->flags);
    command->add_option("--system", options->system, "System prompt");
    command->add_option("--context", options->flags.context,
                        fmt::format("KV cache size in tokens (0 = {}, at most the model's context)", kDefaultChatContext));
    add_controller_flags(*command, options->controller, /*with_switch=*/true);
    command->callback([options, command] {
        if (options->controller.enabled) recommended_unless_given(*command, options->flags);
        run_chat(*options);
    });
}

}  // namespace kindred::cli
