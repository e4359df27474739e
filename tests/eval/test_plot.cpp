// SVG line charts: nice ticks, well-formed output with only finite numbers, skipped NaN/Inf points,
// degenerate series (empty, one point, constant), log-y, smoothing and escaping.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <regex>
#include <set>

#include <fmt/format.h>

#include "core/error.h"
#include "eval/plot.h"

namespace kindred::eval {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// Structural checks standing in for an XML parser: tags balance, and every numeric attribute holds
// only finite numbers. Returns the first problem, or "" for a well-formed document.
std::string svg_problem(const std::string& svg) {
    if (!svg.starts_with("<svg ") || !svg.ends_with("</svg>\n")) return "not an <svg> document";
    std::vector<std::string> open;
    for (std::size_t at = svg.find('<'); at != std::string::npos; at = svg.find('<', at + 1)) {
        const std::size_t end = svg.find('>', at);
        if (end == std::string::npos) return "unterminated tag";
        const std::string tag = svg.substr(at + 1, end - at - 1);
        if (tag.find('<') != std::string::npos) return "'<' inside a tag";
        if (tag.starts_with("/")) {
            if (open.empty() || open.back() != tag.substr(1)) return "mismatched </" + tag.substr(1) + ">";
            open.pop_back();
        } else if (!tag.ends_with("/")) {
            open.push_back(tag.substr(0, tag.find(' ')));
        }
    }
    if (!open.empty()) return "unclosed <" + open.back() + ">";
    static const std::regex attribute(R"re(\b(x|y|x1|y1|x2|y2|cx|cy|r|width|height|points|d|stroke-width|stroke-opacity|fill-opacity|font-size|transform)="([^"]*)")re");
    static const std::regex number(R"([-+]?[0-9]*\.?[0-9]+(e[-+]?[0-9]+)?|nan|inf)", std::regex::icase);
    for (auto it = std::sregex_iterator(svg.begin(), svg.end(), attribute); it != std::sregex_iterator(); ++it) {
        const std::string value = (*it)[2];
        for (auto n = std::sregex_iterator(value.begin(), value.end(), number); n != std::sregex_iterator(); ++n) {
            if (!std::isfinite(std::strtod(n->str().c_str(), nullptr))) return "non-finite number in " + it->str();
        }
    }
    return "";
}

std::size_t count(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
}

TEST(Plot, LinearTicksAreNice) {
    AxisTicks t = linear_ticks(0.0, 2000.0, 5);
    EXPECT_EQ(t.values, (std::vector<double>{0, 500, 1000, 1500, 2000}));
    EXPECT_EQ(t.labels, (std::vector<std::string>{"0", "500", "1000", "1500", "2000"}));
    t = linear_ticks(0.83, 3.31, 5);
    EXPECT_EQ(t.lo, 0.5);
    EXPECT_EQ(t.hi, 3.5);
    EXPECT_EQ(t.labels, (std::vector<std::string>{"0.5", "1.0", "1.5", "2.0", "2.5", "3.0", "3.5"}));
    t = linear_ticks(0.0, 100000.0, 5);
    EXPECT_EQ(t.labels, (std::vector<std::string>{"0", "20k", "40k", "60k", "80k", "100k"}));
    t = linear_ticks(-0.3, 0.3, 4);
    EXPECT_EQ(t.labels, (std::vector<std::string>{"-0.4", "-0.2", "0", "0.2", "0.4"}));  // an exact 0, not -5.6e-17
    t = linear_ticks(5.0, 5.0, 5);  // constant: widened around the value
    EXPECT_LT(t.lo, 5.0);
    EXPECT_GT(t.hi, 5.0);
    t = linear_ticks(0.0, 0.0, 5);
    EXPECT_LT(t.lo, 0.0);
    EXPECT_GT(t.hi, 0.0);
}

TEST(Plot, LogTicks) {
    AxisTicks t = log_ticks(0.002, 30.0, 5);
    EXPECT_EQ(t.labels, (std::vector<std::string>{"0.001", "0.01", "0.1", "1", "10", "100"}));
    EXPECT_EQ(t.lo, 0.001);
    EXPECT_EQ(t.hi, 100.0);
    t = log_ticks(1.5, 40.0, 5);  // two decades: 2 and 5 between
    EXPECT_EQ(t.labels, (std::vector<std::string>{"1", "2", "5", "10", "20", "50", "100"}));
    t = log_ticks(1e-12, 1e12, 6);  // many decades are thinned
    EXPECT_LE(t.values.size(), 7u);
    EXPECT_EQ(t.labels.front(), "1e-12");
    t = log_ticks(0.83, 3.31, 5);  // under a decade: 1-2-5 steps, all positive
    EXPECT_GT(t.lo, 0.0);
    for (const double v : t.values) EXPECT_GT(v, 0.0);
}

TEST(Plot, ChartIsWellFormed) {
    PlotSeries train{"train", {}, {}}, eval{"eval", {}, {}, false};
    for (int i = 0; i <= 100; ++i) {
        train.x.push_back(i);
        train.y.push_back(3.0 * std::exp(-i / 30.0) + 0.5);
    }
    eval.x = {0, 50, 100};
    eval.y = {3.4, 1.2, 0.8};
    PlotOptions options{"Loss & <co>", "step", "loss", false, 0.6, 800, 450};
    const std::string svg = line_chart_svg({train, eval}, options);
    EXPECT_EQ(svg_problem(svg), "");
    EXPECT_NE(svg.find("Loss &amp; &lt;co&gt;"), std::string::npos);
    EXPECT_EQ(count(svg, "<polyline"), 3u);  // train raw + train smoothed + eval (not smoothed)
    EXPECT_NE(svg.find(">train</text>"), std::string::npos);
    EXPECT_NE(svg.find(">eval</text>"), std::string::npos);
    options.log_y = true;
    EXPECT_EQ(svg_problem(line_chart_svg({train, eval}, options)), "");
}

// Many named series wrap the legend onto further rows instead of running off the right edge
// (dev.svg draws a dozen metrics): every entry's text ends inside the chart, and the rows sit
// above the plot area.
TEST(Plot, LongLegendWrapsInsideTheChart) {
    std::vector<PlotSeries> series;
    for (int i = 0; i < 9; ++i) {
        PlotSeries s{fmt::format("dev metric number {}", i), {0, 1, 2}, {1.0 + i, 2.0 + i, 1.5 + i}, false};
        series.push_back(s);
    }
    PlotOptions options{"Dev metrics", "step", "value", false, 0.6, 600, 400};
    const std::string svg = line_chart_svg(series, options);
    EXPECT_EQ(svg_problem(svg), "");
    const std::regex entry(R"re(<text x="([0-9.]+)" y="([0-9.]+)" dominant-baseline="middle" fill="#333333">(dev metric number \d)</text>)re");
    std::set<double> rows;
    int entries = 0;
    for (auto it = std::sregex_iterator(svg.begin(), svg.end(), entry); it != std::sregex_iterator(); ++it, ++entries) {
        const double x = std::stod((*it)[1]);
        const double text_end = x + static_cast<double>((*it)[3].length()) * 12.0 * 0.58;
        EXPECT_LE(text_end, 600.0) << (*it)[3];
        rows.insert(std::stod((*it)[2]));
    }
    EXPECT_EQ(entries, 9);
    EXPECT_GE(rows.size(), 3u);  // ~190 px per entry, ~540 px per row
}

TEST(Plot, NonFinitePointsAreSkippedNotZero) {
    const PlotSeries s{"s", {10, 11, 12, 13, 14}, {1.0, kNaN, 2.0, 3.0, kInf}};
    const std::string svg = line_chart_svg({s}, {});
    EXPECT_EQ(svg_problem(svg), "");
    EXPECT_EQ(count(svg, "<circle"), 1u);    // x=10 stands alone between the start and the NaN
    EXPECT_EQ(count(svg, "<polyline"), 1u);  // x=12..13
    // The y axis spans the finite values only: were NaN drawn as 0, the axis would start at 0.
    EXPECT_EQ(svg.find(">0</text>"), std::string::npos);
}

TEST(Plot, LogAxisSkipsNonPositiveValues) {
    const PlotSeries s{"s", {0, 1, 2, 3}, {0.0, -1.0, 10.0, 100.0}};
    const std::string svg = line_chart_svg({s}, PlotOptions{"", "", "", true, 0.0, 400, 300});
    EXPECT_EQ(svg_problem(svg), "");
    EXPECT_EQ(count(svg, "<polyline"), 1u);
}

TEST(Plot, DegenerateSeries) {
    for (const auto& series : std::vector<std::vector<PlotSeries>>{
             {},
             {{"empty", {}, {}}},
             {{"one", {3}, {5}}},
             {{"constant", {0, 1, 2}, {5, 5, 5}}},
             {{"vertical", {2, 2}, {0, 1}}},
             {{"all nan", {kNaN, 1}, {1, kNaN}}},
             {{"huge", {0, 1}, {1e300, -1e300}}},
             {{"tiny", {0, 1}, {1e-300, 2e-300}}},
         }) {
        for (const bool log_y : {false, true}) {
            for (const double smoothing : {0.0, 0.9}) {
                const std::string name = series.empty() ? "none" : series[0].name;
                SCOPED_TRACE(name + (log_y ? " log" : " linear"));
                const std::string svg = line_chart_svg(series, PlotOptions{"t", "x", "y", log_y, smoothing, 640, 360});
                EXPECT_EQ(svg_problem(svg), "");
            }
        }
    }
    EXPECT_NE(line_chart_svg({{"e", {}, {}}}, {}).find("no data"), std::string::npos);
}

TEST(Plot, BadArgumentsThrow) {
    EXPECT_THROW(line_chart_svg({{"s", {1, 2}, {1}}}, {}), Error);
    EXPECT_THROW(line_chart_svg({}, PlotOptions{"", "", "", false, 1.0, 800, 450}), Error);
    EXPECT_THROW(line_chart_svg({}, PlotOptions{"", "", "", false, kNaN, 800, 450}), Error);
    EXPECT_THROW(line_chart_svg({}, PlotOptions{"", "", "", false, 0.0, 10, 10}), Error);
    EXPECT_THROW(line_chart_svg({{"s", {0, 1}, {-1.7e308, 1.7e308}}}, {}), Error);  // the span overflows a double
    EXPECT_THROW(write_line_chart("/nonexistent-dir/plot.svg", {}, {}), Error);
}

}  // namespace
}  // namespace kindred::eval
