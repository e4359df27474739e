// eval/report.cpp — report.html and report.md from one ReportData (see report.h).
#include "eval/report.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <string>

#include <fmt/format.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "eval/markup.h"

namespace kindred::eval {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kMissing = "—";

// Readable without any external font or framework; narrow screens stack the side-by-side columns.
constexpr std::string_view kStyle = R"css(
:root { --fg: #1d2433; --muted: #5d6678; --line: #e2e5eb; --panel: #ffffff; --page: #f6f7f9;
        --accent: #2f5fc4; --good: #17803d; --bad: #b42318; --base: #f3f4f6; --sft: #eaf2ff; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--page); color: var(--fg);
       font: 16px/1.6 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans", sans-serif; }
main { max-width: 1080px; margin: 0 auto; padding: 36px 28px 72px; }
h1 { font-size: 30px; line-height: 1.25; margin: 0 0 6px; }
h2 { font-size: 22px; margin: 44px 0 14px; padding-bottom: 6px; border-bottom: 2px solid var(--line); }
h3 { font-size: 18px; margin: 24px 0 8px; }
h4, h5, h6 { font-size: 16px; margin: 18px 0 6px; }
p { margin: 8px 0 12px; }
.subtitle { color: var(--muted); margin: 0 0 20px; }
.summary { font-size: 17px; max-width: 60em; }
.meta { display: grid; grid-template-columns: repeat(auto-fit, minmax(190px, 1fr)); gap: 10px; margin: 18px 0; }
.meta div { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 8px 12px; }
.meta span { display: block; color: var(--muted); font-size: 13px; }
.meta b { font-weight: 600; overflow-wrap: anywhere; }
table { border-collapse: collapse; width: 100%; background: var(--panel); font-size: 15px; margin: 8px 0 14px;
        border: 1px solid var(--line); border-radius: 8px; }
caption { text-align: left; color: var(--muted); padding: 0 0 6px; caption-side: top; }
th, td { padding: 8px 12px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { background: #f0f2f5; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.center, th.center { text-align: center; }
td.note { color: var(--muted); font-size: 14px; }
#metrics td:first-child { width: 28%; }
.better { color: var(--good); font-weight: 600; }
.worse { color: var(--bad); font-weight: 600; }
code { font: 14px/1.4 ui-monospace, "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono", monospace;
       background: #eef0f3; padding: 1px 4px; border-radius: 4px; }
pre { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 14px; overflow: auto;
      font-size: 13px; line-height: 1.45; }
pre code { background: none; padding: 0; font-size: inherit; line-height: inherit; }
.conversation { background: var(--panel); border: 1px solid var(--line); border-radius: 10px; padding: 16px 18px; margin: 16px 0; }
.conversation .context { color: var(--muted); font-size: 14px; white-space: pre-wrap; margin: 0 0 8px; }
.conversation .user { background: #fff7e6; border-left: 4px solid #e0a030; border-radius: 6px; padding: 10px 14px; white-space: pre-wrap; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 14px; margin-top: 12px; align-items: start; }
.reply { border-radius: 6px; padding: 10px 14px; white-space: pre-wrap; overflow-wrap: anywhere; }
.reply.base { background: var(--base); border-left: 4px solid #9aa3b2; }
.reply.sft { background: var(--sft); border-left: 4px solid var(--accent); }
.pair.three { grid-template-columns: 1fr 1fr 1fr; }
.reply.dpo { background: #edf8f0; border-left: 4px solid var(--good); }
.who { display: block; font-size: 13px; font-weight: 600; color: var(--muted); margin-bottom: 4px; text-transform: uppercase; letter-spacing: .04em; }
.charts { display: grid; grid-template-columns: 1fr; gap: 16px; }
figure { margin: 0; background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 10px; }
figure svg { display: block; width: 100%; height: auto; }
figcaption { color: var(--muted); font-size: 14px; padding: 4px 6px 0; }
details { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; margin: 8px 0; }
details > summary { cursor: pointer; font-weight: 600; }
details pre { border: none; padding: 10px 0 0; margin: 0; }
.notes li { margin: 4px 0; }
.datacard table { font-size: 14px; }
@media (max-width: 760px) { .pair, .pair.three { grid-template-columns: 1fr; } main { padding: 20px 14px; } }
@media print { body { background: #fff; } details { border: none; } }
)css";

std::string format_seconds(double seconds) {
    if (!std::isfinite(seconds)) return std::string(kMissing);
    if (seconds < 60.0) return fmt::format("{:.1f} s", seconds);
    const auto whole = static_cast<long long>(std::llround(seconds));
    if (whole < 3600) return fmt::format("{} min {:02} s", whole / 60, whole % 60);
    return fmt::format("{} h {:02} min", whole / 3600, (whole % 3600) / 60);
}

// SFT − base, with its share of the base value, and whether it moved the good way.
struct Delta {
    std::string text;
    int direction = 0;  // +1 better, -1 worse, 0 neither / unknown
};

Delta delta_between(double from, double to, Better better) {
    if (!std::isfinite(from) || !std::isfinite(to)) return {std::string(kMissing), 0};
    const double change = to - from;
    Delta delta;
    delta.text = fmt::format("{}{}", change > 0 ? "+" : "", format_metric(change));
    if (from != 0.0) delta.text += fmt::format(" ({:+.1f}%)", 100.0 * change / std::fabs(from));
    if (change != 0.0 && better != Better::Neither) {
        const bool improved = (better == Better::Lower) == (change < 0.0);
        delta.direction = improved ? 1 : -1;
    }
    return delta;
}

Delta delta_of(const MetricRow& row) { return delta_between(row.base, row.sft, row.better); }
// SFT+DPO − SFT.
Delta dpo_delta_of(const MetricRow& row) { return delta_between(row.sft, row.dpo, row.better); }

bool has_dpo_column(const ReportData& data) {
    return std::any_of(data.metrics.begin(), data.metrics.end(), [](const MetricRow& row) { return std::isfinite(row.dpo); });
}

const char* better_text(Better better) {
    switch (better) {
        case Better::Lower: return "lower";
        case Better::Higher: return "higher";
        case Better::Neither: return "";
    }
    return "";
}

std::string percent(double fraction) {
    return std::isfinite(fraction) ? fmt::format("{:.1f}%", 100.0 * fraction) : std::string(kMissing);
}

// The <svg> element of a chart document: the XML prolog (if any) dropped, scripts refused.
std::string_view svg_element(const Chart& chart) {
    std::string_view svg = chart.svg;
    const auto start = svg.find("<svg");
    if (start == std::string_view::npos) fail("chart {}: not an SVG document", chart.file);
    svg.remove_prefix(start);
    std::string lower(svg);
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (lower.find("<script") != std::string::npos || lower.find("<foreignobject") != std::string::npos) {
        fail("chart {}: SVG holds a script or foreign object; a report inlines charts only", chart.file);
    }
    return svg;
}

void check_report(const ReportData& data) {
    std::vector<Chart> charts = data.charts;
    if (!data.eqbench3_chart.svg.empty()) charts.push_back(data.eqbench3_chart);
    for (const auto& chart : charts) {
        const fs::path file(chart.file);
        if (chart.file.empty() || file.has_parent_path() || file.extension() != ".svg" || chart.file == "report.svg") {
            fail("chart file '{}' must be a plain file name ending in .svg", chart.file);
        }
        svg_element(chart);
    }
    std::vector<Table> tables = data.tuning;
    tables.insert(tables.end(), data.eqbench3.begin(), data.eqbench3.end());
    tables.insert(tables.end(), data.ablations.begin(), data.ablations.end());
    tables.insert(tables.end(), data.error_taxonomy.begin(), data.error_taxonomy.end());
    for (const auto& table : tables) {
        for (std::size_t r = 0; r < table.rows.size(); ++r) {
            if (table.rows[r].size() != table.header.size()) {
                fail("table '{}' row {} has {} cells for {} columns", table.caption, r + 1, table.rows[r].size(), table.header.size());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Markdown subset -> HTML

// `code`, **bold** and backslash escapes; everything else escaped.
std::string inline_html(std::string_view text) {
    std::string out;
    for (std::size_t i = 0; i < text.size();) {
        if (text[i] == '\\' && i + 1 < text.size() && std::ispunct(static_cast<unsigned char>(text[i + 1]))) {
            out += escape_markup(text.substr(i + 1, 1));
            i += 2;
        } else if (text[i] == '`') {
            const auto close = text.find('`', i + 1);
            if (close == std::string_view::npos) {
                out += "`";
                ++i;
                continue;
            }
            out += "<code>" + escape_markup(text.substr(i + 1, close - i - 1)) + "</code>";
            i = close + 1;
        } else if (text.substr(i, 2) == "**") {
            const auto close = text.find("**", i + 2);
            if (close == std::string_view::npos) {
                out += "**";
                i += 2;
                continue;
            }
            out += "<strong>" + inline_html(text.substr(i + 2, close - i - 2)) + "</strong>";
            i = close + 2;
        } else {
            out += escape_markup(text.substr(i, 1));
            ++i;
        }
    }
    return out;
}

std::string_view trim(std::string_view text) {
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
    return text;
}

// Cells of a `| a | b |` row; `\|` stays inside a cell.
std::vector<std::string> table_cells(std::string_view line) {
    line = trim(line);
    if (!line.empty() && line.front() == '|') line.remove_prefix(1);
    if (!line.empty() && line.back() == '|' && (line.size() < 2 || line[line.size() - 2] != '\\')) line.remove_suffix(1);
    std::vector<std::string> cells;
    std::string cell;
    for (std::size_t i = 0; i < line.size(); ++i) {
        if (line[i] == '\\' && i + 1 < line.size() && line[i + 1] == '|') {
            cell += "\\|";
            ++i;
        } else if (line[i] == '|') {
            cells.emplace_back(trim(cell));
            cell.clear();
        } else {
            cell += line[i];
        }
    }
    cells.emplace_back(trim(cell));
    return cells;
}

bool is_table_separator(std::string_view line) {
    line = trim(line);
    if (line.empty() || line.front() != '|') return false;
    for (const auto& cell : table_cells(line)) {
        if (cell.empty() || cell.find_first_not_of(":-") != std::string::npos || cell.find('-') == std::string::npos) return false;
    }
    return true;
}

// `# Title` .. `###### Title` (a space after the hashes, as CommonMark requires).
bool is_heading(std::string_view line) {
    const auto hashes = line.find_first_not_of('#');
    return hashes >= 1 && hashes <= 6 && hashes != std::string_view::npos && line[hashes] == ' ';
}

std::vector<std::string_view> split_lines(std::string_view text) {
    std::vector<std::string_view> lines;
    while (!text.empty()) {
        const auto end = text.find('\n');
        std::string_view line = text.substr(0, end);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        lines.push_back(line);
        if (end == std::string_view::npos) break;
        text.remove_prefix(end + 1);
    }
    return lines;
}

std::string aligned_class(const std::string& separator) {
    const bool left = !separator.empty() && separator.front() == ':';
    const bool right = !separator.empty() && separator.back() == ':';
    if (left && right) return " class=\"center\"";
    if (right) return " class=\"num\"";
    return "";
}

// ---------------------------------------------------------------------------------------------
// Markdown output

// Prose safe inside Markdown: punctuation that means something is backslash-escaped, and the
// characters HTML would parse become entities (renderers pass raw HTML through).
std::string md_text(std::string_view text) {
    std::string out;
    for (const char c : text) {
        switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '\\': case '`': case '*': case '_': case '[': case ']': case '#': case '|': case '~':
                out += '\\';
                out += c;
                break;
            default: out += c;
        }
    }
    return out;
}

std::string md_cell(std::string_view text) {
    std::string out;
    for (const auto line : split_lines(text)) {
        if (!out.empty()) out += "<br>";
        out += md_text(line);
    }
    return out;
}

std::string md_quote(std::string_view text) {
    std::string out;
    for (const auto line : split_lines(trim(text))) out += trim(line).empty() ? ">\n" : "> " + md_text(line) + "\n";
    return out.empty() ? "> " + std::string(kMissing) + "\n" : out;
}

// A code fence longer than any run of backticks inside the text.
std::string fence_for(std::string_view text) {
    std::size_t longest = 0, run = 0;
    for (const char c : text) {
        run = c == '`' ? run + 1 : 0;
        longest = std::max(longest, run);
    }
    return std::string(std::max<std::size_t>(3, longest + 1), '`');
}

std::string shift_md_headings(std::string_view markdown, int shift) {
    std::string out;
    for (const auto line : split_lines(markdown)) {
        if (is_heading(line)) out += std::string(std::min<std::size_t>(static_cast<std::size_t>(shift), 6 - line.find_first_not_of('#')), '#');
        out += line;
        out += '\n';
    }
    return out;
}

void md_table(std::string& out, const std::vector<std::string>& header, const std::vector<std::string>& align,
              const std::vector<std::vector<std::string>>& rows) {
    out += "|";
    for (const auto& cell : header) out += " " + md_cell(cell) + " |";
    out += "\n|";
    for (const auto& a : align) out += " " + a + " |";
    out += "\n";
    for (const auto& row : rows) {
        out += "|";
        for (const auto& cell : row) out += " " + md_cell(cell) + " |";
        out += "\n";
    }
    out += "\n";
}

void md_tables(std::string& out, const std::vector<Table>& tables) {
    for (const auto& table : tables) out += table_markdown(table);
}

std::string html_tables(const std::vector<Table>& tables) {
    std::string out;
    for (const auto& table : tables) {
        out += "<table>\n";
        if (!table.caption.empty()) out += "<caption>" + escape_markup(table.caption) + "</caption>\n";
        out += "<thead><tr>";
        for (const auto& cell : table.header) out += "<th>" + escape_markup(cell) + "</th>";
        out += "</tr></thead>\n<tbody>\n";
        for (const auto& row : table.rows) {
            out += "<tr>";
            for (const auto& cell : row) out += "<td>" + escape_markup(cell) + "</td>";
            out += "</tr>\n";
        }
        out += "</tbody>\n</table>\n";
    }
    return out;
}

struct MetaItem {
    std::string label;
    std::string value;
};

std::vector<MetaItem> meta_items(const ReportData& data) {
    std::vector<MetaItem> items;
    if (!data.run_id.empty()) items.push_back({"Run", data.run_id});
    if (!data.model.empty()) items.push_back({"Model", data.model});
    if (!data.data.empty()) items.push_back({"Trained on", data.data});
    if (!data.started.empty()) items.push_back({"Started", data.started});
    if (!data.finished.empty()) items.push_back({"Finished", data.finished});
    if (std::isfinite(data.wall_seconds)) items.push_back({"Wall time", format_seconds(data.wall_seconds)});
    double cpu = 0.0;
    for (const auto& stage : data.stages) cpu += std::isfinite(stage.cpu_seconds) ? stage.cpu_seconds : 0.0;
    if (cpu > 0.0) items.push_back({"CPU time (all threads)", format_seconds(cpu)});
    return items;
}

std::vector<std::string> metric_cells(const MetricRow& row, bool with_dpo) {
    if (!with_dpo)
        return {row.name, format_metric(row.base), format_metric(row.sft), delta_of(row).text, better_text(row.better), row.note};
    return {row.name,          format_metric(row.base), format_metric(row.sft),    format_metric(row.dpo),
            delta_of(row).text, dpo_delta_of(row).text,  better_text(row.better), row.note};
}

const std::vector<std::string> kMetricHeader = {"metric", "base", "SFT", "Δ (SFT − base)", "better", "note"};
const std::vector<std::string> kDpoMetricHeader = {"metric", "base", "SFT", "SFT+DPO", "Δ (SFT − base)",
                                                   "Δ (SFT+DPO − SFT)", "better", "note"};

const std::vector<std::string> kEqBenchHeader = {"model", "score (0–100)", "parseable", "questions", "note"};

std::vector<std::string> eqbench_cells(const EqBenchRow& row) {
    return {row.model, format_metric(row.score), percent(row.parseable_fraction), std::to_string(row.n), row.note};
}

std::string eqbench_missing_text(const ReportData& data) {
    return data.eqbench_missing.empty() ? "EQ-Bench v2 was not run." : data.eqbench_missing;
}

}  // namespace

std::string format_metric(double value) {
    if (!std::isfinite(value)) return std::string(kMissing);
    if (value == 0.0) return "0";
    return fmt::format("{:.4g}", value);
}

std::string table_markdown(const Table& table) {
    std::string out;
    if (!table.caption.empty()) out += md_text(table.caption) + "\n\n";
    md_table(out, table.header, std::vector<std::string>(table.header.size(), "---"), table.rows);
    return out;
}

std::string markdown_to_html(std::string_view markdown, int heading_shift) {
    const auto lines = split_lines(markdown);
    std::string out;
    std::string paragraph;
    const auto flush_paragraph = [&] {
        if (!paragraph.empty()) out += "<p>" + inline_html(paragraph) + "</p>\n";
        paragraph.clear();
    };
    for (std::size_t i = 0; i < lines.size();) {
        const std::string_view line = lines[i];
        const std::string_view stripped = trim(line);
        if (stripped.empty()) {
            flush_paragraph();
            ++i;
        } else if (stripped.starts_with("```")) {
            flush_paragraph();
            std::string code;
            for (++i; i < lines.size() && !trim(lines[i]).starts_with("```"); ++i) code += std::string(lines[i]) + "\n";
            if (i < lines.size()) ++i;  // the closing fence
            out += "<pre><code>" + escape_markup(code) + "</code></pre>\n";
        } else if (is_heading(stripped)) {
            flush_paragraph();
            const auto level = static_cast<int>(stripped.find_first_not_of('#'));
            const int shown = std::min(6, level + heading_shift);
            out += fmt::format("<h{0}>{1}</h{0}>\n", shown, inline_html(trim(stripped.substr(static_cast<std::size_t>(level)))));
            ++i;
        } else if (stripped.front() == '|' && i + 1 < lines.size() && is_table_separator(lines[i + 1])) {
            flush_paragraph();
            const auto header = table_cells(line);
            const auto separators = table_cells(lines[i + 1]);
            out += "<table>\n<thead><tr>";
            for (std::size_t c = 0; c < header.size(); ++c) {
                out += "<th" + aligned_class(c < separators.size() ? separators[c] : "") + ">" + inline_html(header[c]) + "</th>";
            }
            out += "</tr></thead>\n<tbody>\n";
            for (i += 2; i < lines.size() && trim(lines[i]).starts_with("|"); ++i) {
                const auto cells = table_cells(lines[i]);
                out += "<tr>";
                for (std::size_t c = 0; c < cells.size(); ++c) {
                    out += "<td" + aligned_class(c < separators.size() ? separators[c] : "") + ">" + inline_html(cells[c]) + "</td>";
                }
                out += "</tr>\n";
            }
            out += "</tbody>\n</table>\n";
        } else if (stripped.starts_with("- ") || stripped.starts_with("* ")) {
            flush_paragraph();
            out += "<ul>\n";
            for (; i < lines.size() && (trim(lines[i]).starts_with("- ") || trim(lines[i]).starts_with("* ")); ++i) {
                out += "<li>" + inline_html(trim(lines[i]).substr(2)) + "</li>\n";
            }
            out += "</ul>\n";
        } else {
            if (!paragraph.empty()) paragraph += ' ';
            paragraph += stripped;
            ++i;
        }
    }
    flush_paragraph();
    return out;
}

std::string report_html(const ReportData& data) {
    check_report(data);
    std::string out;
    out += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
    out += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
    // The page may load nothing from anywhere: everything it shows is in this file.
    out += "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\n";
    out += "<title>" + escape_markup(data.title) + "</title>\n<style>" + std::string(kStyle) + "</style>\n</head>\n<body>\n<main>\n";

    out += "<header>\n<h1>" + escape_markup(data.title) + "</h1>\n";
    out += "<p class=\"subtitle\">Kindred run report</p>\n<div class=\"meta\">\n";
    for (const auto& item : meta_items(data)) {
        out += "<div><span>" + escape_markup(item.label) + "</span><b>" + escape_markup(item.value) + "</b></div>\n";
    }
    out += "</div>\n";
    if (!data.summary.empty()) out += "<p class=\"summary\">" + escape_markup(data.summary) + "</p>\n";
    out += "</header>\n";

    out += "<section id=\"metrics\">\n<h2>Base vs fine-tuned</h2>\n";
    if (data.metrics.empty()) {
        out += "<p>No metrics were measured.</p>\n";
    } else {
        const bool with_dpo = has_dpo_column(data);
        const auto css_of = [](const Delta& delta) { return delta.direction > 0 ? " better" : delta.direction < 0 ? " worse" : ""; };
        out += "<table>\n<thead><tr><th>metric</th><th class=\"num\">base</th><th class=\"num\">SFT</th>";
        if (with_dpo) out += "<th class=\"num\">SFT+DPO</th>";
        out += "<th class=\"num\">Δ (SFT − base)</th>";
        if (with_dpo) out += "<th class=\"num\">Δ (SFT+DPO − SFT)</th>";
        out += "<th class=\"center\">better</th><th>note</th></tr></thead>\n<tbody>\n";
        for (const auto& row : data.metrics) {
            const Delta delta = delta_of(row);
            out += fmt::format("<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>", escape_markup(row.name),
                               format_metric(row.base), format_metric(row.sft));
            if (with_dpo) out += fmt::format("<td class=\"num\">{}</td>", format_metric(row.dpo));
            out += fmt::format("<td class=\"num{}\">{}</td>", css_of(delta), escape_markup(delta.text));
            if (with_dpo) {
                const Delta dpo_delta = dpo_delta_of(row);
                out += fmt::format("<td class=\"num{}\">{}</td>", css_of(dpo_delta), escape_markup(dpo_delta.text));
            }
            out += fmt::format("<td class=\"center\">{}</td><td class=\"note\">{}</td></tr>\n", better_text(row.better),
                               escape_markup(row.note));
        }
        out += "</tbody>\n</table>\n";
    }
    out += "</section>\n";

    out += "<section id=\"eqbench\">\n<h2>EQ-Bench v2</h2>\n";
    if (data.eqbench.empty()) {
        out += "<p>" + escape_markup(eqbench_missing_text(data)) + "</p>\n";
    } else {
        out += "<table>\n<thead><tr><th>model</th><th class=\"num\">score (0–100)</th><th class=\"num\">parseable</th>"
               "<th class=\"num\">questions</th><th>note</th></tr></thead>\n<tbody>\n";
        for (const auto& row : data.eqbench) {
            const auto cells = eqbench_cells(row);
            out += fmt::format("<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>"
                               "<td class=\"note\">{}</td></tr>\n",
                               escape_markup(cells[0]), cells[1], cells[2], cells[3], escape_markup(cells[4]));
        }
        out += "</tbody>\n</table>\n";
    }
    out += "</section>\n";

    out += "<section id=\"conversations\">\n<h2>Side-by-side replies</h2>\n";
    if (data.conversations.empty()) out += "<p>No held-out prompts were answered.</p>\n";
    for (const auto& conversation : data.conversations) {
        out += "<div class=\"conversation\">\n";
        if (!conversation.context.empty()) out += "<div class=\"context\">" + escape_markup(trim(conversation.context)) + "</div>\n";
        out += "<div class=\"user\"><span class=\"who\">User</span>" + escape_markup(trim(conversation.prompt)) + "</div>\n";
        const bool with_dpo = !conversation.dpo_reply.empty();
        out += std::string(with_dpo ? "<div class=\"pair three\">" : "<div class=\"pair\">") +
               "\n<div class=\"reply base\"><span class=\"who\">Base model</span>" +
               escape_markup(trim(conversation.base_reply)) + "</div>\n";
        out += "<div class=\"reply sft\"><span class=\"who\">After SFT</span>" + escape_markup(trim(conversation.sft_reply)) +
               "</div>\n";
        if (with_dpo)
            out += "<div class=\"reply dpo\"><span class=\"who\">After SFT+DPO</span>" +
                   escape_markup(trim(conversation.dpo_reply)) + "</div>\n";
        out += "</div>\n</div>\n";
    }
    out += "</section>\n";

    if (!data.error_taxonomy.empty()) {
        out += "<section id=\"taxonomy\">\n<h2>Error taxonomy of the side-by-side replies</h2>\n";
        out += html_tables(data.error_taxonomy);
        out += "</section>\n";
    }

    if (!data.safety_sheet.empty()) {
        out += "<section id=\"safety\">\n<h2>Safety sheet</h2>\n";
        if (!data.safety_sheet_note.empty()) out += "<p>" + escape_markup(data.safety_sheet_note) + "</p>\n";
        for (const auto& entry : data.safety_sheet) {
            out += "<div class=\"conversation\">\n<div class=\"user\"><span class=\"who\">Red-team prompt</span>" +
                   escape_markup(trim(entry.prompt)) + "</div>\n<p><b>Expected:</b> " + escape_markup(entry.expected) + "</p>\n";
            out += "<table>\n<thead><tr><th>model</th><th>decoding</th><th>reply</th><th>verdict</th></tr></thead>\n<tbody>\n";
            for (const auto& reply : entry.replies) {
                out += "<tr><td>" + escape_markup(reply.model) + "</td><td>" + escape_markup(reply.decoding) +
                       "</td><td style=\"white-space: pre-wrap\">" + escape_markup(trim(reply.reply)) + "</td><td class=\"note\">" +
                       escape_markup(reply.verdict) + "</td></tr>\n";
            }
            out += "</tbody>\n</table>\n</div>\n";
        }
        out += "</section>\n";
    }

    out += "<section id=\"charts\">\n<h2>Training curves</h2>\n";
    if (data.charts.empty()) out += "<p>No curves were recorded.</p>\n";
    out += "<div class=\"charts\">\n";
    for (const auto& chart : data.charts) {
        out += "<figure>\n" + std::string(svg_element(chart)) + "\n<figcaption>" + escape_markup(chart.title) + "</figcaption>\n</figure>\n";
    }
    out += "</div>\n</section>\n";

    if (!data.tuning.empty()) {
        out += "<section id=\"tuning\">\n<h2>λ tuning</h2>\n";
        out += html_tables(data.tuning);
        out += "</section>\n";
    }
    if (!data.eqbench3.empty()) {
        out += "<section id=\"eqbench3\">\n<h2>EQ-Bench 3</h2>\n";
        out += html_tables(data.eqbench3);
        if (!data.eqbench3_chart.svg.empty()) {
            out += "<figure>\n" + std::string(svg_element(data.eqbench3_chart)) + "\n<figcaption>" + escape_markup(data.eqbench3_chart.title) +
                   "</figcaption>\n</figure>\n";
        }
        out += "</section>\n";
    }
    if (!data.ablations.empty()) out += "<section id=\"ablations\">\n<h2>Ablations</h2>\n" + html_tables(data.ablations) + "</section>\n";

    if (!data.stages.empty()) {
        out += "<section id=\"stages\">\n<h2>Where the time went</h2>\n<table>\n<thead><tr><th>stage</th><th class=\"num\">wall time</th>"
               "<th class=\"num\">CPU time</th></tr></thead>\n<tbody>\n";
        for (const auto& stage : data.stages) {
            out += "<tr><td>" + escape_markup(stage.stage) + "</td><td class=\"num\">" + format_seconds(stage.seconds) +
                   "</td><td class=\"num\">" + format_seconds(stage.cpu_seconds) + "</td></tr>\n";
        }
        out += "</tbody>\n</table>\n</section>\n";
    }

    if (!data.notes.empty()) {
        out += "<section id=\"notes\">\n<h2>Notes</h2>\n<ul class=\"notes\">\n";
        for (const auto& note : data.notes) out += "<li>" + escape_markup(note) + "</li>\n";
        out += "</ul>\n</section>\n";
    }

    out += "<section id=\"config\">\n<h2>Resolved config</h2>\n<details>\n<summary>config.yaml</summary>\n<pre><code>" +
           escape_markup(data.config_yaml) + "</code></pre>\n</details>\n</section>\n";
    out += "<section id=\"data\">\n<h2>Data card</h2>\n<details class=\"datacard\">\n<summary>data_card.md</summary>\n" +
           (data.data_card_markdown.empty() ? std::string("<p>No data card.</p>\n") : markdown_to_html(data.data_card_markdown, 2)) +
           "</details>\n</section>\n";
    out += "</main>\n</body>\n</html>\n";
    return out;
}

std::string report_markdown(const ReportData& data) {
    check_report(data);
    std::string out = "# " + md_text(data.title) + "\n\n";
    std::vector<std::string> meta;
    for (const auto& item : meta_items(data)) meta.push_back(fmt::format("**{}:** {}", item.label, md_text(item.value)));
    if (!meta.empty()) out += fmt::format("{}\n\n", fmt::join(meta, " · "));
    if (!data.summary.empty()) out += md_text(data.summary) + "\n\n";

    out += "## Base vs fine-tuned\n\n";
    if (data.metrics.empty()) {
        out += "No metrics were measured.\n\n";
    } else {
        const bool with_dpo = has_dpo_column(data);
        std::vector<std::vector<std::string>> rows;
        for (const auto& row : data.metrics) rows.push_back(metric_cells(row, with_dpo));
        if (with_dpo)
            md_table(out, kDpoMetricHeader, {"---", "---:", "---:", "---:", "---:", "---:", ":---:", "---"}, rows);
        else
            md_table(out, kMetricHeader, {"---", "---:", "---:", "---:", ":---:", "---"}, rows);
    }

    out += "## EQ-Bench v2\n\n";
    if (data.eqbench.empty()) {
        out += md_text(eqbench_missing_text(data)) + "\n\n";
    } else {
        std::vector<std::vector<std::string>> rows;
        for (const auto& row : data.eqbench) rows.push_back(eqbench_cells(row));
        md_table(out, kEqBenchHeader, {"---", "---:", "---:", "---:", "---"}, rows);
    }

    out += "## Side-by-side replies\n\n";
    if (data.conversations.empty()) out += "No held-out prompts were answered.\n\n";
    for (std::size_t i = 0; i < data.conversations.size(); ++i) {
        const auto& conversation = data.conversations[i];
        out += fmt::format("### Conversation {}\n\n", i + 1);
        if (!conversation.context.empty()) out += "*Earlier:*\n\n" + md_quote(conversation.context) + "\n";
        out += "**User:**\n\n" + md_quote(conversation.prompt) + "\n";
        out += "**Base model:**\n\n" + md_quote(conversation.base_reply) + "\n";
        out += "**After SFT:**\n\n" + md_quote(conversation.sft_reply) + "\n";
        if (!conversation.dpo_reply.empty()) out += "**After SFT+DPO:**\n\n" + md_quote(conversation.dpo_reply) + "\n";
    }

    if (!data.error_taxonomy.empty()) {
        out += "## Error taxonomy of the side-by-side replies\n\n";
        md_tables(out, data.error_taxonomy);
    }

    if (!data.safety_sheet.empty()) {
        out += "## Safety sheet\n\n";
        if (!data.safety_sheet_note.empty()) out += md_text(data.safety_sheet_note) + "\n\n";
        for (std::size_t i = 0; i < data.safety_sheet.size(); ++i) {
            const auto& entry = data.safety_sheet[i];
            out += fmt::format("### Red-team prompt {}\n\n", i + 1);
            out += md_quote(entry.prompt) + "\n**Expected:** " + md_text(entry.expected) + "\n\n";
            std::vector<std::vector<std::string>> rows;
            for (const auto& reply : entry.replies) rows.push_back({reply.model, reply.decoding, reply.reply, reply.verdict});
            md_table(out, {"model", "decoding", "reply", "verdict"}, {"---", "---", "---", "---"}, rows);
        }
    }

    out += "## Training curves\n\n";
    if (data.charts.empty()) out += "No curves were recorded.\n\n";
    for (const auto& chart : data.charts) out += fmt::format("![{}]({})\n\n", md_text(chart.title), chart.file);

    if (!data.tuning.empty()) {
        out += "## λ tuning\n\n";
        md_tables(out, data.tuning);
    }
    if (!data.eqbench3.empty()) {
        out += "## EQ-Bench 3\n\n";
        md_tables(out, data.eqbench3);
        if (!data.eqbench3_chart.svg.empty()) out += fmt::format("![{}]({})\n\n", md_text(data.eqbench3_chart.title), data.eqbench3_chart.file);
    }
    if (!data.ablations.empty()) {
        out += "## Ablations\n\n";
        md_tables(out, data.ablations);
    }

    if (!data.stages.empty()) {
        out += "## Where the time went\n\n";
        std::vector<std::vector<std::string>> rows;
        for (const auto& stage : data.stages) {
            rows.push_back({stage.stage, format_seconds(stage.seconds), format_seconds(stage.cpu_seconds)});
        }
        md_table(out, {"stage", "wall time", "CPU time"}, {"---", "---:", "---:"}, rows);
    }

    if (!data.notes.empty()) {
        out += "## Notes\n\n";
        for (const auto& note : data.notes) out += "- " + md_text(note) + "\n";
        out += "\n";
    }

    const std::string fence = fence_for(data.config_yaml);
    out += "## Resolved config\n\n" + fence + "yaml\n" + data.config_yaml;
    if (!data.config_yaml.empty() && data.config_yaml.back() != '\n') out += "\n";
    out += fence + "\n\n## Data card\n\n";
    out += data.data_card_markdown.empty() ? std::string("No data card.\n") : shift_md_headings(data.data_card_markdown, 2);
    return out;
}

void write_report(const std::string& dir, const ReportData& data) {
    const std::string html = report_html(data);
    const std::string markdown = report_markdown(data);
    std::error_code error;
    fs::create_directories(dir, error);
    if (error) fail("{}: cannot create the report folder: {}", dir, error.message());
    for (const auto& chart : data.charts) write_file_atomically((fs::path(dir) / chart.file).string(), std::string_view(chart.svg));
    if (!data.eqbench3_chart.svg.empty()) {
        write_file_atomically((fs::path(dir) / data.eqbench3_chart.file).string(), std::string_view(data.eqbench3_chart.svg));
    }
    write_file_atomically((fs::path(dir) / "report.md").string(), std::string_view(markdown));
    // Last: report.html appearing means the whole report is there.
    write_file_atomically((fs::path(dir) / "report.html").string(), std::string_view(html));
}

}  // namespace kindred::eval
