// core/progress.cpp — formatting is pure; all timing comes from options_.clock.
#include "core/progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>

#include <fmt/format.h>

namespace kindred {
namespace {

constexpr double kUnknown = std::numeric_limits<double>::quiet_NaN();

double steady_seconds() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Columns of the terminal on stderr; 0 when unknown.
std::size_t terminal_columns() {
    winsize size{};
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &size) != 0) return 0;
    return size.ws_col;
}

// Exponential average with time constant `tau`: an interval of length dt weighs 1 - e^(-dt/tau),
// so the estimate does not depend on how often update() is called.
double smooth(double average, double sample, double dt, double tau) {
    if (average < 0.0 || tau <= 0.0) return sample;
    return average + (1.0 - std::exp(-dt / tau)) * (sample - average);
}

}  // namespace

ProgressField::ProgressField(std::string field_name, double number)
    : name(std::move(field_name)), value(fmt::format("{:.4g}", number)) {}

std::string format_duration(double seconds) {
    // Beyond ~30 years an ETA is meaningless, and the cast below must stay in range.
    if (!std::isfinite(seconds) || seconds < 0.0 || seconds > 1e9) return "--:--";
    const auto total = static_cast<std::int64_t>(seconds);
    const std::int64_t hours = total / 3600, minutes = total % 3600 / 60, secs = total % 60;
    if (hours == 0) return fmt::format("{:02}:{:02}", minutes, secs);
    return fmt::format("{}:{:02}:{:02}", hours, minutes, secs);
}

std::string format_rate(double value) {
    if (!std::isfinite(value)) return "?";
    static constexpr const char* kSuffixes[] = {"", "k", "M", "G", "T", "P"};
    const char* sign = value < 0 ? "-" : "";
    double magnitude = std::fabs(value);
    std::size_t suffix = 0;
    // Move up a suffix when three significant digits would round to 1000 ("999.7" -> "1.00k").
    while (magnitude >= 999.5 && suffix + 1 < std::size(kSuffixes)) {
        magnitude /= 1000.0;
        ++suffix;
    }
    const int decimals = magnitude >= 99.95 ? 0 : magnitude >= 9.995 ? 1 : 2;
    return fmt::format("{}{:.{}f}{}", sign, magnitude, decimals, kSuffixes[suffix]);
}

Progress::Progress(std::int64_t total, ProgressOptions options) : total_(total), options_(std::move(options)) {
    if (!options_.clock) options_.clock = steady_seconds;
    interactive_ = options_.interactive.value_or(isatty(STDERR_FILENO) == 1);
    if (!options_.write) {
        const bool terminal = interactive_;
        options_.write = [terminal](std::string_view text) {
            std::string shown(text);
            const std::size_t columns = terminal ? terminal_columns() : 0;
            // A line wider than the terminal wraps, and \r then redraws only its last row.
            const std::size_t end = shown.find("\x1b[K");
            if (columns > 1 && end != std::string::npos && end > columns) shown.erase(columns, end - columns);
            std::fwrite(shown.data(), 1, shown.size(), stderr);
            std::fflush(stderr);
        };
    }
    start_s_ = options_.clock();
    last_update_s_ = start_s_;
}

Progress::~Progress() {
    if (!on_screen_) return;
    try {
        options_.write("\n");  // keep a following error message off the bar's line
    } catch (...) {  // a destructor must not throw; losing a newline is harmless
    }
}

void Progress::update(std::int64_t done, std::vector<ProgressField> fields, double amount) {
    if (finished_) return;
    const double now = options_.clock();
    if (amount < 0.0) amount = static_cast<double>(done);
    const double dt = now - last_update_s_;
    // Updates at the same clock reading are merged into the next interval.
    if (dt > 0.0) {
        const auto smoothing = options_.smoothing_s;
        rate_ = smooth(rate_, std::max(0.0, amount - last_amount_) / dt, dt, smoothing);
        step_rate_ = smooth(step_rate_, std::max(0.0, static_cast<double>(done) - last_done_) / dt, dt, smoothing);
        last_update_s_ = now;
        last_amount_ = amount;
        last_done_ = static_cast<double>(done);
    }
    done_ = done;
    amount_ = amount;
    fields_ = std::move(fields);

    const bool complete = total_ > 0 && done >= total_;
    if (interactive_) {
        if (complete || now - last_draw_s_ >= options_.redraw_interval_s) draw(false);
    } else {
        const std::int64_t decile = total_ > 0 ? std::clamp<std::int64_t>(share_of_total(done, 10), 0, 10) : 0;
        if (decile > last_logged_decile_ || now - last_draw_s_ >= options_.log_interval_s) draw(false);
        last_logged_decile_ = std::max(last_logged_decile_, decile);
    }
}

std::int64_t Progress::share_of_total(std::int64_t done, std::int64_t parts) const {
    // Exact in integers unless done · parts would overflow (done past ~1e17); then in long double,
    // capped at the largest count (a done that far beyond its total is a bug elsewhere).
    if (done <= std::numeric_limits<std::int64_t>::max() / parts) return done * parts / total_;
    const long double share = static_cast<long double>(done) / static_cast<long double>(total_) * parts;
    return static_cast<std::int64_t>(std::min(share, static_cast<long double>(std::numeric_limits<std::int64_t>::max())));
}

void Progress::message(std::string_view text) {
    if (interactive_ && on_screen_) {
        options_.write(fmt::format("\r\x1b[K{}\n", text));
        on_screen_ = false;
        if (!finished_) draw(false);
    } else {
        options_.write(fmt::format("{}\n", text));
    }
}

void Progress::finish(std::vector<ProgressField> fields) {
    if (finished_) return;
    if (!fields.empty()) fields_ = std::move(fields);
    finished_ = true;
    draw(true);
}

std::string Progress::line() const {
    const double now = options_.clock();
    const double elapsed = now - start_s_;
    std::string text = options_.label;
    const auto append = [&](std::string_view part) {
        if (!text.empty()) text += ' ';
        text += part;
    };
    if (total_ > 0) {
        if (options_.bar_width > 0) {
            const auto width = static_cast<std::int64_t>(options_.bar_width);
            const std::int64_t filled = std::clamp<std::int64_t>(share_of_total(done_, width), 0, width);
            append(fmt::format("[{}{}]", std::string(static_cast<std::size_t>(filled), '#'),
                               std::string(static_cast<std::size_t>(width - filled), '.')));
        }
        append(fmt::format("{}/{} {}%", done_, total_, share_of_total(done_, 100)));
    } else {
        append(fmt::format("{}", done_));
    }
    for (const auto& field : fields_) append(fmt::format("{} {}", field.name, field.value));

    // The final line shows the whole run's average rate and its total time.
    const double rate = finished_ ? (elapsed > 0.0 ? amount_ / elapsed : kUnknown) : (rate_ >= 0.0 ? rate_ : kUnknown);
    append(fmt::format("| {} {}/s |", format_rate(rate), options_.unit));
    if (finished_ || total_ <= 0) {
        append(format_duration(elapsed));
    } else {
        const double eta = step_rate_ > 0.0 ? static_cast<double>(std::max<std::int64_t>(0, total_ - done_)) / step_rate_ : kUnknown;
        append(fmt::format("{}<{}", format_duration(elapsed), format_duration(eta)));
    }
    return text;
}

void Progress::draw(bool final_line) {
    last_draw_s_ = options_.clock();
    if (interactive_) {
        options_.write(fmt::format("\r{}\x1b[K{}", line(), final_line ? "\n" : ""));
        on_screen_ = !final_line;
    } else {
        options_.write(fmt::format("{}\n", line()));
    }
}

}  // namespace kindred
