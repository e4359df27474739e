// The DPO stage against TRL's DPOTrainer (tools/goldens/dpo.py: trl 1.16.0, peft 0.21.2,
// transformers 5.25.0, torch 2.15.0, fp32 on CPU): on the random tiny Llama and tiny Qwen3 and on
// SmolLM2 from the default GGUF, with a PEFT adapter as the policy and the reference from cached
// log-probs, for each of sigmoid, IPO, hinge and robust: Kindred's reference log-probs against
// TRL's precomputed ones, the loss of a batch of every pair and TRL's metrics, every LoRA gradient,
// and the losses of 5 AdamW steps. Kindred packs the pairs into one row (segments apart) where TRL
// pads a batch; the pairs are TRL's own tokenization, fed as ids.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <memory>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "formats/gguf.h"
#include "kernels/optimizer.h"
#include "lora_goldens.h"
#include "model/decoder.h"
#include "test_paths.h"
#include "tiny_sft_model.h"
#include "train/dpo.h"

namespace kindred::train {
namespace {

using nlohmann::json;
using kindred::testing::formula_init;
using kindred::testing::relative_max_error;

json read_golden(const std::string& name) {
    std::ifstream in(kindred::testing::source_path("tests/goldens/dpo/" + name));
    if (!in) throw Error("missing golden " + name);
    return json::parse(in);
}

// The golden's pairs (TRL's own tokenization) as Kindred's pair dataset.
PairDataset golden_pairs(const json& golden) {
    PairDataset dataset;
    dataset.path = "golden";
    for (const auto& pair : golden["pairs"]) {
        PairInfo info;
        dataset.examples.push_back(tokenized_pair(pair["prompt_ids"].get<std::vector<std::int32_t>>(),
                                                  pair["chosen_ids"].get<std::vector<std::int32_t>>(),
                                                  pair["rejected_ids"].get<std::vector<std::int32_t>>(),
                                                  dataset.examples.size() + 1, info));
        dataset.pairs.push_back(info);
    }
    return dataset;
}

// Reference values (the "SFT adapter") and the policy's: reference + a second formula at half scale.
void set_adapter(model::LoraAdapters& adapters, bool policy) {
    for (std::size_t i = 0; i < adapters.tensors().size(); ++i) {
        const auto& info = adapters.tensors()[i];
        const double scale = info.is_b ? 0.05 : 1.0 / std::sqrt(static_cast<double>(info.cols));
        auto values = formula_init(static_cast<std::int64_t>(i), info.rows * info.cols, scale);
        if (policy) {
            const auto delta = formula_init(static_cast<std::int64_t>(i) + 500, info.rows * info.cols, scale / 2);
            for (std::size_t j = 0; j < values.size(); ++j) values[j] += delta[j];
        }
        adapters.set_hf(info.name, values);
    }
}

// Every pair in one row: the packer fills a row of exactly their total length with all of them.
MicroBatch one_row(const PairDataset& pairs) {
    std::size_t total = 0;
    for (const auto& example : pairs.examples) total += example.tokens.size();
    PackingOptions packing;
    packing.seq_len = total;
    Packer packer(pairs.examples, packing);
    MicroBatch micro = packer.next_micro_batch();
    if (micro.examples != pairs.examples.size()) throw Error("golden: the pairs did not share one row");
    return micro;
}

// Bounds on Kindred's distance from TRL, per quantity; each golden test states its values and why.
struct Tolerances {
    double reference_logp;  // |Δ| of each summed reference log-prob (nats)
    double loss;            // relative
    double metric;          // absolute, rewards and logps means (logps scaled by 1/β: see below)
    double grad_norm;       // relative, each tensor's norm
    double grad;            // max error over the tensor's largest entry
    double step_loss;       // absolute + relative·|loss|, each AdamW step's loss
};

// `adamw_losses`: the losses whose 5 AdamW steps are replayed (all of them for the tiny models; on
// SmolLM2 only sigmoid's, each step there being a full model pass on CPU).
void expect_matches_trl(const model::Decoder& decoder, const json& golden, const Tolerances& tolerance, const char* label,
                        const std::vector<std::string>& adamw_losses = {"sigmoid", "ipo", "hinge", "robust"}) {
    const PairDataset pairs = golden_pairs(golden);
    model::LoraConfig lora;
    lora.rank = golden["rank"].get<int>();
    lora.alpha = golden["alpha"].get<double>();
    const MicroBatch micro = one_row(pairs);
    const auto max_tokens = static_cast<std::int64_t>(micro.seq_len);

    // Kindred's own reference pass against TRL's precompute.
    model::LoraAdapters reference_adapters(decoder.config(), lora, decoder.weights().qk_interleaved);
    set_adapter(reference_adapters, false);
    model::TrainableDecoder scorer(decoder, reference_adapters, false, max_tokens, kernels::Precision::F32);
    const auto reference = score_pairs(scorer, pairs, static_cast<std::size_t>(max_tokens));
    double worst_reference = 0.0;
    const auto& trl_reference = golden["losses"]["sigmoid"]["reference_logps"];
    for (std::size_t i = 0; i < reference.size(); ++i) {
        worst_reference = std::max({worst_reference, std::fabs(reference[i].chosen - trl_reference["chosen"][i].get<double>()),
                                    std::fabs(reference[i].rejected - trl_reference["rejected"][i].get<double>())});
    }
    EXPECT_LT(worst_reference, tolerance.reference_logp);

    for (const auto& [name, record] : golden["losses"].items()) {
        SCOPED_TRACE(name);
        DpoLossSettings settings;
        settings.type = parse_dpo_loss(name);
        settings.beta = golden["beta"].get<double>();
        settings.label_smoothing = record["label_smoothing"].get<double>();
        model::LoraAdapters policy(decoder.config(), lora, decoder.weights().qk_interleaved);
        set_adapter(policy, true);
        model::TrainableDecoder trainer(decoder, policy, false, max_tokens, kernels::Precision::F32);
        DpoRows rows(pairs, reference, settings, decoder.config().hidden_size, decoder.config().vocab_size, nullptr);
        const float pair_scale = 1.0f / static_cast<float>(pairs.examples.size());
        const auto step = [&] {
            std::vector<PairLogProbs> logps;
            std::vector<PairLoss> losses;
            HeadSums unused;
            policy.zero_grads();
            rows.run(trainer, micro, 0, pair_scale, {}, unused, logps, losses);
            return dpo_batch_metrics(logps, losses);
        };

        const DpoBatchMetrics m = step();
        const double loss = record["loss"].get<double>();
        EXPECT_NEAR(m.loss, loss, tolerance.loss * std::fabs(loss) + 1e-7);
        const auto& trl = record["metrics"];
        EXPECT_NEAR(m.rewards_chosen, trl["rewards/chosen"].get<double>(), tolerance.metric);
        EXPECT_NEAR(m.rewards_rejected, trl["rewards/rejected"].get<double>(), tolerance.metric);
        EXPECT_NEAR(m.rewards_margins, trl["rewards/margins"].get<double>(), tolerance.metric);
        // A share of pairs: equal, up to TRL taking the mean in float32.
        EXPECT_NEAR(m.rewards_accuracies, trl["rewards/accuracies"].get<double>(), 1e-6);
        // logps are the rewards / β plus the reference: the same error, 1/β = 10 times larger.
        EXPECT_NEAR(m.logps_chosen, trl["logps/chosen"].get<double>(), tolerance.metric / settings.beta);
        EXPECT_NEAR(m.logps_rejected, trl["logps/rejected"].get<double>(), tolerance.metric / settings.beta);

        double worst_norm = 0.0, worst_full = 0.0;
        for (const auto& [tensor, norm] : record["grad_norms"].items()) {
            const auto& info = policy.tensor(tensor);
            std::vector<float> ours(static_cast<std::size_t>(info.rows * info.cols));
            policy.get_hf(tensor, ours, true);
            double sum = 0.0;
            for (const float g : ours) sum += static_cast<double>(g) * g;
            const double expected = norm.get<double>();
            const double error = std::fabs(std::sqrt(sum) - expected) / std::max(expected, 1e-30);
            worst_norm = std::max(worst_norm, error);
            EXPECT_LT(error, tolerance.grad_norm) << tensor;
        }
        for (const auto& [tensor, values] : record["grads"].items()) {
            const auto expected = values.get<std::vector<double>>();
            std::vector<float> ours(expected.size());
            policy.get_hf(tensor, ours, true);
            const double error = relative_max_error(ours, expected);
            worst_full = std::max(worst_full, error);
            EXPECT_LT(error, tolerance.grad) << tensor;
        }

        if (std::find(adamw_losses.begin(), adamw_losses.end(), name) == adamw_losses.end()) {
            std::printf("%s %s: loss %.7f (TRL %.7f), worst reference logp error %.3g, grad norm %.3g, full grad %.3g\n",
                        label, name.c_str(), m.loss, loss, worst_reference, worst_norm, worst_full);
            continue;
        }
        const auto& adamw = record["adamw"];
        kernels::AdamWConfig config;
        config.lr = adamw["lr"].get<double>();
        config.weight_decay = adamw["weight_decay"].get<double>();
        const auto step_losses = adamw["losses"].get<std::vector<double>>();
        double worst_step = 0.0;
        for (std::size_t s = 0; s < step_losses.size(); ++s) {
            const double ours = step().loss;
            const double error = std::fabs(ours - step_losses[s]);
            worst_step = std::max(worst_step, error / (1.0 + std::fabs(step_losses[s])));
            EXPECT_LT(error, tolerance.step_loss * (1.0 + std::fabs(step_losses[s]))) << "step " << s;
            if (s + 1 < step_losses.size()) policy.adamw_step(config, static_cast<std::int64_t>(s + 1));
        }
        std::printf("%s %s: loss %.7f (TRL %.7f), worst reference logp error %.3g, grad norm %.3g, full grad %.3g, "
                    "AdamW step loss %.3g\n",
                    label, name.c_str(), m.loss, loss, worst_reference, worst_norm, worst_full, worst_step);
    }
}

// Tiny models: both sides fp32 over sums of at most 160 products in 2 layers, so log-probs agree to
// ~1e-6 relative; the loss is a smooth function of Δ (|dℓ/dΔ| ≤ β for all but IPO). Gradients go
// through the same ops backwards and differ by summation order only. Measured (both models, all
// four losses): summed reference log-probs within 1.0e-5 nats, losses within 1.6e-7 relative,
// gradient norms 1.2e-6 relative, full gradients 4.7e-6 of each tensor's maximum, AdamW step losses
// 9.1e-7. Asserted with ~10x margins: 1e-4 nats, 1e-5, 1e-5 absolute on the means, 1e-5, 5e-5, 1e-5.
constexpr Tolerances kTiny{1e-4, 1e-5, 1e-5, 1e-5, 5e-5, 1e-5};

class TinyGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(TinyGolden, LossMetricsGradientsAndAdamWMatchTrl) {
    const std::string name = GetParam();
    const testing::Tiny tiny(kindred::testing::source_path("tests/goldens/inference/" + name));
    std::string file = name;
    std::replace(file.begin(), file.end(), '-', '_');
    const json golden = read_golden(file + ".json");
    for (const auto& [loss, record] : golden["losses"].items())  // every LoRA gradient in full
        EXPECT_EQ(record["grads"].size(), record["grad_norms"].size()) << loss;
    expect_matches_trl(*tiny.decoder, golden, kTiny, name.c_str());
}

INSTANTIATE_TEST_SUITE_P(Models, TinyGolden, ::testing::Values("tiny-llama", "tiny-qwen3"),
                         [](const auto& param_info) {
                             std::string n = param_info.param;
                             std::replace(n.begin(), n.end(), '-', '_');
                             return n;
                         });

// SmolLM2: Kindred runs the Q4_1 weights dequantized on the fly, transformers the same values
// dequantized to fp32; summed log-probs over 20-40-token completions of a 49k vocabulary.
// Measured: reference log-probs within 2.3e-5 nats, losses 2.1e-6 relative, rewards within 1e-6,
// gradient norms 1.3e-5 relative, full gradients 2.0e-5 of the tensor maximum, AdamW step losses
// 8.4e-7. Asserted with ~10x margins. The AdamW steps are replayed for sigmoid only (a step is a
// full SmolLM2 pass; the tiny models replay every loss).
TEST(SmolLm2Dpo, LossMetricsGradientsAndAdamWMatchTrl) {
    const auto file = gguf::File::open(kindred::testing::default_model_path());
    const model::Decoder decoder = model::Decoder::from_gguf(file);
    expect_matches_trl(decoder, read_golden("smollm2.json"), {2e-4, 2e-5, 1e-5, 1e-4, 2e-4, 1e-5}, "smollm2", {"sigmoid"});
}

}  // namespace
}  // namespace kindred::train
