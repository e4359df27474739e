// Progress line formatting, smoothing, throttling on a terminal and periodic plain lines elsewhere,
// all on a fake clock; and metrics.jsonl writing, torn-line tolerance and series extraction.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/error.h"
#include "core/metrics_log.h"
#include "core/progress.h"

namespace kindred {
namespace {

TEST(Progress, FormatDuration) {
    EXPECT_EQ(format_duration(0), "00:00");
    EXPECT_EQ(format_duration(31.9), "00:31");
    EXPECT_EQ(format_duration(3599), "59:59");
    EXPECT_EQ(format_duration(3600), "1:00:00");
    EXPECT_EQ(format_duration(36 * 3600 + 62), "36:01:02");
    EXPECT_EQ(format_duration(-1), "--:--");
    EXPECT_EQ(format_duration(std::numeric_limits<double>::infinity()), "--:--");
    EXPECT_EQ(format_duration(std::numeric_limits<double>::quiet_NaN()), "--:--");
}

TEST(Progress, FormatRate) {
    EXPECT_EQ(format_rate(0), "0.00");
    EXPECT_EQ(format_rate(0.524), "0.52");
    EXPECT_EQ(format_rate(9.996), "10.0");
    EXPECT_EQ(format_rate(12.54), "12.5");
    EXPECT_EQ(format_rate(99.96), "100");
    EXPECT_EQ(format_rate(999.4), "999");
    EXPECT_EQ(format_rate(999.7), "1.00k");
    EXPECT_EQ(format_rate(1234), "1.23k");
    EXPECT_EQ(format_rate(45.6e6), "45.6M");
    EXPECT_EQ(format_rate(-2500), "-2.50k");
    EXPECT_EQ(format_rate(std::numeric_limits<double>::quiet_NaN()), "?");
}

struct Harness {
    double now = 100.0;
    std::string out;
    ProgressOptions options(bool interactive) {
        ProgressOptions o;
        o.label = "train";
        o.unit = "tok";
        o.bar_width = 10;
        o.interactive = interactive;
        o.clock = [this] { return now; };
        o.write = [this](std::string_view text) { out += text; };
        return o;
    }
};

TEST(Progress, LineShowsBarFieldsRateAndEta) {
    Harness h;
    Progress bar(100, h.options(true));
    h.now += 31;
    bar.update(42, {{"loss", 2.3141}, {"lr", 2e-4}}, 42 * 1200.0);
    // One interval so far: 50400 tokens / 31 s = 1.63k tok/s; 42 steps / 31 s -> 58 left take 42.8 s.
    EXPECT_EQ(bar.line(), "train [####......] 42/100 42% loss 2.314 lr 0.0002 | 1.63k tok/s | 00:31<00:42");
    EXPECT_EQ(h.out, "\r" + bar.line() + "\x1b[K");
}

TEST(Progress, HugeTotalsDoNotOverflow) {
    Harness h;
    const std::int64_t total = std::numeric_limits<std::int64_t>::max() / 2;
    Progress bar(total, h.options(true));
    h.now += 1;
    bar.update(total - 1);
    EXPECT_EQ(bar.line().substr(0, 18), "train [#########.]");
    EXPECT_NE(bar.line().find(fmt::format("{}/{} 99%", total - 1, total)), std::string::npos) << bar.line();
}

TEST(Progress, UnknownTotalAndNoRateYet) {
    Harness h;
    ProgressOptions o = h.options(false);
    o.label = "";
    o.unit = "it";
    Progress bar(0, o);
    EXPECT_EQ(bar.line(), "0 | ? it/s | 00:00");
    h.now += 2;
    bar.update(10);
    EXPECT_EQ(bar.line(), "10 | 5.00 it/s | 00:02");
}

TEST(Progress, RateIsSmoothedOverTime) {
    Harness h;
    ProgressOptions o = h.options(true);
    o.smoothing_s = 10.0;
    Progress bar(1000, o);
    h.now += 1;
    bar.update(1, {}, 100);  // first interval: 100/s
    h.now += 10;
    bar.update(2, {}, 200);  // 10/s over one time constant: 100 + (1 - e^-1)(10 - 100) = 43.1
    EXPECT_NE(bar.line().find("| 43.1 tok/s |"), std::string::npos) << bar.line();
}

TEST(Progress, TerminalRedrawsAreThrottled) {
    Harness h;
    Progress bar(1000, h.options(true));
    int draws = 0;
    for (int i = 1; i <= 64; ++i) {
        h.now += 1.0 / 64;  // 64 updates over exactly one second (a power of two keeps the sum exact)
        const std::size_t before = h.out.size();
        bar.update(i);
        draws += h.out.size() != before;
    }
    EXPECT_EQ(draws, 10);  // redraw_interval_s 0.1: the first update, then every 7th (7/64 s >= 0.1 s)
    bar.finish({{"loss", 1.5}});
    EXPECT_EQ(h.out.back(), '\n');
    EXPECT_NE(h.out.find("\r"), std::string::npos);
    const std::size_t last = h.out.rfind('\r');
    // Final line: whole-run average and total elapsed, no ETA.
    EXPECT_EQ(h.out.substr(last), "\rtrain [..........] 64/1000 6% loss 1.5 | 64.0 tok/s | 00:01\x1b[K\n");
    const std::size_t size = h.out.size();
    bar.finish();
    EXPECT_EQ(h.out.size(), size);  // idempotent
}

TEST(Progress, PlainOutputLogsEveryTenthAndPeriodically) {
    Harness h;
    ProgressOptions o = h.options(false);
    o.log_interval_s = 30;
    Progress bar(100, o);
    for (int i = 1; i <= 100; ++i) {
        h.now += 0.1;  // 10 s overall: only the 10% steps (and the first update) print
        bar.update(i);
    }
    EXPECT_EQ(h.out.find('\r'), std::string::npos);
    EXPECT_EQ(std::count(h.out.begin(), h.out.end(), '\n'), 11);
    h.out.clear();

    Progress slow(1000, o);
    for (int i = 1; i <= 50; ++i) {
        h.now += 2.0;  // 100 s within the first 10%: the first update and every 30 s
        slow.update(i);
    }
    EXPECT_EQ(std::count(h.out.begin(), h.out.end(), '\n'), 4);
}

TEST(Progress, MessageKeepsTheBarIntact) {
    Harness h;
    Progress bar(10, h.options(true));
    h.now += 1;
    bar.update(1);
    h.out.clear();
    bar.message("eval: f1 0.5");
    EXPECT_EQ(h.out, "\r\x1b[Keval: f1 0.5\n\r" + bar.line() + "\x1b[K");
}

TEST(Progress, DestructorEndsABarLeftOnScreen) {
    Harness h;
    {
        Progress bar(10, h.options(true));
        bar.update(1);
    }
    EXPECT_EQ(h.out.back(), '\n');
}

class MetricsLogTest : public ::testing::Test {
protected:
    std::filesystem::path path = std::filesystem::temp_directory_path() /
                                 ("kindred_metrics_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "_" +
                                  ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".jsonl");
    void SetUp() override { std::filesystem::remove(path); }
    void TearDown() override { std::filesystem::remove(path); }
    std::string text() const {
        std::ifstream in(path, std::ios::binary);
        return {std::istreambuf_iterator<char>(in), {}};
    }
    void append_raw(const std::string& raw) const {
        std::ofstream out(path, std::ios::binary | std::ios::app);
        out << raw;
    }
};

TEST_F(MetricsLogTest, WritesOneLinePerRecordAndReadsSeries) {
    {
        MetricsLog log(path.string());
        log.write({{"step", 1}, {"loss", 2.5}, {"split", "train"}});
        log.write({{"step", 2}, {"loss", std::numeric_limits<double>::quiet_NaN()}});
        log.write({{"step", 3}, {"loss", 2.0}, {"lr", 1e-4}});
        log.write({{"step", 4}, {"eval_f1", 0.5}});
    }
    EXPECT_EQ(text(), "{\"loss\":2.5,\"split\":\"train\",\"step\":1}\n{\"loss\":null,\"step\":2}\n"
                      "{\"loss\":2.0,\"lr\":0.0001,\"step\":3}\n{\"eval_f1\":0.5,\"step\":4}\n");
    const auto contents = read_metrics_log(path.string());
    EXPECT_FALSE(contents.truncated_tail);
    ASSERT_EQ(contents.records.size(), 4u);
    const auto loss = metric_series(contents.records, "step", "loss");
    EXPECT_EQ(loss.x, (std::vector<double>{1, 3}));  // the NaN (null) and loss-less records are skipped
    EXPECT_EQ(loss.y, (std::vector<double>{2.5, 2.0}));
    EXPECT_TRUE(metric_series(contents.records, "step", "split").x.empty());  // not a number
}

TEST_F(MetricsLogTest, TornLastLineIsReportedAndCutOnReopen) {
    { MetricsLog(path.string()).write({{"step", 1}}); }
    append_raw("{\"step\": 2, \"lo");  // a writer killed mid-line
    auto contents = read_metrics_log(path.string());
    EXPECT_TRUE(contents.truncated_tail);
    EXPECT_EQ(contents.records.size(), 1u);
    {
        MetricsLog log(path.string());
        log.write({{"step", 2}});
    }
    EXPECT_EQ(text(), "{\"step\":1}\n{\"step\":2}\n");
    contents = read_metrics_log(path.string());
    EXPECT_FALSE(contents.truncated_tail);
    EXPECT_EQ(contents.records.size(), 2u);
}

TEST_F(MetricsLogTest, TornOnlyLineIsCut) {
    append_raw("{\"st");
    { MetricsLog(path.string()).write({{"a", 1}}); }
    EXPECT_EQ(text(), "{\"a\":1}\n");
}

TEST_F(MetricsLogTest, SigkilledWriterLeavesOnlyWholeLines) {
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        // The child never returns into the test runner: it writes until killed (or, capped at ~7 MB
        // in case the parent is slow to be scheduled, waits to be killed); any error ends it.
        try {
            MetricsLog log(path.string());
            const std::string padding(300, 'x');  // lines of ~350 bytes
            for (std::int64_t step = 0; step < 20000; ++step) {
                log.write({{"step", step}, {"loss", 1.0 / static_cast<double>(step + 1)}, {"pad", padding}});
            }
        } catch (...) {
            _exit(1);
        }
        while (true) pause();
    }
    // Wait until the child has written a few thousand lines, then kill it mid-stream.
    for (int i = 0; i < 2000 && (!std::filesystem::exists(path) || std::filesystem::file_size(path) < 1000000); ++i) usleep(1000);
    ASSERT_EQ(kill(child, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status));
    const auto contents = read_metrics_log(path.string());
    EXPECT_FALSE(contents.truncated_tail);
    ASSERT_GT(contents.records.size(), 100u);
    for (std::size_t i = 0; i < contents.records.size(); ++i) ASSERT_EQ(contents.records[i].at("step").get<std::size_t>(), i);
    EXPECT_EQ(text().back(), '\n');
}

TEST_F(MetricsLogTest, BadInputNamesFileAndLine) {
    append_raw("{\"step\":1}\n\nnot json\n{\"step\":2}\n");
    try {
        read_metrics_log(path.string());
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(std::string(e.what()), path.string() + " line 3: not a JSON object");
    }
    EXPECT_THROW(read_metrics_log((path.string() + ".missing")), Error);
    EXPECT_THROW(MetricsLog("/nonexistent-dir/metrics.jsonl"), Error);
    MetricsLog log(path.string());
    EXPECT_THROW(log.write(nlohmann::json::array({1, 2})), Error);
}

}  // namespace
}  // namespace kindred
