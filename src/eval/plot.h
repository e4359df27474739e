// eval/plot.h — SVG line charts (loss curves, learning-rate schedules, eval scores) with no
// dependency: a run directory gets self-contained .svg files any browser shows. Axis ticks use
// "nice" 1-2-5 steps; log-y, an EMA-smoothed overlay and a legend are options. Points with a NaN
// or infinite coordinate (or y <= 0 on a log axis) are skipped and break the line there rather
// than being drawn as zero; empty, single-point and constant series render without special care
// from the caller.
#pragma once

#include <string>
#include <vector>

namespace kindred::eval {

struct PlotSeries {
    std::string name;  // legend text; series with empty names are left out of the legend
    std::vector<double> x;
    std::vector<double> y;  // same length as x
    bool smooth = true;     // PlotOptions::smoothing applies; turn off for sparse series (periodic evals)
};

struct PlotOptions {
    std::string title;
    std::string x_label;
    std::string y_label;
    bool log_y = false;
    // TensorBoard-style exponential smoothing weight in [0, 1): 0 draws the raw lines only; above 0
    // the raw lines are drawn faintly and the (bias-corrected) moving average over them.
    double smoothing = 0.0;
    int width = 800;  // pixels
    int height = 450;
};

// The chart as an SVG document. Throws Error for x/y of different lengths, a smoothing weight
// outside [0, 1) or a size under 200x150.
std::string line_chart_svg(const std::vector<PlotSeries>& series, const PlotOptions& options);
// Writes line_chart_svg() to `path`; throws Error naming the path when it cannot be written.
void write_line_chart(const std::string& path, const std::vector<PlotSeries>& series, const PlotOptions& options);

// Grouped horizontal bars: one row per category (its label on the left), one bar per series in
// each row (colour + legend), the value axis from 0 (or the smallest negative value) to the
// largest value. NaN values draw no bar. Error for a series whose values do not match the
// categories, or a width under 200.
struct BarSeries {
    std::string name;
    std::vector<double> values;  // one per category
};
std::string bar_chart_svg(const std::vector<std::string>& categories, const std::vector<BarSeries>& series, const PlotOptions& options);

// Axis ticks covering [lo, hi] in 1-2-5 steps (about `target` of them), the axis extended to the
// outermost ticks. lo == hi gets a small range around the value. Exposed for tests.
struct AxisTicks {
    double lo = 0.0;
    double hi = 1.0;
    std::vector<double> values;
    std::vector<std::string> labels;
};
AxisTicks linear_ticks(double lo, double hi, int target);
// Ticks of a log10 axis over positive [lo, hi]: decades (with 2 and 5 between when the range spans
// at most two decades), or 1-2-5 linear steps when it spans less than one.
AxisTicks log_ticks(double lo, double hi, int target);

}  // namespace kindred::eval
