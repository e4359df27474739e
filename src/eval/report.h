// eval/report.h — the human-readable report of a run (what `kindred demo` writes): data in, files
// out, nothing computed. One ReportData becomes
//   <dir>/report.html  self-contained: inline CSS, the charts' SVG inlined, no script, no external
//                      resource, so it opens offline and can be mailed as one file;
//   <dir>/report.md    the same sections as Markdown, charts referenced as <file>.svg written beside it.
// Every text that came from a model, a data file or a config is escaped (HTML: & < > " '; Markdown
// table cells additionally | and newlines), so a reply holding `<script>` shows as text. The data
// card arrives as Markdown (data/prepare.h writes it); the HTML renders the subset it uses
// (headings, pipe tables, lists, paragraphs, `code`, **bold**). All files are written atomically.
#pragma once

#include <cmath>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace kindred::eval {

enum class Better { Lower, Higher, Neither };

// One metric measured on the base model and on the fine-tuned one. NaN = not measured (shown "—").
struct MetricRow {
    std::string name;
    double base = NAN;
    double sft = NAN;
    Better better = Better::Lower;
    std::string note;  // e.g. "base heads are untrained"; may be empty
    double dpo = NAN;  // the SFT+DPO model's value; the column is shown when any row has one
};

struct EqBenchRow {
    std::string model;  // "base", "SFT"
    double score = NAN;  // 0..100
    double parseable_fraction = NAN;
    std::size_t n = 0;   // questions asked
    std::string note;    // e.g. "below the 83.33% parse threshold"
};

// A free-form table (the λ-tuning trials): cells are shown as given.
struct Table {
    std::string caption;
    std::vector<std::string> header;
    std::vector<std::vector<std::string>> rows;  // each as long as header
};

struct ReportConversation {
    std::string prompt;  // the user's message (the conversation's last user turn)
    std::string context; // optional: what came before, as plain text; may be empty
    std::string base_reply;
    std::string sft_reply;
    std::string dpo_reply = {};  // the SFT+DPO model's; empty: not shown
};

// One model's reply on the safety sheet, with or without the decoding controller.
struct SafetySheetReply {
    std::string model;     // "Base", "SFT", ...
    std::string decoding;  // "plain" or "controller"
    std::string reply;
    std::string verdict;   // computed by eval/safety_sheet.h
};

// One red-team prompt of the safety sheet.
struct SafetySheetEntry {
    std::string prompt;
    std::string expected;  // the expected safe behaviour
    std::vector<SafetySheetReply> replies;
};

struct Chart {
    std::string file;   // "loss.svg": the file the Markdown references; plain name, no folders
    std::string title;  // caption
    std::string svg;    // a whole <svg>…</svg> document (eval/plot.h), an XML prolog allowed
};

struct StageTime {
    std::string stage;
    double seconds = NAN;      // wall time
    double cpu_seconds = NAN;  // process CPU time, all threads (NaN: not measured)
};

struct ReportData {
    std::string title;
    std::string run_id;
    std::string started;   // e.g. "2026-11-26 02:14:05 UTC"
    std::string finished;
    double wall_seconds = NAN;
    std::string model;     // what was fine-tuned (path or name)
    std::string data;      // what it was trained on, in words; may be empty
    std::string summary;   // one paragraph of plain text under the title; may be empty
    std::vector<StageTime> stages;
    std::vector<MetricRow> metrics;
    std::vector<EqBenchRow> eqbench;       // empty: the section says EQ-Bench was not run
    std::string eqbench_missing;           // why it was not run (shown when eqbench is empty)
    std::vector<Table> tuning;             // empty: section left out
    std::vector<Table> eqbench3;           // EQ-Bench 3 comparison (eval/eqbench3_run.h); empty: section left out
    Chart eqbench3_chart;                  // its per-criterion bars (svg empty: none); file must not clash with charts
    std::vector<Table> ablations;          // `kindred ablate`'s table(s); empty: section left out
    std::vector<ReportConversation> conversations;
    std::vector<Chart> charts;
    std::string config_yaml;               // the resolved recipe
    std::string data_card_markdown;        // data_card.md as written by data prepare
    std::vector<std::string> notes;        // warnings and caveats, one paragraph each
    std::vector<SafetySheetEntry> safety_sheet;  // empty: section left out
    std::string safety_sheet_note;         // how the sheet was made (decoding, rules); may be empty
    std::vector<Table> error_taxonomy;     // the side-by-side replies' error categories; empty: left out
};

// Writes <dir>/report.html, <dir>/report.md and each chart's <dir>/<file>; creates dir. Throws
// Error for a chart file name with a folder in it or not ending in .svg, a chart that is not an
// SVG document, a table row of the wrong width, or a failed write (naming the path).
void write_report(const std::string& dir, const ReportData& data);

// The two documents write_report writes, for tests and for callers that embed them.
std::string report_html(const ReportData& data);
std::string report_markdown(const ReportData& data);

// The Markdown subset data cards use, as HTML (every text escaped); headings move down by
// heading_shift levels (at most h6) so a document's `#` can sit under a report section.
std::string markdown_to_html(std::string_view markdown, int heading_shift = 0);
// A free-form table as Markdown (caption paragraph, then a pipe table; cells escaped).
std::string table_markdown(const Table& table);
// A metric value as the tables show it: 4 significant digits, "—" for NaN.
std::string format_metric(double value);

}  // namespace kindred::eval
