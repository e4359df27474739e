// tests/serve/serve_test_util.h — the default model shared by the serve tests, and the reference
// every served reply is compared with: the same job run alone by infer::Session (the loop
// `kindred generate` runs).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "infer/generator.h"
#include "infer/loaded_model.h"
#include "serve/engine.h"
#include "test_paths.h"

namespace kindred::serve::testing {

// The default model, opened once per test binary (read-only but for the decoder's buffers, which
// only one engine or session uses at a time), with int8 products as `kindred serve` runs it by
// default (--products, cli/products_flag.h).
inline infer::LoadedModel& default_model() {
    static const std::unique_ptr<infer::LoadedModel> model = infer::LoadedModel::open(
        kindred::testing::default_model_path(), "", model::BaseQuantization::None, kernels::Precision::Int8);
    return *model;
}

// Runs the default model's products in fp32 (the exact mode) for its lifetime: for comparisons
// with goldens that transformers computed in fp32.
struct Fp32Products {
    Fp32Products() { default_model().decoder().set_products(kernels::Precision::F32); }
    ~Fp32Products() { default_model().decoder().set_products(kernels::Precision::Int8); }
    Fp32Products(const Fp32Products&) = delete;
    Fp32Products& operator=(const Fp32Products&) = delete;
};

// The PEFT adapter of tests/goldens/adapter_logits with its PEFT greedy continuations.
inline std::string golden_adapter_dir() { return kindred::testing::source_path("tests/goldens/adapter_logits/adapter"); }

inline Job chat_job(const std::string& user, std::int64_t max_tokens, float temperature, std::uint64_t seed,
                    const model::LoraAdapters* adapter = nullptr) {
    infer::LoadedModel& model = default_model();
    Job job;
    job.prompt = model.encode_chat(std::vector<text::ChatMessage>{{"user", user, ""}});
    job.options.sampling.temperature = temperature;
    job.options.sampling.seed = seed;
    job.options.max_tokens = max_tokens;
    job.options.stop_tokens = model.stop_tokens();
    job.options.stop_strings = model.stop_strings();
    job.adapter = adapter;
    return job;
}

// The job run alone, as `kindred generate` runs it (fresh session, adapter attached for it).
inline infer::GenerationResult run_alone(const Job& job) {
    infer::LoadedModel& model = default_model();
    model::Decoder& decoder = model.decoder();
    const model::Decoder::AdapterDetached restore(decoder);
    decoder.attach_adapter(job.adapter);
    infer::Session session(decoder, model.tokenizer(), 0);
    return session.generate(job.prompt, job.options);
}

}  // namespace kindred::serve::testing
