#include "eval/eqbench3_score.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <set>

#include <fmt/format.h>

#include "core/error.h"
#include "text/unicode.h"

namespace kindred::eval {
namespace {

// benchmark.py STANDARD_ALLOWED_RUBRIC_CRITERIA.
const std::vector<std::string> kStandardCounted = {"demonstrated_empathy", "pragmatic_ei",     "depth_of_insight",       "social_dexterity",
                                                   "emotional_reasoning",  "message_tailoring", "theory_of_mind",         "subtext_identification",
                                                   "intellectual_grounding", "correctness"};
constexpr std::string_view kReasoningKey = "chain_of_thought_reasoning";
constexpr double kMaxPossibleDiff = 30.0;  // elo_config.py MAX_POSSIBLE_DIFF
constexpr double kDefaultElo = 1200.0;
constexpr double kSigma = 350.0 / 3.0;
constexpr double kBeta = 350.0 / 6.0;

bool is_ascii_digit(char c) { return c >= '0' && c <= '9'; }

struct CodePoint {
    char32_t value = 0;
    std::size_t length = 0;
};
CodePoint code_point_at(std::string_view text, std::size_t pos) {
    const std::size_t length = text::utf8_length_at(text, pos);
    return {text::utf8_decode_at(text, pos, length), length};
}

bool word_character_before(std::string_view text, std::size_t pos) {
    if (pos == 0) return false;
    std::size_t start = pos - 1;
    while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80 && pos - start < 4) --start;
    return text::is_word_character(code_point_at(text, start).value);
}

bool word_character_at(std::string_view text, std::size_t pos) {
    return pos < text.size() && text::is_word_character(code_point_at(text, pos).value);
}

// Appends the digits starting at `pos` (any script, as Python's \d) to `ascii`; returns the end.
std::size_t take_digits(std::string_view text, std::size_t pos, std::string& ascii) {
    while (pos < text.size()) {
        const CodePoint cp = code_point_at(text, pos);
        const int digit = text::decimal_digit_value(cp.value);
        if (digit < 0) break;
        ascii.push_back(static_cast<char>('0' + digit));
        pos += cp.length;
    }
    return pos;
}

// float(re.search(r'\b(\d+(\.\d+)?)\b', text).group(1)); Python's float() reads digits of any script.
std::optional<double> first_number(std::string_view text) {
    for (std::size_t i = 0; i < text.size();) {
        const CodePoint cp = code_point_at(text, i);
        if (text::decimal_digit_value(cp.value) < 0 || word_character_before(text, i)) {
            i += cp.length;
            continue;
        }
        std::string number;
        const std::size_t j = take_digits(text, i, number);
        if (j < text.size() && text[j] == '.') {
            std::string fraction = ".";
            const std::size_t k = take_digits(text, j + 1, fraction);
            if (fraction.size() > 1 && !word_character_at(text, k)) return std::strtod((number + fraction).c_str(), nullptr);
        }
        if (!word_character_at(text, j)) return std::strtod(number.c_str(), nullptr);
        i = j;  // no word boundary inside a run of digits
    }
    return std::nullopt;
}

double mean(const std::vector<double>& values) {
    long double sum = 0.0L;
    for (const double v : values) sum += v;
    return static_cast<double>(sum / static_cast<long double>(values.size()));
}

// round(value, 2): both sides round the exact binary value to nearest, ties to even.
double python_round2(double value) { return std::strtod(fmt::format("{:.2f}", value).c_str(), nullptr); }

std::optional<long long> python_int(std::string_view text) {
    if (text.empty()) return std::nullopt;
    std::size_t at = text[0] == '-' || text[0] == '+' ? 1 : 0;
    if (at == text.size()) return std::nullopt;
    for (std::size_t i = at; i < text.size(); ++i) {
        if (!is_ascii_digit(text[i])) return std::nullopt;
    }
    return std::strtoll(std::string(text).c_str(), nullptr, 10);
}

// --- the trueskill package's default backend (trueskill/backends.py) ---------------------------

double erfc_approx(double x) {
    const double z = std::abs(x);
    const double t = 1.0 / (1.0 + z / 2.0);
    const double r =
        t * std::exp(-z * z - 1.26551223 +
                     t * (1.00002368 +
                          t * (0.37409196 +
                               t * (0.09678418 +
                                    t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
    return x < 0 ? 2.0 - r : r;
}

double erfcinv_approx(double y) {
    if (y >= 2) return -100.0;
    if (y <= 0) return 100.0;
    const bool zero_point = y < 1;
    if (!zero_point) y = 2 - y;
    const double t = std::sqrt(-2 * std::log(y / 2.0));
    double x = -0.70711 * ((2.30753 + t * 0.27061) / (1.0 + t * (0.99229 + t * 0.04481)) - t);
    for (int i = 0; i < 2; ++i) {
        const double err = erfc_approx(x) - y;
        x += err / (1.12837916709551257 * std::exp(-std::pow(x, 2)) - x * err);
    }
    return zero_point ? x : -x;
}

double pdf(double x) { return 1 / std::sqrt(2 * M_PI) * 1.0 * std::exp(-(std::pow(x, 2) / 2)); }
double ppf(double x) { return 0.0 - 1.0 * std::sqrt(2.0) * erfcinv_approx(2 * x); }

double v_win(double diff, double draw_margin) {
    const double x = diff - draw_margin;
    const double denom = trueskill_cdf(x);
    return denom != 0.0 ? pdf(x) / denom : -x;
}

std::optional<double> w_win(double diff, double draw_margin) {
    const double x = diff - draw_margin;
    const double v = v_win(diff, draw_margin);
    const double w = v * (v + x);
    if (0 < w && w < 1) return w;
    return std::nullopt;  // the package raises FloatingPointError; the harness skips the update
}

double v_draw(double diff, double draw_margin) {
    const double abs_diff = std::abs(diff);
    const double a = draw_margin - abs_diff;
    const double b = -draw_margin - abs_diff;
    const double denom = trueskill_cdf(a) - trueskill_cdf(b);
    const double numer = pdf(b) - pdf(a);
    return (denom != 0.0 ? numer / denom : a) * (diff < 0 ? -1 : +1);
}

std::optional<double> w_draw(double diff, double draw_margin) {
    const double abs_diff = std::abs(diff);
    const double a = draw_margin - abs_diff;
    const double b = -draw_margin - abs_diff;
    const double denom = trueskill_cdf(a) - trueskill_cdf(b);
    if (denom == 0.0) return std::nullopt;
    const double v = v_draw(abs_diff, draw_margin);
    return std::pow(v, 2) + (a * pdf(a) - b * pdf(b)) / denom;
}

// rate_1vs1(first, second, drawn): `first` won unless drawn. False when the package would raise
// (the ratings are then left as they were).
bool rate_1vs1(Eqb3Rating& first, Eqb3Rating& second, bool drawn) {
    // calc_draw_margin(0, 2): ppf(0.5) * sqrt(2) * beta, tiny but not zero with this ppf.
    static const double draw_margin = ppf((0.0 + 1) / 2.0) * std::sqrt(2.0) * kBeta;
    const double c2 = first.sigma * first.sigma + second.sigma * second.sigma + 2 * kBeta * kBeta;
    const double c = std::sqrt(c2);
    const double t = (first.mu - second.mu) / c;
    const double margin = draw_margin / c;
    const double v = drawn ? v_draw(t, margin) : v_win(t, margin);
    const auto w = drawn ? w_draw(t, margin) : w_win(t, margin);
    if (!w) return false;
    const double s1 = first.sigma * first.sigma;
    const double s2 = second.sigma * second.sigma;
    first.mu += s1 / c * v;
    second.mu -= s2 / c * v;
    first.sigma = std::sqrt(s1 * (1 - s1 / c2 * *w));
    second.sigma = std::sqrt(s2 * (1 - s2 / c2 * *w));
    return true;
}

}  // namespace

double trueskill_cdf(double x) { return 0.5 * erfc_approx(-(x - 0) / (1 * std::sqrt(2.0))); }

std::optional<Eqb3Scores> eqbench3_parse_rubric(std::string_view judge_answer) {
    PyValue parsed;
    try {
        parsed = robust_json_loads(judge_answer, "rubric judge answer");
    } catch (const Error&) {
        return std::nullopt;
    }
    if (parsed.kind != PyValue::Kind::Dict || parsed.members.empty()) return std::nullopt;
    Eqb3Scores scores;
    for (const auto& [key, value] : parsed.members) {
        std::optional<double> score;
        if (value.kind == PyValue::Kind::Bool) {
            score = value.boolean ? 1.0 : 0.0;
        } else if (value.kind == PyValue::Kind::Int) {
            if (std::isinf(value.number)) return std::nullopt;  // float(huge int) raises OverflowError
            score = value.number;
        } else if (value.kind == PyValue::Kind::Float) {
            score = value.number;
        } else if (key != kReasoningKey) {
            score = first_number(python_str(value));
        }
        if (!score) continue;
        if (!std::isfinite(*score)) return std::nullopt;  // deviation: see the header
        scores.emplace_back(key, *score);
    }
    if (scores.empty()) return std::nullopt;
    return scores;
}

std::vector<std::string> eqbench3_counted_criteria(Eqb3Kind kind, const std::vector<std::string>& analysis_criteria) {
    return kind == Eqb3Kind::Analysis ? analysis_criteria : kStandardCounted;
}

Eqb3TaskScore eqbench3_task_score(const Eqb3Scores& scores, Eqb3Kind kind, const std::vector<std::string>& analysis_criteria) {
    const auto counted = eqbench3_counted_criteria(kind, analysis_criteria);
    const std::set<std::string> allowed(counted.begin(), counted.end());
    Eqb3TaskScore result;
    std::vector<double> values;
    std::set<std::string> given;
    for (const auto& [criterion, score] : scores) {
        if (!allowed.contains(criterion)) continue;
        given.insert(criterion);
        ++result.counted;
        if (score < 0.0 || score > 20.0) ++result.out_of_range;
        const int weight = criterion == "overall_eq" ? 3 : 1;
        for (int i = 0; i < weight; ++i) values.push_back(score);
    }
    // Missing among the criteria the judge is asked for (analysis: all; otherwise the six of the
    // standard rubric prompt, which are the counted ones not borrowed from the analysis list).
    for (const auto& criterion : counted) {
        const bool asked = kind == Eqb3Kind::Analysis ||
                           std::find(analysis_criteria.begin(), analysis_criteria.end(), criterion) == analysis_criteria.end();
        if (asked && !given.contains(criterion)) ++result.missing;
    }
    if (!values.empty()) result.score = mean(values);
    return result;
}

std::optional<double> eqbench3_rubric_score(const std::vector<double>& task_scores) {
    if (task_scores.empty()) return std::nullopt;
    return python_round2(mean(task_scores));
}

std::optional<PyValue> eqbench3_parse_pairwise(std::string_view judge_answer) {
    try {
        PyValue parsed = robust_json_loads(judge_answer, "pairwise judge answer");
        if (parsed.kind == PyValue::Kind::Dict && !parsed.members.empty()) return parsed;
    } catch (const Error&) {
    }
    return std::nullopt;
}

Eqb3PlusCounts eqbench3_interpret_pairwise(const PyValue& judgement) {
    Eqb3PlusCounts counts;
    for (const auto& [key, value] : judgement.members) {
        if (key == kReasoningKey || value.kind != PyValue::Kind::String) continue;
        const auto plus = static_cast<std::int64_t>(std::count(value.text.begin(), value.text.end(), '+'));
        if (value.text.find("A0493") != std::string::npos) {
            counts.plus_a += plus;
        } else if (value.text.find("A0488") != std::string::npos) {
            counts.plus_b += plus;
        }
    }
    counts.outcome_for_a = counts.plus_a > counts.plus_b ? 1.0 : counts.plus_b > counts.plus_a ? 0.0 : 0.5;
    return counts;
}

Eqb3Fraction eqbench3_fraction_for_test(double outcome_for_test, std::int64_t plus_test, std::int64_t plus_other) {
    Eqb3Fraction result;
    result.diff = plus_test > plus_other ? plus_test - plus_other : plus_other - plus_test;
    result.diff_norm = std::min(static_cast<double>(result.diff) / kMaxPossibleDiff, 1.0);
    const double margin = result.diff_norm / 2.0 + 0.5;
    double fraction = outcome_for_test == 0.5 ? 0.5 : outcome_for_test == 1.0 ? margin : 1.0 - margin;
    result.fraction = std::max(0.0, std::min(1.0, fraction));
    return result;
}

Eqb3Comparison eqbench3_comparison(std::string test_model, std::string other_model, std::string scenario_id, std::string iteration,
                                   bool test_is_a, const PyValue& judgement) {
    const Eqb3PlusCounts counts = eqbench3_interpret_pairwise(judgement);
    Eqb3Comparison comparison;
    comparison.test_is_a = test_is_a;
    if (test_is_a) {
        comparison.outcome_for_test = counts.outcome_for_a;
        comparison.plus_test = counts.plus_a;
        comparison.plus_other = counts.plus_b;
    } else {
        comparison.outcome_for_test = counts.outcome_for_a == 1.0 ? 0.0 : counts.outcome_for_a == 0.0 ? 1.0 : 0.5;
        comparison.plus_test = counts.plus_b;
        comparison.plus_other = counts.plus_a;
    }
    // downscale_analysis_pair: analysis items carry the smallest margin.
    const auto number = python_int(scenario_id);
    if (number && *number >= 400) {
        if (comparison.outcome_for_test == 1.0) {
            comparison.plus_test = 1, comparison.plus_other = 0;
        } else if (comparison.outcome_for_test == 0.0) {
            comparison.plus_test = 0, comparison.plus_other = 1;
        } else {
            comparison.plus_test = comparison.plus_other = 0;
        }
    }
    comparison.fraction_for_test = eqbench3_fraction_for_test(comparison.outcome_for_test, comparison.plus_test, comparison.plus_other).fraction;
    comparison.test_model = std::move(test_model);
    comparison.other_model = std::move(other_model);
    comparison.scenario_id = std::move(scenario_id);
    comparison.iteration = std::move(iteration);
    return comparison;
}

std::pair<int, int> eqbench3_bin_fraction(double fraction, int bin_size) {
    fraction = std::max(0.0, std::min(1.0, fraction));
    const double eps = 1e-9;
    const double step = 0.5 / bin_size;
    if (std::abs(fraction - 0.5) < eps) return {1, 1};
    const auto wins = [&](double margin) { return std::max(1, std::min(bin_size, static_cast<int>(std::ceil(margin / step)))); };
    if (fraction > 0.5) return {wins(fraction - 0.5), 0};
    return {0, wins(0.5 - fraction)};
}

std::vector<Eqb3GroupFraction> eqbench3_group_fractions(const std::vector<Eqb3Comparison>& comparisons) {
    struct Group {
        Eqb3GroupFraction key;
        std::int64_t plus1 = 0;
        std::int64_t plus2 = 0;
    };
    std::vector<Group> groups;
    for (const auto& c : comparisons) {
        if (c.test_model.empty() || c.other_model.empty() || c.scenario_id.empty()) continue;
        const bool test_first = c.test_model < c.other_model;
        const std::string& model1 = test_first ? c.test_model : c.other_model;
        const std::string& model2 = test_first ? c.other_model : c.test_model;
        auto group = std::find_if(groups.begin(), groups.end(), [&](const Group& g) {
            return g.key.model1 == model1 && g.key.model2 == model2 && g.key.scenario_id == c.scenario_id && g.key.iteration == c.iteration;
        });
        if (group == groups.end()) group = groups.insert(groups.end(), Group{{model1, model2, c.scenario_id, c.iteration, 0.5}});
        // pair.test_model == model1 ? add as is : swapped
        if (c.test_model == model1) {
            group->plus1 += c.plus_test;
            group->plus2 += c.plus_other;
        } else {
            group->plus2 += c.plus_test;
            group->plus1 += c.plus_other;
        }
    }
    std::vector<Eqb3GroupFraction> fractions;
    for (auto& group : groups) {
        const double outcome = group.plus1 > group.plus2 ? 1.0 : group.plus1 < group.plus2 ? 0.0 : 0.5;
        group.key.fraction = eqbench3_fraction_for_test(outcome, group.plus1, group.plus2).fraction;
        fractions.push_back(std::move(group.key));
    }
    return fractions;
}

std::map<std::string, Eqb3Rating> eqbench3_solve_trueskill(const std::vector<std::string>& models,
                                                           const std::vector<Eqb3Comparison>& comparisons, int bin_size) {
    std::map<std::string, Eqb3Rating> ratings;
    for (const auto& model : models) ratings[model] = Eqb3Rating{kDefaultElo, kSigma};
    for (const auto& group : eqbench3_group_fractions(comparisons)) {
        const auto first = ratings.find(group.model1);
        const auto second = ratings.find(group.model2);
        if (first == ratings.end() || second == ratings.end() || group.model1 == group.model2) continue;
        const auto [wins_first, wins_second] = eqbench3_bin_fraction(group.fraction, bin_size);
        if (wins_first == 1 && wins_second == 1) {
            rate_1vs1(first->second, second->second, true);
            continue;
        }
        // A failed update ends the group's pseudo-matches (the harness's try block wraps them all).
        bool ok = true;
        for (int i = 0; i < wins_first && ok; ++i) ok = rate_1vs1(first->second, second->second, false);
        for (int i = 0; i < wins_second && ok; ++i) ok = rate_1vs1(second->second, first->second, false);
    }
    return ratings;
}

std::optional<Eqb3Normalisation> eqbench3_normalisation(const std::map<std::string, double>& raw) {
    const auto high = raw.find(std::string(kEqBench3AnchorHigh));
    const auto low = raw.find(std::string(kEqBench3AnchorLow));
    if (high == raw.end() || low == raw.end()) return std::nullopt;
    Eqb3Normalisation n;
    n.scale = std::abs(high->second - low->second) < 1e-6 ? 1.0 : (1500.0 - 200.0) / (high->second - low->second);
    n.shift = 1500.0 - n.scale * high->second;
    return n;
}

std::map<std::string, Eqb3Elo> eqbench3_elo(const std::vector<std::string>& models, const std::vector<Eqb3Comparison>& comparisons) {
    const auto mu = eqbench3_solve_trueskill(models, comparisons, kEqBench3RatingBins);
    const auto sigma = eqbench3_solve_trueskill(models, comparisons, kEqBench3SigmaBins);
    std::map<std::string, Eqb3Elo> result;
    std::map<std::string, double> raw;
    for (const auto& model : models) {
        Eqb3Elo& elo = result[model];
        elo.elo = mu.at(model).mu;
        elo.sigma = sigma.at(model).sigma;
        elo.ci_low = elo.elo - 1.96 * elo.sigma;
        elo.ci_high = elo.elo + 1.96 * elo.sigma;
        raw[model] = elo.elo;
    }
    if (const auto n = eqbench3_normalisation(raw)) {
        for (auto& [model, elo] : result) {
            elo.elo_norm = elo.elo * n->scale + n->shift;
            elo.ci_low_norm = elo.ci_low * n->scale + n->shift;
            elo.ci_high_norm = elo.ci_high * n->scale + n->shift;
        }
    }
    return result;
}

}  // namespace kindred::eval
