// core/progress.h — the progress line of long work (training, data prep, evaluation):
//   train [######..............] 42/100 42% loss 2.314 | 1.23k tok/s | 00:31<00:43
// Caller-supplied fields (loss, lr, ...) sit between the count and the rate; rate and ETA are
// smoothed over time so one slow step does not swing the estimate. On a terminal the line is
// redrawn in place (\r) at most every redraw_interval_s; elsewhere (CI logs, redirected stderr)
// plain lines are printed every log_interval_s and at each 10% step, so logs stay readable.
// Clock, output and terminal detection are injectable for deterministic tests. Not thread-safe:
// one thread owns a Progress.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kindred {

// One `name value` field of the line; numbers are shown with 4 significant digits.
struct ProgressField {
    ProgressField(std::string field_name, std::string field_value) : name(std::move(field_name)), value(std::move(field_value)) {}
    ProgressField(std::string field_name, double number);
    std::string name;
    std::string value;
};

struct ProgressOptions {
    std::string label;                     // first word of the line ("train", "eval"); may be empty
    std::string unit = "it";               // what update()'s `amount` counts: "tok" gives "1.23k tok/s"
    int bar_width = 20;                    // 0 hides the bar
    double redraw_interval_s = 0.1;        // terminal: at most 10 redraws a second
    double log_interval_s = 30.0;          // not a terminal: at least this long between periodic lines
    double smoothing_s = 10.0;             // time constant of the rate's exponential average
    std::optional<bool> interactive;       // default: whether stderr is a terminal
    std::function<double()> clock;         // seconds, monotonic; default std::chrono::steady_clock
    std::function<void(std::string_view)> write;  // default: stderr, flushed
};

class Progress {
public:
    // `total` steps of work (0 or less: unknown, no bar, percentage or ETA).
    explicit Progress(std::int64_t total, ProgressOptions options = {});
    // Ends a bar left on screen (e.g. by an exception) with a newline, so later output starts clean.
    ~Progress();
    Progress(const Progress&) = delete;
    Progress& operator=(const Progress&) = delete;

    // Reports that `done` steps are complete. `amount` is the cumulative count of units processed
    // (tokens, bytes); negative means "same as done". Fields replace the previous ones.
    void update(std::int64_t done, std::vector<ProgressField> fields = {}, double amount = -1.0);
    // Prints a message on its own line without garbling the bar (which is redrawn after it).
    void message(std::string_view text);
    // Prints the final line (average rate, total elapsed) and ends it with a newline. Idempotent.
    void finish(std::vector<ProgressField> fields = {});

    // The current line, without \r or newline; for tests and for callers that log it elsewhere.
    std::string line() const;

private:
    void draw(bool final_line);
    // done · parts / total, rounded down (total > 0), without overflow.
    std::int64_t share_of_total(std::int64_t done, std::int64_t parts) const;

    std::int64_t total_;
    ProgressOptions options_;
    bool interactive_;
    double start_s_;
    double last_update_s_;
    double last_amount_ = 0.0;
    double last_done_ = 0.0;
    double rate_ = -1.0;       // smoothed units/s; negative until the first interval
    double step_rate_ = -1.0;  // smoothed steps/s, for the ETA
    double last_draw_s_ = -1e300;
    std::int64_t last_logged_decile_ = 0;
    std::int64_t done_ = 0;
    double amount_ = 0.0;
    std::vector<ProgressField> fields_;
    bool finished_ = false;
    bool on_screen_ = false;  // a terminal line is drawn and not yet ended
};

// "mm:ss" under an hour, else "h:mm:ss"; "--:--" for a negative or non-finite duration.
std::string format_duration(double seconds);
// Three significant digits with an SI suffix: 0.52, 12.5, 999, 1.23k, 45.6M; "?" when not finite.
std::string format_rate(double value);

}  // namespace kindred
