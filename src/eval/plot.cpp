// eval/plot.cpp — layout in pixels, then one pass writing SVG elements. Coordinates are rounded to
// 0.1 px, plenty for a screen and much smaller files.
#include "eval/plot.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "eval/markup.h"

namespace kindred::eval {
namespace {

// Tableau 10: distinct hues that stay distinguishable for the common colour-vision deficiencies.
constexpr std::array<const char*, 10> kColors = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                                 "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};
constexpr const char* kFont = "Helvetica, Arial, 'DejaVu Sans', sans-serif";
constexpr double kCharWidth = 0.58;  // average glyph width per font-size unit of the fonts above


// The 1, 2 or 5 times a power of ten nearest above `raw`.
double nice_step(double raw) {
    const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
    const double fraction = raw / magnitude;
    return (fraction <= 1.0 ? 1.0 : fraction <= 2.0 ? 2.0 : fraction <= 5.0 ? 5.0 : 10.0) * magnitude;
}

std::string linear_label(double value, double step) {
    if (value == 0.0) return "0";
    const double big = std::fabs(value);
    if (big >= 1e15 || step < 1e-9) return fmt::format("{:.3g}", value);  // beyond fixed notation's comfort
    const char* suffix = "";
    double scale = 1.0;
    if (step >= 1e6 - 0.5) {
        suffix = "M";
        scale = 1e6;
    } else if (step >= 1e3 - 0.5 && big >= 1e4) {
        suffix = "k";
        scale = 1e3;
    }
    const int decimals = std::max(0, static_cast<int>(-std::floor(std::log10(step / scale) + 1e-9)));
    return fmt::format("{:.{}f}{}", value / scale, decimals, suffix);
}

std::string log_label(double value) {
    const double exponent = std::log10(value);
    if (exponent >= -4.0 && exponent < 6.0) return fmt::format("{:g}", value);
    return fmt::format("{:.0e}", value);
}

// A range of width zero (one point, a constant series) gets a margin around the value.
void widen(double& lo, double& hi, bool log_scale) {
    if (hi > lo) return;
    if (log_scale) {
        lo /= 2.0;
        hi *= 2.0;
    } else {
        const double margin = lo == 0.0 ? 1.0 : std::fabs(lo) * 0.1;
        lo -= margin;
        hi += margin;
    }
}

struct Point {
    double x;
    double y;
};

// Runs of consecutive drawable points; a skipped point ends a run.
std::vector<std::vector<Point>> runs_of(const PlotSeries& series, bool log_y) {
    std::vector<std::vector<Point>> runs(1);
    for (std::size_t i = 0; i < series.x.size(); ++i) {
        const double x = series.x[i], y = series.y[i];
        if (std::isfinite(x) && std::isfinite(y) && (!log_y || y > 0.0)) {
            runs.back().push_back({x, y});
        } else if (!runs.back().empty()) {
            runs.emplace_back();
        }
    }
    if (runs.back().empty()) runs.pop_back();
    return runs;
}

// TensorBoard's debiased EMA over the drawable points, in order, across gaps.
std::vector<std::vector<Point>> smoothed(const std::vector<std::vector<Point>>& runs, double weight) {
    std::vector<std::vector<Point>> out = runs;
    double average = 0.0, correction = 1.0;
    for (auto& run : out) {
        for (auto& p : run) {
            average = average * weight + (1.0 - weight) * p.y;
            correction *= weight;
            p.y = average / (1.0 - correction);
        }
    }
    return out;
}

}  // namespace

AxisTicks linear_ticks(double lo, double hi, int target) {
    widen(lo, hi, false);
    const double step = nice_step((hi - lo) / std::max(1, target));
    AxisTicks ticks;
    ticks.lo = std::floor(lo / step) * step;
    ticks.hi = std::ceil(hi / step) * step;
    // Bounded count: at huge magnitudes lo + i*step may not even change between ticks.
    const auto count = std::clamp<long long>(std::llround((ticks.hi - ticks.lo) / step), 1, 100);
    for (long long i = 0; i <= count; ++i) {
        double value = ticks.lo + static_cast<double>(i) * step;
        if (std::fabs(value) < step * 1e-9) value = 0.0;  // not "-0" or "1.4e-17"
        ticks.values.push_back(value);
        ticks.labels.push_back(linear_label(value, step));
    }
    return ticks;
}

AxisTicks log_ticks(double lo, double hi, int target) {
    widen(lo, hi, true);
    AxisTicks ticks;
    const double lo_exp = std::floor(std::log10(lo)), hi_exp = std::ceil(std::log10(hi));
    if (std::log10(hi) - std::log10(lo) < 1.0) {
        // Under a decade, decade ticks would leave the curve a thin band: 1-2-5 steps within the data.
        AxisTicks linear = linear_ticks(lo, hi, target);
        ticks.lo = linear.lo > 0.0 ? linear.lo : lo;
        ticks.hi = linear.hi;
        for (std::size_t i = 0; i < linear.values.size(); ++i) {
            if (linear.values[i] >= ticks.lo) {
                ticks.values.push_back(linear.values[i]);
                ticks.labels.push_back(linear.labels[i]);
            }
        }
        return ticks;
    }
    ticks.lo = std::pow(10.0, lo_exp);
    ticks.hi = std::pow(10.0, hi_exp);
    const double decades = hi_exp - lo_exp;
    const auto stride = static_cast<long long>(std::ceil(decades / std::max(1, target)));
    for (double e = lo_exp; e <= hi_exp; e += static_cast<double>(stride)) {
        const double decade = std::pow(10.0, e);
        ticks.values.push_back(decade);
        ticks.labels.push_back(log_label(decade));
        if (decades <= 2.0 && e < hi_exp) {
            for (const double m : {2.0, 5.0}) {
                ticks.values.push_back(m * decade);
                ticks.labels.push_back(log_label(m * decade));
            }
        }
    }
    return ticks;
}

std::string line_chart_svg(const std::vector<PlotSeries>& series, const PlotOptions& options) {
    if (options.width < 200 || options.height < 150) fail("plot: size {}x{} is under 200x150", options.width, options.height);
    if (!(options.smoothing >= 0.0 && options.smoothing < 1.0)) fail("plot: smoothing {} is outside [0, 1)", options.smoothing);
    std::vector<std::vector<std::vector<Point>>> raw;
    double x_lo = std::numeric_limits<double>::infinity(), x_hi = -x_lo, y_lo = x_lo, y_hi = -x_lo;
    for (const auto& s : series) {
        if (s.x.size() != s.y.size()) fail("plot: series '{}' has {} x values but {} y values", s.name, s.x.size(), s.y.size());
        raw.push_back(runs_of(s, options.log_y));
        for (const auto& run : raw.back()) {
            for (const auto& p : run) {
                x_lo = std::min(x_lo, p.x);
                x_hi = std::max(x_hi, p.x);
                y_lo = std::min(y_lo, p.y);
                y_hi = std::max(y_hi, p.y);
            }
        }
    }
    const bool empty = x_lo > x_hi;
    if (empty) {
        x_lo = 0.0, x_hi = 1.0;
        y_lo = options.log_y ? 1.0 : 0.0, y_hi = options.log_y ? 10.0 : 1.0;
    }
    // The smoothed lines are weighted means of raw values, so the raw range already contains them.
    if (!std::isfinite(x_hi - x_lo) || !std::isfinite(y_hi - y_lo)) fail("plot: values span more than a double can hold");

    const double width = options.width, height = options.height;
    const double font = 12.0;
    const AxisTicks y_ticks = options.log_y ? log_ticks(y_lo, y_hi, 5) : linear_ticks(y_lo, y_hi, 5);
    std::size_t label_chars = 1;
    for (const auto& label : y_ticks.labels) label_chars = std::max(label_chars, label.size());
    const double left = (options.y_label.empty() ? 14.0 : 34.0) + static_cast<double>(label_chars) * font * kCharWidth + 8.0;
    const double right = width - 20.0;

    // The legend: named series in rows between the title and the plot, so it never covers data;
    // an entry that does not fit on the current row starts the next one.
    constexpr double legend_row_height = 22.0;
    const auto entry_width = [&](const PlotSeries& s) { return 26.0 + static_cast<double>(s.name.size()) * font * kCharWidth + 14.0; };
    std::vector<std::vector<std::size_t>> legend_rows;
    double row_width = 0.0;
    for (std::size_t s = 0; s < series.size(); ++s) {
        if (series[s].name.empty()) continue;
        if (legend_rows.empty() || (row_width + entry_width(series[s]) > right - left && !legend_rows.back().empty())) {
            legend_rows.emplace_back();
            row_width = 0.0;
        }
        legend_rows.back().push_back(s);
        row_width += entry_width(series[s]);
    }
    const double legend_top = options.title.empty() ? 16.0 : 44.0;
    const double top = legend_top + legend_row_height * static_cast<double>(legend_rows.size());
    const double bottom = height - (options.x_label.empty() ? 30.0 : 50.0);
    const AxisTicks x_ticks = linear_ticks(x_lo, x_hi, std::clamp(static_cast<int>((right - left) / 90.0), 2, 10));

    const auto fy = [&](double y) { return options.log_y ? std::log10(y) : y; };
    const auto px = [&](double x) { return left + (x - x_ticks.lo) / (x_ticks.hi - x_ticks.lo) * (right - left); };
    const auto py = [&](double y) { return bottom - (fy(y) - fy(y_ticks.lo)) / (fy(y_ticks.hi) - fy(y_ticks.lo)) * (bottom - top); };

    std::string svg = fmt::format(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
        "font-family=\"{2}\" font-size=\"{3}\">\n"
        "<rect width=\"{0}\" height=\"{1}\" fill=\"#ffffff\"/>\n",
        options.width, options.height, kFont, font);
    if (!options.title.empty()) {
        svg += fmt::format("<text x=\"{:.1f}\" y=\"26\" text-anchor=\"middle\" font-size=\"16\" font-weight=\"600\" fill=\"#222222\">{}</text>\n",
                           (left + right) / 2.0, escape_markup(options.title));
    }

    // Grid and tick labels; the grid is drawn first so data lines cover it.
    svg += "<g stroke=\"#e5e5e5\" stroke-width=\"1\">\n";
    for (const double v : y_ticks.values) svg += fmt::format("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\"/>\n", left, py(v), right, py(v));
    for (const double v : x_ticks.values) svg += fmt::format("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\"/>\n", px(v), top, px(v), bottom);
    svg += "</g>\n<g fill=\"#555555\">\n";
    for (std::size_t i = 0; i < y_ticks.values.size(); ++i) {
        svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\" dominant-baseline=\"middle\">{}</text>\n", left - 6.0,
                           py(y_ticks.values[i]), escape_markup(y_ticks.labels[i]));
    }
    for (std::size_t i = 0; i < x_ticks.values.size(); ++i) {
        svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n", px(x_ticks.values[i]), bottom + 18.0,
                           escape_markup(x_ticks.labels[i]));
    }
    svg += "</g>\n";
    svg += fmt::format("<path d=\"M{:.1f} {:.1f}V{:.1f}H{:.1f}\" fill=\"none\" stroke=\"#666666\" stroke-width=\"1\"/>\n", left, top, bottom, right);
    if (!options.x_label.empty()) {
        svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\" font-size=\"13\" fill=\"#333333\">{}</text>\n",
                           (left + right) / 2.0, height - 12.0, escape_markup(options.x_label));
    }
    if (!options.y_label.empty()) {
        const double cy = (top + bottom) / 2.0;
        svg += fmt::format("<text x=\"18\" y=\"{0:.1f}\" transform=\"rotate(-90 18 {0:.1f})\" text-anchor=\"middle\" "
                           "dominant-baseline=\"middle\" font-size=\"13\" fill=\"#333333\">{1}</text>\n",
                           cy, escape_markup(options.y_label));
    }
    if (empty) {
        svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\" fill=\"#999999\">no data</text>\n", (left + right) / 2.0,
                           (top + bottom) / 2.0);
    }

    const auto draw = [&](const std::vector<std::vector<Point>>& runs, const char* color, double opacity, double stroke) {
        for (const auto& run : runs) {
            if (run.size() == 1) {  // a lone point has no line to show it
                svg += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"{:.1f}\" fill=\"{}\" fill-opacity=\"{}\"/>\n", px(run[0].x), py(run[0].y),
                                   stroke + 1.6, color, opacity);
                continue;
            }
            svg += fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-opacity=\"{}\" stroke-width=\"{}\" stroke-linejoin=\"round\" "
                               "stroke-linecap=\"round\" points=\"",
                               color, opacity, stroke);
            for (std::size_t i = 0; i < run.size(); ++i) svg += fmt::format("{}{:.1f},{:.1f}", i == 0 ? "" : " ", px(run[i].x), py(run[i].y));
            svg += "\"/>\n";
        }
    };
    svg += "<g>\n";
    for (std::size_t s = 0; s < raw.size(); ++s) {
        const char* color = kColors[s % kColors.size()];
        if (options.smoothing > 0.0 && series[s].smooth) {
            draw(raw[s], color, 0.25, 1.2);
            draw(smoothed(raw[s], options.smoothing), color, 1.0, 2.0);
        } else {
            draw(raw[s], color, 1.0, 1.8);
        }
    }
    svg += "</g>\n";

    for (std::size_t row = 0; row < legend_rows.size(); ++row) {
        // Each row right-aligned to the plot.
        double row_total = 0.0;
        for (const std::size_t s : legend_rows[row]) row_total += entry_width(series[s]);
        double x = std::max(left, right - row_total);
        const double y = legend_top + legend_row_height * static_cast<double>(row) + 8.0;
        for (const std::size_t s : legend_rows[row]) {
            const char* color = kColors[s % kColors.size()];
            svg += fmt::format("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"{}\" stroke-width=\"3\" stroke-linecap=\"round\"/>\n", x,
                               y, x + 18.0, y, color);
            svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" dominant-baseline=\"middle\" fill=\"#333333\">{}</text>\n", x + 24.0, y,
                               escape_markup(series[s].name));
            x += entry_width(series[s]);
        }
    }
    svg += "</svg>\n";
    return svg;
}

std::string bar_chart_svg(const std::vector<std::string>& categories, const std::vector<BarSeries>& series, const PlotOptions& options) {
    if (options.width < 200) fail("plot: width {} is under 200", options.width);
    double lo = 0.0, hi = 0.0;
    for (const auto& s : series) {
        if (s.values.size() != categories.size()) fail("plot: bar series '{}' has {} values for {} categories", s.name, s.values.size(), categories.size());
        for (const double v : s.values) {
            if (!std::isfinite(v)) continue;
            lo = std::min(lo, v);
            hi = std::max(hi, v);
        }
    }
    if (hi <= lo) hi = lo + 1.0;
    const double font = 12.0;
    const double bar = 10.0;
    const double row = std::max(1.0, static_cast<double>(series.size())) * bar + 8.0;
    std::size_t label_chars = 1;
    for (const auto& c : categories) label_chars = std::max(label_chars, c.size());
    const double left = 12.0 + static_cast<double>(label_chars) * font * kCharWidth;
    const double right = options.width - 20.0;
    const double legend_top = options.title.empty() ? 16.0 : 44.0;
    const double top = legend_top + 22.0;
    const double bottom = top + row * static_cast<double>(categories.size());
    const double height = bottom + (options.x_label.empty() ? 30.0 : 50.0);
    const AxisTicks ticks = linear_ticks(lo, hi, std::clamp(static_cast<int>((right - left) / 90.0), 2, 10));
    const auto px = [&](double v) { return left + (v - ticks.lo) / (ticks.hi - ticks.lo) * (right - left); };

    std::string svg = fmt::format(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1:.0f}\" viewBox=\"0 0 {0} {1:.0f}\" "
        "font-family=\"{2}\" font-size=\"{3}\">\n<rect width=\"{0}\" height=\"{1:.0f}\" fill=\"#ffffff\"/>\n",
        options.width, height, kFont, font);
    if (!options.title.empty()) {
        svg += fmt::format("<text x=\"{:.1f}\" y=\"26\" text-anchor=\"middle\" font-size=\"16\" font-weight=\"600\" fill=\"#222222\">{}</text>\n",
                           (left + right) / 2.0, escape_markup(options.title));
    }
    svg += "<g stroke=\"#e5e5e5\" stroke-width=\"1\">\n";
    for (const double v : ticks.values) svg += fmt::format("<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{0:.1f}\" y2=\"{2:.1f}\"/>\n", px(v), top, bottom);
    svg += "</g>\n<g fill=\"#555555\">\n";
    for (std::size_t i = 0; i < ticks.values.size(); ++i) {
        svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n", px(ticks.values[i]), bottom + 18.0,
                           escape_markup(ticks.labels[i]));
    }
    for (std::size_t c = 0; c < categories.size(); ++c) {
        svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\" dominant-baseline=\"middle\">{}</text>\n", left - 6.0,
                           top + row * (static_cast<double>(c) + 0.5), escape_markup(categories[c]));
    }
    svg += "</g>\n<g>\n";
    for (std::size_t c = 0; c < categories.size(); ++c) {
        for (std::size_t s = 0; s < series.size(); ++s) {
            const double v = series[s].values[c];
            if (!std::isfinite(v)) continue;
            const double x0 = px(std::min(0.0, v)), x1 = px(std::max(0.0, v));
            svg += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\"><title>{}: {}</title></rect>\n", x0,
                               top + row * static_cast<double>(c) + 4.0 + bar * static_cast<double>(s), x1 - x0, bar - 1.0,
                               kColors[s % kColors.size()], escape_markup(series[s].name), fmt::format("{:.2f}", v));
        }
    }
    svg += "</g>\n";
    svg += fmt::format("<path d=\"M{:.1f} {:.1f}V{:.1f}\" fill=\"none\" stroke=\"#666666\" stroke-width=\"1\"/>\n", px(0.0), top, bottom);
    if (!options.x_label.empty()) {
        svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\" font-size=\"13\" fill=\"#333333\">{}</text>\n",
                           (left + right) / 2.0, height - 12.0, escape_markup(options.x_label));
    }
    double x = left;
    for (std::size_t s = 0; s < series.size(); ++s) {
        svg += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"14\" height=\"10\" fill=\"{}\"/>\n", x, legend_top + 3.0, kColors[s % kColors.size()]);
        svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" dominant-baseline=\"middle\" fill=\"#333333\">{}</text>\n", x + 20.0, legend_top + 8.0,
                           escape_markup(series[s].name));
        x += 40.0 + static_cast<double>(series[s].name.size()) * font * kCharWidth;
    }
    return svg + "</svg>\n";
}

void write_line_chart(const std::string& path, const std::vector<PlotSeries>& series, const PlotOptions& options) {
    // Charts are rewritten while a run goes on; a viewer reloading one must never see half a file.
    write_file_atomically(path, line_chart_svg(series, options));
}

}  // namespace kindred::eval
