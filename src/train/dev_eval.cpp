#include "train/dev_eval.h"

#include <algorithm>
#include <filesystem>
#include <optional>
#include <set>
#include <vector>

#include "core/error.h"
#include "eval/metrics.h"
#include "eval/multilabel.h"
#include "formats/peft_adapter.h"
#include "infer/loaded_model.h"
#include "kernels/loss.h"
#include "model/heads.h"
#include "model/lora_adapters.h"
#include "model/trainable_decoder.h"
#include "train/batch.h"
#include "train/frozen_cache.h"
#include "train/safety_teacher.h"
#include "train/training_run.h"

namespace kindred::train {
namespace {

// What the dev pass collects before scoring: the site labels beside the heads' predictions.
struct Collected {
    double nll = 0.0;
    std::size_t nll_tokens = 0;
    double kl = 0.0;
    std::size_t kl_tokens = 0;
    std::vector<int> emotion_truth, emotion_predicted;  // single-label sites
    std::vector<std::vector<int>> multilabel_truth, multilabel_predicted;
    std::vector<float> multilabel_probabilities;  // [multi-label sites x emotion classes]
    std::vector<int> strategy_truth, strategy_predicted;
    std::vector<double> va_truth, va_predicted;  // valence, arousal, valence, ...
};

bool head_on(const model::Heads* heads, model::Head head) { return heads != nullptr && heads->enabled(head); }

int argmax(const float* row, std::int64_t n) {
    return static_cast<int>(std::max_element(row, row + n) - row);  // first of equal maxima
}

// Multi-label prediction: every class whose probability is at least half the top one's, i.e.
// whose logit is within log 2 of the top logit (the argmax is always in).
std::vector<int> multilabel_prediction(const float* logits, std::int64_t n) {
    const int top = argmax(logits, n);
    const float floor = logits[top] - 0.69314718f;
    std::vector<int> out;
    for (std::int64_t c = 0; c < n; ++c) {
        if (logits[c] >= floor) out.push_back(static_cast<int>(c));
    }
    return out;
}

void check_inputs(const model::TrainableDecoder& trainer, const model::Heads* heads,
                  std::span<const TokenizedExample> dev, std::size_t max_seq_len) {
    if (max_seq_len == 0 || max_seq_len > static_cast<std::size_t>(trainer.max_tokens()))
        fail("dev evaluation: max_seq_len {} must be in [1, {}] (the trainer's token budget)", max_seq_len,
             trainer.max_tokens());
    if (heads != nullptr && heads->hidden() != trainer.output_rows().cols)
        fail("dev evaluation: the heads read {} hidden features but the model has {}", heads->hidden(),
             trainer.output_rows().cols);
    for (const auto& example : dev) {
        if (example.tokens.empty() || example.tokens.size() > max_seq_len)
            fail("dev evaluation: the example of line {} has {} tokens, outside [1, max_seq_len {}]", example.line,
                 example.tokens.size(), max_seq_len);
        if (example.targets.size() != example.tokens.size())
            fail("dev evaluation: the example of line {} has {} targets for {} tokens", example.line,
                 example.targets.size(), example.tokens.size());
        for (const auto& site : example.sites) {
            if (site.position < 0 || static_cast<std::size_t>(site.position) >= example.tokens.size())
                fail("dev evaluation: the example of line {} has a head site at {}, outside its {} tokens",
                     example.line, site.position, example.tokens.size());
            if (head_on(heads, model::Head::Emotion)) {
                for (const auto label : site.emotions) {
                    if (label < 0 || label >= heads->outputs(model::Head::Emotion))
                        fail("dev evaluation: the example of line {} has emotion label {}, outside the head's {} classes",
                             example.line, label, heads->outputs(model::Head::Emotion));
                }
            }
            if (head_on(heads, model::Head::Strategy) && site.strategy >= heads->outputs(model::Head::Strategy))
                fail("dev evaluation: the example of line {} has strategy {}, outside the head's {} classes",
                     example.line, site.strategy, heads->outputs(model::Head::Strategy));
        }
    }
}

// The rows of `hidden` [tokens x dim] at `positions`, gathered into one [positions x dim] block.
std::vector<float> gather(std::span<const float> hidden, std::int64_t dim, const std::vector<std::size_t>& positions) {
    const auto d = static_cast<std::size_t>(dim);
    std::vector<float> out(positions.size() * d);
    for (std::size_t i = 0; i < positions.size(); ++i)
        std::copy_n(hidden.begin() + static_cast<std::ptrdiff_t>(positions[i] * d), d, out.begin() + static_cast<std::ptrdiff_t>(i * d));
    return out;
}

// The head sites of a row, in order (example by example, site by site), with whether each is
// scored as multi-label.
struct RowSite {
    const HeadSite* site;
    std::size_t position;  // in the packed row
    bool multi;
};

std::vector<RowSite> row_sites(std::span<const TokenizedExample> dev, const std::vector<std::size_t>& row,
                               const std::vector<std::size_t>& offsets) {
    std::vector<RowSite> out;
    for (std::size_t j = 0; j < row.size(); ++j) {
        const auto& example = dev[row[j]];
        for (const auto& site : example.sites)
            out.push_back({&site, offsets[j] + static_cast<std::size_t>(site.position),
                           example.multi_label || site.emotions.size() > 1});
    }
    return out;
}

// The heads evaluate_dev scores, in the order their outputs sit in a site's slice.
constexpr model::Head kScoredHeads[] = {model::Head::Emotion, model::Head::Strategy, model::Head::ValenceArousal};

// The outputs per site of every enabled head, side by side.
std::int64_t site_width(const model::Heads& heads) {
    std::int64_t width = 0;
    for (const auto head : kScoredHeads)
        if (heads.enabled(head)) width += heads.outputs(head);
    return width;
}

// Every enabled head's outputs at the row's sites into `out` [sites x site_width].
void head_outputs(const model::Heads& heads, std::span<const float> hidden, std::int64_t dim,
                  const std::vector<RowSite>& sites, double* out) {
    if (sites.empty()) return;
    std::vector<std::size_t> positions;
    for (const auto& site : sites) positions.push_back(site.position);
    const auto pooled = gather(hidden, dim, positions);
    const auto n = static_cast<std::int64_t>(sites.size());
    const std::int64_t width = site_width(heads);
    std::vector<float> y;
    std::int64_t column = 0;
    for (const auto head : kScoredHeads) {
        if (!heads.enabled(head)) continue;
        const std::int64_t outputs = heads.outputs(head);
        y.assign(static_cast<std::size_t>(n * outputs), 0.0f);
        heads.forward(head, pooled.data(), n, y.data());
        for (std::int64_t s = 0; s < n; ++s)
            for (std::int64_t o = 0; o < outputs; ++o) out[s * width + column + o] = y[static_cast<std::size_t>(s * outputs + o)];
        column += outputs;
    }
}

// The heads' predictions from their outputs at the row's sites, beside the sites' labels.
void score_sites(const model::Heads& heads, const std::vector<RowSite>& sites, const double* outputs, Collected& c) {
    const std::int64_t width = site_width(heads);
    std::vector<float> y;
    std::int64_t column = 0;
    for (const auto head : kScoredHeads) {
        if (!heads.enabled(head)) continue;
        const std::int64_t classes = heads.outputs(head);
        for (std::size_t s = 0; s < sites.size(); ++s) {
            const HeadSite& site = *sites[s].site;
            const double* at = outputs + static_cast<std::int64_t>(s) * width + column;
            y.assign(at, at + classes);
            const float* logits = y.data();
            if (head == model::Head::Emotion) {
                const auto& labels = site.emotions;
                if (labels.empty()) continue;
                if (sites[s].multi) {
                    c.multilabel_truth.emplace_back(labels.begin(), labels.end());
                    c.multilabel_predicted.push_back(multilabel_prediction(logits, classes));
                    const std::size_t begin = c.multilabel_probabilities.size();
                    c.multilabel_probabilities.resize(begin + static_cast<std::size_t>(classes));
                    heads.emotion_probabilities(logits, 1, c.multilabel_probabilities.data() + begin);
                } else {
                    c.emotion_truth.push_back(labels[0]);
                    c.emotion_predicted.push_back(argmax(logits, classes));
                }
            } else if (head == model::Head::Strategy) {
                if (site.strategy < 0) continue;
                c.strategy_truth.push_back(site.strategy);
                c.strategy_predicted.push_back(argmax(logits, classes));
            } else {
                if (!site.has_va) continue;
                c.va_truth.push_back(site.valence);
                c.va_truth.push_back(site.arousal);
                c.va_predicted.push_back(logits[0]);
                c.va_predicted.push_back(logits[1]);
            }
        }
        column += classes;
    }
}

// Macro-F1 over the labels present in the truth or the predictions (see the header).
double present_label_macro_f1(const std::vector<std::vector<int>>& truth, const std::vector<std::vector<int>>& predicted,
                              int num_labels) {
    const auto report = eval::multilabel_report(truth, predicted, num_labels);
    std::set<int> present;
    for (const auto* sets : {&truth, &predicted})
        for (const auto& set : *sets) present.insert(set.begin(), set.end());
    double sum = 0.0;
    for (const int label : present) sum += report.labels[static_cast<std::size_t>(label)].f1;
    return sum / static_cast<double>(present.size());
}

}  // namespace

nlohmann::json to_json(const DevMetrics& m) {
    const auto number = [](double x) { return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr); };
    return nlohmann::json{
        {"nll", number(m.nll)},
        {"nll_tokens", m.nll_tokens},
        {"emotion_macro_f1", number(m.emotion_macro_f1)},
        {"emotion_sites", m.emotion_sites},
        {"emotion_multilabel_f1", number(m.emotion_multilabel_f1)},
        {"emotion_multilabel_sites", m.emotion_multilabel_sites},
        {"emotion_accuracy", number(m.emotion_accuracy)},
        {"emotion_threshold", number(m.emotion_threshold)},
        {"emotion_threshold_macro_f1", number(m.emotion_threshold_macro_f1)},
        {"emotion_threshold_micro_f1", number(m.emotion_threshold_micro_f1)},
        {"strategy_accuracy", number(m.strategy_accuracy)},
        {"strategy_macro_f1", number(m.strategy_macro_f1)},
        {"strategy_sites", m.strategy_sites},
        {"va_mse", number(m.va_mse)},
        {"va_mae", number(m.va_mae)},
        {"va_sites", m.va_sites},
        {"safe_kl", number(m.safe_kl)},
    };
}

DevMetrics dev_metrics_from_json(const nlohmann::json& json, const std::string& where) {
    if (!json.is_object()) fail("{}: dev metrics must be a JSON object", where);
    DevMetrics m;
    const auto number = [&](const char* key, double& out) {
        if (!json.contains(key) || json[key].is_null()) return;
        if (!json[key].is_number()) fail("{}: dev metric '{}' must be a number or null", where, key);
        out = json[key].get<double>();
    };
    const auto count = [&](const char* key, std::size_t& out) {
        if (!json.contains(key) || json[key].is_null()) return;
        if (!json[key].is_number_unsigned()) fail("{}: dev count '{}' must be a non-negative integer", where, key);
        out = json[key].get<std::size_t>();
    };
    number("nll", m.nll);
    count("nll_tokens", m.nll_tokens);
    number("emotion_macro_f1", m.emotion_macro_f1);
    count("emotion_sites", m.emotion_sites);
    number("emotion_multilabel_f1", m.emotion_multilabel_f1);
    count("emotion_multilabel_sites", m.emotion_multilabel_sites);
    number("emotion_accuracy", m.emotion_accuracy);
    number("emotion_threshold", m.emotion_threshold);
    number("emotion_threshold_macro_f1", m.emotion_threshold_macro_f1);
    number("emotion_threshold_micro_f1", m.emotion_threshold_micro_f1);
    number("strategy_accuracy", m.strategy_accuracy);
    number("strategy_macro_f1", m.strategy_macro_f1);
    count("strategy_sites", m.strategy_sites);
    number("va_mse", m.va_mse);
    number("va_mae", m.va_mae);
    count("va_sites", m.va_sites);
    number("safe_kl", m.safe_kl);
    return m;
}

DevMetrics evaluate_dev(model::TrainableDecoder& trainer, const model::Heads* heads, SafetyTeacher* teacher,
                        std::span<const TokenizedExample> dev, std::size_t max_seq_len,
                        const FrozenResiduals* residuals, const DataParallel& parallel) {
    DevMetrics metrics;
    if (dev.empty()) return metrics;
    check_inputs(trainer, heads, dev, max_seq_len);

    const auto& output = trainer.output_rows();
    const std::int64_t dim = output.cols;
    const std::int64_t width = heads != nullptr ? site_width(*heads) : 0;
    // Each row's results in one slice of `results`: NLL sum and count, KL sum and count, then the
    // heads' outputs at its sites. A rank fills the slices of its rows, zeros stay elsewhere, and
    // the ranks' buffers are summed, so every rank holds every row's results, each computed once.
    enum : std::size_t { kNll, kNllTokens, kKl, kKlTokens, kSums };
    const auto rows = pack_in_order(dev, max_seq_len);
    std::vector<std::vector<RowSite>> sites(rows.size());
    std::vector<std::size_t> slice(rows.size() + 1, 0);
    for (std::size_t r = 0; r < rows.size(); ++r) {
        std::vector<std::size_t> offsets;
        for (std::size_t used = 0; const std::size_t index : rows[r]) {
            offsets.push_back(used);
            used += dev[index].tokens.size();
        }
        sites[r] = row_sites(dev, rows[r], offsets);
        slice[r + 1] = slice[r] + kSums + sites[r].size() * static_cast<std::size_t>(width);
    }
    std::vector<double> results(slice.back(), 0.0);
    for (std::size_t r = 0; r < rows.size(); ++r) {
        if (!parallel.runs_row(r)) continue;
        const auto& row = rows[r];
        double* sums = results.data() + slice[r];
        // Teacher first: it runs the shared base Decoder, so none of it interleaves with the
        // trainer's forward whose hidden states are read below.
        std::vector<const TeacherTargets*> teacher_rows(row.size(), nullptr);
        if (teacher != nullptr) {
            for (std::size_t j = 0; j < row.size(); ++j) {
                const auto& example = dev[row[j]];
                if (example.target_count == 0) continue;
                teacher_rows[j] = &teacher->targets(row[j], example);
                if (teacher_rows[j]->targets() != example.target_count)
                    fail("dev evaluation: the teacher gave {} targets for the {} of the example of line {}",
                         teacher_rows[j]->targets(), example.target_count, example.line);
            }
        }

        std::vector<std::size_t> offsets;
        model::TrainBatch batch = ordered_row(dev, row, offsets);
        if (residuals != nullptr)
            for (const std::size_t i : row) residuals->append(batch, i);
        std::size_t row_targets = 0;
        for (const std::size_t index : row) row_targets += dev[index].target_count;
        const auto tokens = static_cast<std::int64_t>(batch.tokens.size());
        const std::span<const float> hidden = trainer.forward(batch, /*train=*/false);

        if (row_targets > 0) {
            const kernels::FusedCrossEntropyShape shape{tokens, dim, output.rows};
            const auto totals = kernels::fused_cross_entropy(nullptr, nullptr, hidden.data(), output, batch.targets.data(),
                                                             nullptr, shape, 1.0f);
            sums[kNll] = totals.loss;
            sums[kNllTokens] = static_cast<double>(totals.counted);
        }
        if (heads != nullptr) head_outputs(*heads, hidden, dim, sites[r], sums + kSums);
        for (std::size_t j = 0; j < row.size(); ++j) {
            const TeacherTargets* targets = teacher_rows[j];
            if (targets == nullptr) continue;
            std::vector<std::size_t> positions;
            const auto& example = dev[row[j]];
            for (std::size_t t = 0; t < example.targets.size(); ++t) {
                if (example.targets[t] != kIgnoreTarget) positions.push_back(offsets[j] + t);
            }
            const auto h = gather(hidden, dim, positions);
            const kernels::TopKTeacher top{targets->ids.data(), targets->probs.data(), targets->residual.data(),
                                           targets->k};
            const kernels::FusedCrossEntropyShape shape{static_cast<std::int64_t>(positions.size()), dim, output.rows};
            sums[kKl] += kernels::fused_topk_kl(nullptr, h.data(), output, top, shape, teacher->temperature(), 1.0f);
            sums[kKlTokens] += static_cast<double>(positions.size());
        }
    }
    if (parallel.active()) parallel.sum(results);

    // Row by row in order, as one process adds them up.
    Collected c;
    for (std::size_t r = 0; r < rows.size(); ++r) {
        const double* sums = results.data() + slice[r];
        c.nll += sums[kNll];
        c.nll_tokens += static_cast<std::size_t>(sums[kNllTokens]);
        c.kl += sums[kKl];
        c.kl_tokens += static_cast<std::size_t>(sums[kKlTokens]);
        if (heads != nullptr) score_sites(*heads, sites[r], sums + kSums, c);
    }

    if (c.nll_tokens > 0) metrics.nll = c.nll / static_cast<double>(c.nll_tokens);
    metrics.nll_tokens = c.nll_tokens;
    if (c.kl_tokens > 0) metrics.safe_kl = c.kl / static_cast<double>(c.kl_tokens);
    if (!c.emotion_truth.empty()) {
        const auto report = eval::classification_report(c.emotion_truth, c.emotion_predicted,
                                                        static_cast<int>(heads->outputs(model::Head::Emotion)));
        metrics.emotion_macro_f1 = report.macro_f1;
        metrics.emotion_accuracy = report.accuracy;
    }
    metrics.emotion_sites = c.emotion_truth.size();
    if (!c.multilabel_truth.empty())
        metrics.emotion_multilabel_f1 = present_label_macro_f1(
            c.multilabel_truth, c.multilabel_predicted, static_cast<int>(heads->outputs(model::Head::Emotion)));
    metrics.emotion_multilabel_sites = c.multilabel_truth.size();
    if (!c.multilabel_truth.empty()) {
        const auto choice = eval::choose_threshold(c.multilabel_probabilities, heads->outputs(model::Head::Emotion),
                                                   c.multilabel_truth);
        metrics.emotion_threshold = choice.threshold;
        metrics.emotion_threshold_macro_f1 = choice.macro_f1;
        metrics.emotion_threshold_micro_f1 = choice.micro_f1;
    }
    if (!c.strategy_truth.empty()) {
        const auto report = eval::classification_report(c.strategy_truth, c.strategy_predicted,
                                                        static_cast<int>(heads->outputs(model::Head::Strategy)));
        metrics.strategy_accuracy = report.accuracy;
        metrics.strategy_macro_f1 = report.macro_f1;
    }
    metrics.strategy_sites = c.strategy_truth.size();
    if (!c.va_truth.empty()) {
        metrics.va_mse = eval::mean_squared_error(c.va_truth, c.va_predicted);
        metrics.va_mae = eval::mean_absolute_error(c.va_truth, c.va_predicted);
    }
    metrics.va_sites = c.va_truth.size() / 2;
    return metrics;
}

DevMetrics evaluate_adapter_on_dev(model::Decoder& base, const std::string& adapter_dir, SafetyTeacher* teacher,
                                   std::span<const TokenizedExample> dev, std::size_t max_seq_len,
                                   kernels::Precision precision) {
    std::optional<peft::Adapter> adapter;
    model::LoraConfig lora;
    if (!adapter_dir.empty()) {
        adapter = peft::read_adapter(adapter_dir);
        lora = infer::lora_config(adapter->config, base.config(), adapter_dir + "/adapter_config.json");
    } else {
        lora.rank = 1;
        lora.targets = {"q"};
    }
    model::LoraAdapters adapters(base.config(), lora, base.weights().qk_interleaved);
    if (adapter)
        infer::set_adapter_values(adapters, *adapter, base.config(), adapter_dir + "/adapter_model.safetensors", "being trained");
    std::optional<model::Heads> heads;
    if (!adapter_dir.empty() && std::filesystem::exists(std::filesystem::path(adapter_dir) / "heads.json"))
        heads.emplace(model::read_heads(adapter_dir, base.config().hidden_size));
    model::TrainableDecoder trainer(base, adapters, false, static_cast<std::int64_t>(max_seq_len), precision);
    return evaluate_dev(trainer, heads ? &*heads : nullptr, teacher, dev, max_seq_len);
}

}  // namespace kindred::train
