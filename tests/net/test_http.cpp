// Tests of net/http.h against a local server: retries and backoff, statuses passed through,
// downloads that resume, restart, verify and land atomically.
#include "net/http.h"

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/error.h"
#include "local_http_server.h"
#include "scratch_dir.h"

namespace kindred::net {
namespace {

using kindred::testing::LocalHttpServer;
using kindred::testing::ScratchDir;

std::string payload(std::size_t bytes) {
    std::string data(bytes, '\0');
    for (std::size_t i = 0; i < bytes; ++i) data[i] = static_cast<char>('a' + (i * 7 + i / 26) % 26);
    return data;
}

std::string read_all(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_all(const std::string& path, const std::string& bytes) {
    std::ofstream(path, std::ios::binary) << bytes;
}

// Records the sleeps instead of sleeping, so backoff is checked without waiting.
struct SleepLog {
    std::vector<double> seconds;
    HttpOptions options() {
        HttpOptions options;
        options.sleep = [this](double s) { seconds.push_back(s); };
        return options;
    }
};

TEST(Http, GetReturnsBodyStatusAndHeaders) {
    LocalHttpServer server;
    server.routes().Get("/hello", [](const httplib::Request&, httplib::Response& res) {
        res.set_header("X-Kind", "friendly");
        res.set_content("hi there", "text/plain");
    });
    server.start();
    const HttpResponse response = http_get(server.url("/hello"));
    EXPECT_EQ(response.status, 200);
    EXPECT_TRUE(response.ok());
    EXPECT_EQ(response.body, "hi there");
    EXPECT_EQ(response.header("x-kind"), "friendly");  // names match without regard to case
    EXPECT_EQ(response.header("Absent"), "");
}

TEST(Http, PostSendsBodyAndContentType) {
    LocalHttpServer server;
    server.routes().Post("/echo", [](const httplib::Request& req, httplib::Response& res) {
        res.set_content(req.get_header_value("Content-Type") + "|" + req.body, "text/plain");
    });
    server.start();
    const std::string big(200000, 'q');  // large enough that curl would otherwise wait for 100-continue
    EXPECT_EQ(http_post(server.url("/echo"), "{\"a\":1}", "application/json").body, "application/json|{\"a\":1}");
    EXPECT_EQ(http_post(server.url("/echo"), big, "text/plain").body, "text/plain|" + big);
}

TEST(Http, RetriesServerErrorsWithExponentialBackoffThenSucceeds) {
    LocalHttpServer server;
    std::atomic<int> hits{0};
    server.routes().Get("/flaky", [&](const httplib::Request&, httplib::Response& res) {
        if (++hits <= 3) {
            res.status = hits == 2 ? 429 : 503;
            return;
        }
        res.set_content("finally", "text/plain");
    });
    server.start();
    SleepLog sleeps;
    const HttpResponse response = http_get(server.url("/flaky"), sleeps.options());
    EXPECT_EQ(response.body, "finally");
    EXPECT_EQ(hits.load(), 4);
    EXPECT_EQ(sleeps.seconds, (std::vector<double>{1.0, 2.0, 4.0}));
}

TEST(Http, HonoursRetryAfterUpToTheCap) {
    LocalHttpServer server;
    std::atomic<int> hits{0};
    server.routes().Get("/busy", [&](const httplib::Request&, httplib::Response& res) {
        if (++hits == 1) {
            res.status = 429;
            res.set_header("Retry-After", "7");
            return;
        }
        if (hits == 2) {
            res.status = 503;
            res.set_header("Retry-After", "3600");
            return;
        }
        res.set_content("ok", "text/plain");
    });
    server.start();
    SleepLog sleeps;
    HttpOptions options = sleeps.options();
    options.backoff_max_s = 30.0;
    EXPECT_EQ(http_get(server.url("/busy"), options).body, "ok");
    EXPECT_EQ(sleeps.seconds, (std::vector<double>{7.0, 30.0}));
}

TEST(Http, ClientErrorsAreReturnedAtOnceAndExhaustedRetriesReturnTheLastStatus) {
    LocalHttpServer server;
    std::atomic<int> not_found{0}, unavailable{0};
    server.routes().Get("/missing", [&](const httplib::Request&, httplib::Response& res) {
        ++not_found;
        res.status = 404;
        res.set_content("{\"error\":\"no such thing\"}", "application/json");
    });
    server.routes().Get("/down", [&](const httplib::Request&, httplib::Response& res) {
        ++unavailable;
        res.status = 503;
    });
    server.start();
    SleepLog sleeps;
    HttpOptions options = sleeps.options();
    options.max_attempts = 3;
    const HttpResponse missing = http_get(server.url("/missing"), options);
    EXPECT_EQ(missing.status, 404);
    EXPECT_EQ(not_found.load(), 1);
    try {
        require_ok(missing, "GET", server.url("/missing"));
        FAIL() << "require_ok accepted a 404";
    } catch (const Error& error) {
        const std::string message = error.what();
        EXPECT_NE(message.find(server.url("/missing")), std::string::npos) << message;
        EXPECT_NE(message.find("404"), std::string::npos) << message;
        EXPECT_NE(message.find("no such thing"), std::string::npos) << message;
    }
    EXPECT_EQ(http_get(server.url("/down"), options).status, 503);
    EXPECT_EQ(unavailable.load(), 3);
}

TEST(Http, UnreachableServerIsAnErrorNamingTheUrlAfterEveryAttempt) {
    SleepLog sleeps;
    HttpOptions options = sleeps.options();
    options.max_attempts = 2;
    const std::string url = "http://127.0.0.1:1/nothing-listens-here";
    try {
        http_get(url, options);
        FAIL() << "no error for a refused connection";
    } catch (const Error& error) {
        const std::string message = error.what();
        EXPECT_NE(message.find("GET " + url), std::string::npos) << message;
        EXPECT_NE(message.find("2 attempts"), std::string::npos) << message;
    }
    EXPECT_EQ(sleeps.seconds.size(), 1u);
}

TEST(Http, MalformedUrlIsNotRetried) {
    SleepLog sleeps;
    EXPECT_THROW(http_get("htp:/bad url", sleeps.options()), Error);
    EXPECT_TRUE(sleeps.seconds.empty());
}

TEST(Http, Sha256MatchesKnownDigests) {
    // FIPS 180-2 test vectors.
    EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    ScratchDir dir("kindred-http");
    write_all(dir / "f", std::string(1'500'000, 'a'));  // more than the file reader's 1 MiB buffer
    EXPECT_EQ(sha256_file(dir / "f"), sha256_hex(std::string(1'500'000, 'a')));
    EXPECT_THROW(sha256_file(dir / "absent"), Error);
}

class Download : public ::testing::Test {
protected:
    void SetUp() override {
        data_ = payload(300'000);
        server_.routes().Get("/file", [this](const httplib::Request& req, httplib::Response& res) {
            record(req);
            res.set_content(data_, "application/octet-stream");
        });
        // First request of each run is cut off after half the bytes; later ones are whole (ranges honoured).
        server_.routes().Get("/cut", [this](const httplib::Request& req, httplib::Response& res) {
            record(req);
            const bool cut = cut_hits_++ == 0;
            res.set_content_provider(data_.size(), "application/octet-stream",
                                     [this, cut](std::size_t offset, std::size_t length, httplib::DataSink& sink) {
                                         const std::size_t limit = cut ? data_.size() / 2 : data_.size();
                                         if (offset >= limit) return false;
                                         sink.write(data_.data() + offset, std::min(length, limit - offset));
                                         return true;
                                     });
        });
        server_.routes().Get("/no-ranges", [this](const httplib::Request& req, httplib::Response& res) {
            record(req);
            res.status = 200;
            res.set_chunked_content_provider("application/octet-stream", [this](std::size_t offset, httplib::DataSink& sink) {
                if (offset == 0) sink.write(data_.data(), data_.size());
                sink.done();
                return true;
            });
        });
        // Says 206 but sends the whole file without a Content-Range (a broken server or proxy).
        server_.routes().Get("/bad-206", [this](const httplib::Request& req, httplib::Response& res) {
            record(req);
            res.set_chunked_content_provider("application/octet-stream", [this](std::size_t offset, httplib::DataSink& sink) {
                if (offset == 0) sink.write(data_.data(), data_.size());
                sink.done();
                return true;
            });
        });
        server_.routes().Get("/gone", [this](const httplib::Request& req, httplib::Response& res) {
            record(req);
            res.status = 404;
            res.set_content("not here", "text/plain");
        });
        server_.start();
        options_.http.sleep = [](double) {};
    }

    void record(const httplib::Request& req) {
        std::lock_guard lock(mutex_);
        ranges_.push_back(req.get_header_value("Range"));
    }
    std::vector<std::string> ranges() {
        std::lock_guard lock(mutex_);
        return ranges_;
    }

    std::string data_;
    LocalHttpServer server_;
    DownloadOptions options_;
    std::atomic<int> cut_hits_{0};
    std::mutex mutex_;
    std::vector<std::string> ranges_;
    ScratchDir dir_{"kindred-download"};
};

TEST_F(Download, FetchesVerifiesAndReportsProgress) {
    options_.sha256 = sha256_hex(data_);
    std::int64_t last_done = -1, last_total = -2;
    options_.progress = [&](std::int64_t done, std::int64_t total) {
        EXPECT_GE(done, last_done);
        last_done = done;
        last_total = total;
    };
    const std::string path = dir_ / "sub/data.bin";
    EXPECT_EQ(download_file(server_.url("/file"), path, options_), DownloadOutcome::Downloaded);
    EXPECT_EQ(read_all(path), data_);
    EXPECT_FALSE(std::filesystem::exists(path + ".part"));
    EXPECT_EQ(last_done, static_cast<std::int64_t>(data_.size()));
    EXPECT_EQ(last_total, static_cast<std::int64_t>(data_.size()));
}

TEST_F(Download, AVerifiedFileIsUsedWithoutTheNetwork) {
    options_.sha256 = sha256_hex(data_);
    const std::string path = dir_ / "data.bin";
    write_all(path, data_);
    EXPECT_EQ(download_file(server_.url("/file"), path, options_), DownloadOutcome::AlreadyPresent);
    EXPECT_TRUE(ranges().empty());
    // Offline: the same call against a dead server still succeeds.
    EXPECT_EQ(download_file("http://127.0.0.1:1/file", path, options_), DownloadOutcome::AlreadyPresent);
}

TEST_F(Download, AFileThatDoesNotMatchItsChecksumIsReplaced) {
    options_.sha256 = sha256_hex(data_);
    const std::string path = dir_ / "data.bin";
    write_all(path, "an older version");
    EXPECT_EQ(download_file(server_.url("/file"), path, options_), DownloadOutcome::Downloaded);
    EXPECT_EQ(read_all(path), data_);
}

TEST_F(Download, ChecksumMismatchIsAnErrorAndLeavesNothingBehind) {
    options_.sha256 = std::string(64, '0');
    const std::string path = dir_ / "data.bin";
    try {
        download_file(server_.url("/file"), path, options_);
        FAIL() << "a wrong checksum was accepted";
    } catch (const Error& error) {
        const std::string message = error.what();
        EXPECT_NE(message.find(server_.url("/file")), std::string::npos) << message;
        EXPECT_NE(message.find("sha256 mismatch"), std::string::npos) << message;
        EXPECT_NE(message.find(sha256_hex(data_)), std::string::npos) << message;
    }
    EXPECT_FALSE(std::filesystem::exists(path));
    EXPECT_FALSE(std::filesystem::exists(path + ".part"));
}

TEST_F(Download, ATruncatedTransferResumesWithARangeRequest) {
    options_.sha256 = sha256_hex(data_);
    const std::string path = dir_ / "data.bin";
    EXPECT_EQ(download_file(server_.url("/cut"), path, options_), DownloadOutcome::Resumed);
    EXPECT_EQ(read_all(path), data_);
    EXPECT_EQ(ranges(), (std::vector<std::string>{"", "bytes=" + std::to_string(data_.size() / 2) + "-"}));
}

TEST_F(Download, APartLeftByAnEarlierRunIsResumed) {
    options_.sha256 = sha256_hex(data_);
    const std::string path = dir_ / "data.bin";
    write_all(path + ".part", data_.substr(0, 1234));
    EXPECT_EQ(download_file(server_.url("/file"), path, options_), DownloadOutcome::Resumed);
    EXPECT_EQ(read_all(path), data_);
    EXPECT_EQ(ranges(), (std::vector<std::string>{"bytes=1234-"}));
}

TEST_F(Download, AServerIgnoringTheRangeRestartsTheFile) {
    options_.sha256 = sha256_hex(data_);
    const std::string path = dir_ / "data.bin";
    write_all(path + ".part", "stale bytes that must not stay in front");
    download_file(server_.url("/no-ranges"), path, options_);
    EXPECT_EQ(read_all(path), data_);
}

TEST_F(Download, A206ThatDoesNotContinueThePartStartsOver) {
    options_.sha256 = sha256_hex(data_);
    const std::string path = dir_ / "data.bin";
    write_all(path + ".part", data_.substr(0, 5000));
    download_file(server_.url("/bad-206"), path, options_);
    EXPECT_EQ(read_all(path), data_);
    // The first answer was refused; the second request asked for the whole file.
    EXPECT_EQ(ranges(), (std::vector<std::string>{"bytes=5000-", ""}));
}

TEST_F(Download, ACompletePartIsFinishedWhenTheServerHasNothingMore) {
    options_.sha256 = sha256_hex(data_);
    const std::string path = dir_ / "data.bin";
    write_all(path + ".part", data_);  // a run stopped between the last byte and the rename
    download_file(server_.url("/file"), path, options_);
    EXPECT_EQ(read_all(path), data_);
    EXPECT_FALSE(std::filesystem::exists(path + ".part"));
}

TEST_F(Download, NotFoundIsAnErrorNamingTheUrl) {
    const std::string path = dir_ / "data.bin";
    try {
        download_file(server_.url("/gone"), path, options_);
        FAIL() << "a 404 was accepted";
    } catch (const Error& error) {
        const std::string message = error.what();
        EXPECT_NE(message.find(server_.url("/gone")), std::string::npos) << message;
        EXPECT_NE(message.find("404"), std::string::npos) << message;
    }
    EXPECT_FALSE(std::filesystem::exists(path));
    EXPECT_EQ(ranges().size(), 1u);  // not retried
}

TEST_F(Download, WithoutAChecksumAnExistingFileIsKept) {
    const std::string path = dir_ / "data.bin";
    write_all(path, "whatever the user put here");
    EXPECT_EQ(download_file(server_.url("/file"), path, options_), DownloadOutcome::AlreadyPresent);
    EXPECT_EQ(read_all(path), "whatever the user put here");
}

}  // namespace
}  // namespace kindred::net
