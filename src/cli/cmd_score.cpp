// kindred score: mean negative log-likelihood per predicted token and perplexity of a raw text
// (no chat template, no BOS: the ids are exactly what the tokenizer gives, as in
// tools/goldens/inference.py). Long texts are scored in sliding windows (infer/score.h).
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/ranks.h"
#include "cli/kv_cache_flag.h"
#include "cli/products_flag.h"
#include "cli/quantize_flag.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "infer/loaded_model.h"
#include "infer/score.h"
#include "model/kv_cache.h"

namespace kindred::cli {
namespace {

struct ScoreOptions {
    std::string model = "default";
    std::string adapter;
    model::BaseQuantization quantize = model::BaseQuantization::None;
    kernels::Precision products = default_inference_products();
    DType kv_cache = DType::F32;
    std::string file;
    std::string text;
    std::int64_t window = 0;
    int threads = 0;
    bool json = false;
};


void run_score(const ScoreOptions& options) {
    if (options.window < 0) fail("--window must be >= 0, got {}", options.window);
    apply_threads_flag(options.threads);
    const std::string text = options.file.empty() ? options.text : read_file_text(options.file, kMaxInputTextBytes);
    const auto model = infer::LoadedModel::open(options.model, options.adapter, options.quantize, options.products,
                                                options.kv_cache);
    report_kv_cache(model->decoder());
    // Special-token markup is parsed, as the transformers tokenizer call of the golden script does.
    const std::vector<std::int32_t> ids = model->tokenizer().encode(text);
    if (ids.size() < 2) fail("{}: the text has {} token(s); scoring needs at least 2", options.file.empty() ? "--text" : options.file, ids.size());
    const infer::ScoreResult result = infer::score_tokens(model->decoder(), ids, options.window);
    if (options.json) {
        const nlohmann::json report = {{"tokens", result.tokens}, {"predicted", result.predicted}, {"windows", result.windows},
                                       {"nll", result.mean_nll}, {"perplexity", result.perplexity},
                                       {"kv_cache", model::kv_cache_type_name(model->decoder().kv_cache_type())}};
        fmt::print("{}\n", report.dump());
        return;
    }
    fmt::print("tokens      {}\npredicted   {}\nwindows     {}\nnll         {:.6f}\nperplexity  {:.4f}\nkv cache    {}\n",
               result.tokens, result.predicted, result.windows, result.mean_nll, result.perplexity,
               model::kv_cache_type_name(model->decoder().kv_cache_type()));
}

}  // namespace

void add_score_command(CLI::App& app) {
    auto options = std::make_shared<ScoreOptions>();
    CLI::App* command = app.add_subcommand("score", "Mean NLL per token and perplexity of a raw text (no template, no BOS)");
    command->add_option("--model", options->model, "GGUF model file, Hugging Face checkpoint directory, or `default`")
        ->capture_default_str();
    command->add_option("--adapter", options->adapter, "PEFT LoRA adapter directory to apply over the model");
    add_quantize_flag(*command, options->quantize);
    add_products_flag(*command, options->products);
    add_kv_cache_flag(*command, options->kv_cache);
    auto* input = command->add_option_group("input");
    input->add_option("--file", options->file, "Text file to score")->check(CLI::ExistingFile);
    input->add_option("--text", options->text, "Text to score");
    input->require_option(1);
    command->add_option("--window", options->window,
                        "Tokens per window for long texts, scored with stride window/2 (0 = the model's context)")
        ->capture_default_str();
    command->add_option("--threads", options->threads, "CPU threads (0 = KINDRED_THREADS or every core)")->capture_default_str();
    command->add_flag("--json", options->json, "Print {\"tokens\", \"predicted\", \"windows\", \"nll\", \"perplexity\"}");
    command->callback([options] { run_score(*options); });
}

}  // namespace kindred::cli
