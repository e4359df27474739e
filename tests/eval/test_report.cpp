// The run report: every section present in both documents, model text escaped (a reply holding
// <script> shows as text), no external resource in the HTML, Markdown tables well shaped, the data
// card's Markdown subset rendered, charts written beside report.md, bad input refused.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "eval/markup.h"
#include "eval/plot.h"
#include "eval/report.h"
#include "scratch_dir.h"

namespace kindred::eval {
namespace {

std::string read_text(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream buffer;
    buffer << in.rdbuf();
    return buffer.str();
}

std::size_t count(const std::string& text, const std::string& needle) {
    std::size_t n = 0;
    for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
    return n;
}

ReportData sample_report() {
    ReportData data;
    data.title = "Kindred demo";
    data.run_id = "demo-20261126-021400";
    data.started = "2026-11-26 02:14:00 UTC";
    data.finished = "2026-11-26 02:16:31 UTC";
    data.wall_seconds = 151.0;
    data.model = "SmolLM2-135M-Instruct.Q4_1.gguf";
    data.data = "the bundled sample corpus <samples>";
    data.summary = "Base vs fine-tuned on the bundled samples.";
    data.stages = {{"prepare data", 0.4, 0.3}, {"SFT", 120.0, 230.4}};
    data.metrics = {
        {"dev NLL (nats/token)", 2.5, 2.0, Better::Lower, ""},
        {"emotion macro-F1", NAN, 0.25, Better::Higher, "base heads are untrained"},
        {"strategy accuracy", 0.5, 0.4, Better::Higher, ""},
    };
    data.eqbench = {{"base", 31.25, 0.9, 10, ""}, {"SFT", 35.5, 1.0, 10, ""}};
    data.tuning = {{"trials", {"trial", "objective.emotion", "J"}, {{"1", "0.5", "3.2"}, {"2", "1.0", "3.1"}}}};
    data.conversations = {
        {"I failed my exam & feel awful", "", "That's too bad.", "Oh no <script>alert(1)</script> that sounds so hard."},
        {"My dog is sick.", "Earlier: we talked about pets", "Take it to a vet.", "I'm so sorry | that's scary."},
    };
    data.charts = {{"loss.svg", "Training loss", line_chart_svg({{"loss", {1, 2, 3}, {3, 2, 1}, false}}, {"loss", "step", "nats", false, 0.0, 800, 450})}};
    data.config_yaml = "name: demo\nmodel:\n  path: default\n";
    data.data_card_markdown =
        "# Data card\n\nWritten by `kindred data prepare`. **Bold** text.\n\n## Shards\n\n| shard | examples |\n| --- | ---: |\n"
        "| train.jsonl | 120 |\n| dev.jsonl | 30 |\n\n- a.csv:3: bad <row>\n";
    data.notes = {"Quick mode: numbers are a smoke test, not a result."};
    return data;
}

TEST(Report, HtmlHasEverySectionAndTheNumbers) {
    const std::string html = report_html(sample_report());
    for (const char* id : {"metrics", "eqbench", "conversations", "charts", "tuning", "stages", "notes", "config", "data"}) {
        EXPECT_NE(html.find(std::string("<section id=\"") + id + "\">"), std::string::npos) << id;
    }
    EXPECT_NE(html.find("dev NLL (nats/token)"), std::string::npos);
    EXPECT_NE(html.find(">2.5<"), std::string::npos);
    EXPECT_NE(html.find(">2<"), std::string::npos);
    // −0.5 on a lower-is-better metric is an improvement, shown as such, with its share of the base.
    EXPECT_NE(html.find("num better\">-0.5 (-20.0%)"), std::string::npos);
    // 0.5 -> 0.4 on a higher-is-better metric got worse.
    EXPECT_NE(html.find("num worse\">-0.1 (-20.0%)"), std::string::npos);
    EXPECT_NE(html.find(">—<"), std::string::npos);  // the unmeasured base emotion F1
    EXPECT_NE(html.find("31.25"), std::string::npos);
    EXPECT_NE(html.find("90.0%"), std::string::npos);
    EXPECT_NE(html.find("2 min 31 s"), std::string::npos);
    EXPECT_NE(html.find("3 min 50 s"), std::string::npos);  // a stage's CPU time
    EXPECT_EQ(count(html, "<svg"), 1u);
    EXPECT_EQ(html.find("<?xml"), std::string::npos);
    EXPECT_NE(html.find("class=\"pair\""), std::string::npos);
    EXPECT_NE(html.find("name: demo"), std::string::npos);
    // What the model was trained on is part of the run's description, escaped like every text.
    EXPECT_NE(html.find("Trained on"), std::string::npos);
    EXPECT_NE(html.find("the bundled sample corpus &lt;samples&gt;"), std::string::npos);
    EXPECT_NE(report_markdown(sample_report()).find("**Trained on:** the bundled sample corpus"), std::string::npos);
}

TEST(Report, ModelTextIsEscapedInBothDocuments) {
    const auto data = sample_report();
    const std::string html = report_html(data);
    EXPECT_EQ(html.find("<script"), std::string::npos);
    EXPECT_NE(html.find("Oh no &lt;script&gt;alert(1)&lt;/script&gt; that sounds so hard."), std::string::npos);
    EXPECT_NE(html.find("I failed my exam &amp; feel awful"), std::string::npos);
    const std::string markdown = report_markdown(data);
    EXPECT_EQ(markdown.find("<script"), std::string::npos);
    EXPECT_NE(markdown.find("&lt;script&gt;"), std::string::npos);
    EXPECT_NE(markdown.find("I'm so sorry \\| that's scary."), std::string::npos);
    // The data card's own text is escaped too when rendered.
    EXPECT_NE(html.find("bad &lt;row&gt;"), std::string::npos);
}

TEST(Report, HtmlLoadsNothingFromOutside) {
    const std::string html = report_html(sample_report());
    for (const char* external : {"<script", "<link", "<img", "<iframe", "src=", "@import", "url("}) {
        EXPECT_EQ(html.find(external), std::string::npos) << external;
    }
    // The SVG namespace URI is an identifier, not a fetch; nothing else names a URL.
    EXPECT_EQ(count(html, "http://") + count(html, "https://"), count(html, "http://www.w3.org/2000/svg"));
    EXPECT_NE(html.find("default-src 'none'"), std::string::npos);
}

TEST(Report, MarkdownHasEverySectionAndWellShapedTables) {
    const std::string markdown = report_markdown(sample_report());
    for (const char* heading : {"# Kindred demo\n", "## Base vs fine-tuned\n", "## EQ-Bench v2\n", "## Side-by-side replies\n",
                                "## Training curves\n", "## λ tuning\n", "## Where the time went\n", "## Notes\n",
                                "## Resolved config\n", "## Data card\n"}) {
        EXPECT_NE(markdown.find(heading), std::string::npos) << heading;
    }
    EXPECT_NE(markdown.find("![Training loss](loss.svg)"), std::string::npos);
    EXPECT_NE(markdown.find("```yaml\nname: demo\n"), std::string::npos);
    EXPECT_NE(markdown.find("### Data card\n"), std::string::npos);  // the card's headings moved down two levels

    // Every table: header, separator and rows all have the same number of (unescaped) pipes.
    std::istringstream lines(markdown);
    std::string line;
    std::size_t tables = 0, expected = 0;
    bool in_table = false;
    const auto pipes = [](const std::string& text) {
        std::size_t n = 0;
        for (std::size_t i = 0; i < text.size(); ++i) n += text[i] == '|' && (i == 0 || text[i - 1] != '\\');
        return n;
    };
    while (std::getline(lines, line)) {
        if (!line.starts_with("|")) {
            in_table = false;
            continue;
        }
        if (!in_table) {
            in_table = true;
            ++tables;
            expected = pipes(line);
            continue;
        }
        EXPECT_EQ(pipes(line), expected) << line;
    }
    EXPECT_EQ(tables, 5u);  // metrics, EQ-Bench, tuning, stages, the data card's shards
    const std::string metrics_header = "| metric | base | SFT | Δ (SFT − base) | better | note |\n| --- | ---: | ---: | ---: | :---: | --- |\n";
    EXPECT_NE(markdown.find(metrics_header), std::string::npos);
    EXPECT_NE(markdown.find("| dev NLL (nats/token) | 2.5 | 2 | -0.5 (-20.0%) | lower |  |\n"), std::string::npos);
    EXPECT_NE(markdown.find("| emotion macro-F1 | — | 0.25 | — | higher | base heads are untrained |\n"), std::string::npos);
}

TEST(Report, MissingSectionsSayWhy) {
    ReportData data;
    data.title = "empty";
    data.eqbench_missing = "No questions file was found.";
    const std::string html = report_html(data);
    EXPECT_NE(html.find("No questions file was found."), std::string::npos);
    EXPECT_EQ(html.find("id=\"tuning\""), std::string::npos);
    const std::string markdown = report_markdown(data);
    EXPECT_NE(markdown.find("No questions file was found."), std::string::npos);
    EXPECT_NE(markdown.find("No metrics were measured."), std::string::npos);
}

TEST(Report, MarkdownSubsetRendersAsHtml) {
    const std::string html = markdown_to_html("# T\n\ntext `a<b` and **bold**\nmore\n\n| a | b |\n| --- | ---: |\n| 1 | 2 \\| 3 |\n\n- x\n- y\n#tag\n", 1);
    EXPECT_NE(html.find("<h2>T</h2>"), std::string::npos);
    EXPECT_NE(html.find("<p>text <code>a&lt;b</code> and <strong>bold</strong> more</p>"), std::string::npos);
    EXPECT_NE(html.find("<th>a</th><th class=\"num\">b</th>"), std::string::npos);
    EXPECT_NE(html.find("<td>1</td><td class=\"num\">2 | 3</td>"), std::string::npos);
    EXPECT_NE(html.find("<ul>\n<li>x</li>\n<li>y</li>\n</ul>"), std::string::npos);
    EXPECT_NE(html.find("<p>#tag</p>"), std::string::npos);  // no space after '#': not a heading
}

TEST(Report, WritesBothDocumentsAndTheChartFiles) {
    testing::ScratchDir scratch("kindred-report");
    const std::string dir = scratch / "run/report";
    const auto data = sample_report();
    write_report(dir, data);
    EXPECT_EQ(read_text(dir + "/report.html"), report_html(data));
    EXPECT_EQ(read_text(dir + "/report.md"), report_markdown(data));
    EXPECT_EQ(read_text(dir + "/loss.svg"), data.charts[0].svg);
    std::size_t files = 0;
    for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir)) ++files;
    EXPECT_EQ(files, 3u);  // no temporaries left behind
}

TEST(Report, RefusesBadChartsAndRaggedTables) {
    auto data = sample_report();
    data.charts[0].file = "../loss.svg";
    EXPECT_THROW(report_html(data), Error);
    data = sample_report();
    data.charts[0].file = "loss.png";
    EXPECT_THROW(report_html(data), Error);
    data = sample_report();
    data.charts[0].svg = "<svg><script>alert(1)</script></svg>";
    EXPECT_THROW(report_markdown(data), Error);
    data = sample_report();
    data.charts[0].svg = "not a chart";
    EXPECT_THROW(report_html(data), Error);
    data = sample_report();
    data.tuning[0].rows[1].pop_back();
    EXPECT_THROW(report_html(data), Error);
}

TEST(Report, FormatsMetrics) {
    EXPECT_EQ(format_metric(NAN), "—");
    EXPECT_EQ(format_metric(0.0), "0");
    EXPECT_EQ(format_metric(2.345678), "2.346");
    EXPECT_EQ(format_metric(1234.56), "1235");
}

// With SFT+DPO values the metric table gains that column and its change against SFT, the replies a
// third column, and `kindred ablate`'s table its own escaped section; without them nothing changes.
TEST(Report, SftPlusDpoColumnThirdReplyAndAblations) {
    ReportData data = sample_report();
    const std::string plain = report_markdown(data);
    EXPECT_EQ(plain.find("SFT+DPO"), std::string::npos);
    data.metrics[0].dpo = 1.5;     // lower NLL than SFT's 2.0: better
    data.metrics[2].dpo = 0.45;    // higher accuracy than SFT's 0.4: better
    data.conversations[0].dpo_reply = "I'm <so> sorry. How are you holding up?";
    data.ablations = {{"ablations", {"variant", "dev NLL"}, {{"full", "1.5"}, {"no_dpo <x>", "2.0"}}}};
    const std::string html = report_html(data);
    EXPECT_NE(html.find("<th class=\"num\">SFT+DPO</th>"), std::string::npos);
    EXPECT_NE(html.find("<th class=\"num\">Δ (SFT+DPO − SFT)</th>"), std::string::npos);
    EXPECT_NE(html.find("num better\">-0.5 (-25.0%)"), std::string::npos);   // 2.0 -> 1.5
    EXPECT_NE(html.find("num better\">+0.05 (+12.5%)"), std::string::npos);  // 0.4 -> 0.45
    EXPECT_NE(html.find("class=\"pair three\""), std::string::npos);
    EXPECT_EQ(count(html, "class=\"reply dpo\""), 1u);  // only the conversation that has one
    EXPECT_NE(html.find("I&#39;m &lt;so&gt; sorry"), std::string::npos);
    EXPECT_NE(html.find("<section id=\"ablations\">"), std::string::npos);
    EXPECT_NE(html.find("no_dpo &lt;x&gt;"), std::string::npos);
    const std::string markdown = report_markdown(data);
    EXPECT_NE(markdown.find("| metric | base | SFT | SFT+DPO | Δ (SFT − base) | Δ (SFT+DPO − SFT) | better | note |"),
              std::string::npos)
        << markdown;
    EXPECT_NE(markdown.find("**After SFT+DPO:**"), std::string::npos);
    EXPECT_NE(markdown.find("## Ablations"), std::string::npos);
    EXPECT_NE(markdown.find("| no\\_dpo &lt;x&gt; | 2.0 |"), std::string::npos) << markdown;
    data.ablations[0].rows[0].pop_back();
    EXPECT_THROW(report_html(data), Error);  // a ragged ablation table is refused like a tuning one
}

TEST(Markup, EscapesMarkupAndDropsWhatXmlForbids) {
    EXPECT_EQ(escape_markup("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&#39;");
    EXPECT_EQ(escape_markup(std::string("x\x01\x1fy\tz\n\r\x7f")), "xy\tz\n\r\x7f");
    EXPECT_EQ(escape_markup("caf\xc3\xa9"), "caf\xc3\xa9");  // UTF-8 passes through
}

}  // namespace
}  // namespace kindred::eval
