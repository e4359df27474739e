// `kindred data fetch` (data/fetch.h) against a server on 127.0.0.1 serving fixture files: pinned
// downloads verified and then used offline, a checksum mismatch, a truncated transfer and a part
// file left by an earlier run resumed with Range requests, a 404, a mirror base URL, an unpinned file,
// the EmpatheticDialogues tarball unpacked into the folder `kindred data prepare --ed` reads; the
// catalog's pins against the real files of ../shared; the malformed-archive corpus.
#include "data/fetch.h"

#include <archive.h>
#include <archive_entry.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "core/error.h"
#include "data/empathetic_dialogues.h"
#include "local_http_server.h"
#include "malformed_corpus.h"
#include "net/http.h"
#include "scratch_dir.h"
#include "test_paths.h"

namespace kindred::data {
namespace {

namespace fs = std::filesystem;
using kindred::testing::LocalHttpServer;
using kindred::testing::ScratchDir;
using kindred::testing::source_path;

std::string read_all(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string payload(std::size_t bytes, int seed) {
    std::string data(bytes, '\0');
    for (std::size_t i = 0; i < bytes; ++i) data[i] = static_cast<char>('a' + (i * 7 + i / 26 + static_cast<std::size_t>(seed)) % 26);
    return data;
}

// A gzip-compressed ustar archive of (member name, bytes), written with libarchive.
std::string tar_gz(const std::vector<std::pair<std::string, std::string>>& members, const std::string& path) {
    struct archive* writer = archive_write_new();
    archive_write_add_filter_gzip(writer);
    archive_write_set_format_ustar(writer);
    EXPECT_EQ(archive_write_open_filename(writer, path.c_str()), ARCHIVE_OK);
    for (const auto& [name, bytes] : members) {
        struct archive_entry* entry = archive_entry_new();
        archive_entry_set_pathname(entry, name.c_str());
        archive_entry_set_size(entry, static_cast<la_int64_t>(bytes.size()));
        archive_entry_set_filetype(entry, AE_IFREG);
        archive_entry_set_perm(entry, 0644);
        archive_write_header(writer, entry);
        archive_write_data(writer, bytes.data(), bytes.size());
        archive_entry_free(entry);
    }
    archive_write_close(writer);
    archive_write_free(writer);
    return read_all(path);
}

// The server: fixed files by path, a /cut/ prefix whose first request stops halfway, the
// requests' paths and Range headers recorded.
class Fetch : public ::testing::Test {
protected:
    void SetUp() override {
        files_["/a/one.txt"] = payload(120'000, 1);
        files_["/a/two.txt"] = payload(3'000, 2);
        server_.routes().Get(R"(/(.*))", [this](const httplib::Request& req, httplib::Response& res) {
            record(req);
            std::string path = req.path;
            bool cut = false;
            if (path.rfind("/cut/", 0) == 0) {
                path = path.substr(4);
                cut = cut_hits_++ == 0;
            }
            const auto found = files_.find(path);
            if (found == files_.end()) {
                res.status = 404;
                res.set_content("not here", "text/plain");
                return;
            }
            const std::string& data = found->second;
            res.set_content_provider(data.size(), "application/octet-stream",
                                     [&data, cut](std::size_t offset, std::size_t length, httplib::DataSink& sink) {
                                         const std::size_t limit = cut ? data.size() / 2 : data.size();
                                         if (offset >= limit) return false;
                                         sink.write(data.data() + offset, std::min(length, limit - offset));
                                         return true;
                                     });
        });
        server_.start();
        options_.dir = dir_ / "fetched";
        options_.download.http.sleep = [](double) {};
        options_.download.http.max_attempts = 3;
    }

    void record(const httplib::Request& req) {
        std::lock_guard lock(mutex_);
        requests_.push_back(req.path + (req.has_header("Range") ? " " + req.get_header_value("Range") : ""));
    }
    std::vector<std::string> requests() {
        std::lock_guard lock(mutex_);
        return requests_;
    }

    RemoteFile file(const std::string& path, const std::string& served, bool pinned = true) {
        return {path, server_.url(served), pinned ? net::sha256_hex(files_.at(served.substr(served.rfind("/cut/", 0) == 0 ? 4 : 0))) : ""};
    }
    std::string on_disk(const std::string& path) { return read_all((fs::path(options_.dir) / path).string()); }
    // The message of the Error fetching `dataset` must throw.
    std::string fetch_error(const RemoteDataset& dataset) {
        try {
            fetch_dataset(dataset, options_);
        } catch (const Error& error) {
            return error.what();
        }
        ADD_FAILURE() << "fetching " << dataset.name << " succeeded";
        return {};
    }

    std::map<std::string, std::string> files_;
    LocalHttpServer server_;
    std::atomic<int> cut_hits_{0};
    std::mutex mutex_;
    std::vector<std::string> requests_;
    ScratchDir dir_{"kindred-fetch"};
    FetchOptions options_;
};

TEST_F(Fetch, PinnedFilesAreVerifiedThenUsedOfflineWithProgress) {
    const RemoteDataset dataset{"test", "Test", "MIT", "", {file("x/one.txt", "/a/one.txt"), file("x/two.txt", "/a/two.txt")}, {}};
    std::map<std::string, std::int64_t> last_done;
    options_.progress = [&](const RemoteFile& f, std::int64_t done, std::int64_t total) {
        EXPECT_GE(done, last_done[f.path]);
        last_done[f.path] = done;
        EXPECT_TRUE(total == -1 || total == static_cast<std::int64_t>(files_.at(f.url.substr(f.url.find("/a/"))).size()));
    };
    std::vector<std::string> lines;
    options_.log = [&](const std::string& line) { lines.push_back(line); };
    const auto fetched = fetch_dataset(dataset, options_);
    ASSERT_EQ(fetched.size(), 2u);
    EXPECT_EQ(fetched[0].outcome, net::DownloadOutcome::Downloaded);
    EXPECT_TRUE(fetched[0].pinned);
    EXPECT_EQ(on_disk("x/one.txt"), files_["/a/one.txt"]);
    EXPECT_EQ(on_disk("x/two.txt"), files_["/a/two.txt"]);
    EXPECT_EQ(last_done["x/one.txt"], 120'000);
    ASSERT_EQ(lines.size(), 2u);
    EXPECT_NE(lines[0].find("downloaded (sha256 verified)"), std::string::npos) << lines[0];

    server_.stop();  // offline: the verified copies are used without a request
    const auto again = fetch_dataset(dataset, options_);
    EXPECT_EQ(again[0].outcome, net::DownloadOutcome::AlreadyPresent);
    EXPECT_EQ(again[1].outcome, net::DownloadOutcome::AlreadyPresent);
}

TEST_F(Fetch, ChecksumMismatchNamesTheUrlAndLeavesNothingBehind) {
    RemoteFile wrong = file("x/one.txt", "/a/one.txt");
    wrong.sha256 = net::sha256_hex("something else");
    const RemoteDataset dataset{"test", "Test", "MIT", "", {wrong}, {}};
    const std::string message = fetch_error(dataset);
    EXPECT_NE(message.find(server_.url("/a/one.txt")), std::string::npos) << message;
    EXPECT_NE(message.find("sha256 mismatch"), std::string::npos) << message;
    EXPECT_FALSE(fs::exists(fs::path(options_.dir) / "x/one.txt"));
    EXPECT_FALSE(fs::exists(fs::path(options_.dir) / "x/one.txt.part"));
}

TEST_F(Fetch, ATruncatedTransferIsResumedWithARangeRequest) {
    const RemoteDataset dataset{"test", "Test", "MIT", "", {file("x/one.txt", "/cut/a/one.txt")}, {}};
    const auto fetched = fetch_dataset(dataset, options_);
    EXPECT_EQ(fetched[0].outcome, net::DownloadOutcome::Resumed);
    EXPECT_EQ(on_disk("x/one.txt"), files_["/a/one.txt"]);
    EXPECT_EQ(requests(), (std::vector<std::string>{"/cut/a/one.txt", "/cut/a/one.txt bytes=60000-"}));
}

TEST_F(Fetch, APartFileLeftByAnInterruptedRunIsResumed) {
    const RemoteDataset dataset{"test", "Test", "MIT", "", {file("x/one.txt", "/a/one.txt")}, {}};
    fs::create_directories(fs::path(options_.dir) / "x");
    std::ofstream(fs::path(options_.dir) / "x/one.txt.part", std::ios::binary) << files_["/a/one.txt"].substr(0, 1000);
    EXPECT_EQ(fetch_dataset(dataset, options_)[0].outcome, net::DownloadOutcome::Resumed);
    EXPECT_EQ(on_disk("x/one.txt"), files_["/a/one.txt"]);
    EXPECT_EQ(requests(), (std::vector<std::string>{"/a/one.txt bytes=1000-"}));
}

TEST_F(Fetch, NotFoundIsAnErrorNamingTheUrl) {
    const RemoteDataset dataset{"test", "Test", "MIT", "", {{"x/gone.txt", server_.url("/a/gone.txt"), std::string(64, '0')}}, {}};
    const std::string message = fetch_error(dataset);
    EXPECT_NE(message.find(server_.url("/a/gone.txt")), std::string::npos) << message;
    EXPECT_NE(message.find("404"), std::string::npos) << message;
    EXPECT_EQ(requests().size(), 1u);  // a 404 is not retried
    EXPECT_FALSE(fs::exists(fs::path(options_.dir) / "x/gone.txt"));
}

// A mirror serves the fetch folder's layout: <base>/<path>; the official URL is never asked.
TEST_F(Fetch, ABaseUrlRedirectsEveryFileToTheMirror) {
    files_["/mirror/goemotions/dev.tsv"] = payload(500, 3);
    const RemoteDataset dataset{"test", "Test", "MIT", "",
                                {{"goemotions/dev.tsv", "http://127.0.0.1:1/official/dev.tsv",
                                  net::sha256_hex(files_["/mirror/goemotions/dev.tsv"])}},
                                {}};
    options_.base_url = server_.url("/mirror/");
    EXPECT_EQ(fetch_url(dataset.files[0], options_.base_url), server_.url("/mirror/goemotions/dev.tsv"));
    EXPECT_EQ(fetch_url(dataset.files[0], ""), "http://127.0.0.1:1/official/dev.tsv");
    const auto fetched = fetch_dataset(dataset, options_);
    EXPECT_EQ(fetched[0].url, server_.url("/mirror/goemotions/dev.tsv"));
    EXPECT_EQ(on_disk("goemotions/dev.tsv"), files_["/mirror/goemotions/dev.tsv"]);
    EXPECT_EQ(requests(), (std::vector<std::string>{"/mirror/goemotions/dev.tsv"}));
}

// No published checksum: the file still lands atomically, its digest is reported, and an existing
// copy is kept (there is nothing to verify it against).
TEST_F(Fetch, AnUnpinnedFileIsFetchedAndItsDigestReported) {
    const RemoteDataset dataset{"test", "Test", "MIT", "", {file("x/two.txt", "/a/two.txt", /*pinned=*/false)}, {}};
    std::vector<std::string> lines;
    options_.log = [&](const std::string& line) { lines.push_back(line); };
    const auto fetched = fetch_dataset(dataset, options_);
    EXPECT_FALSE(fetched[0].pinned);
    EXPECT_EQ(fetched[0].sha256, net::sha256_hex(files_["/a/two.txt"]));
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_NE(lines[0].find("no published sha256 to check; this copy's is " + fetched[0].sha256), std::string::npos) << lines[0];
    files_["/a/two.txt"] = "changed upstream";
    EXPECT_EQ(fetch_dataset(dataset, options_)[0].outcome, net::DownloadOutcome::AlreadyPresent);
    EXPECT_EQ(on_disk("x/two.txt"), payload(3'000, 2));
}

// The real catalog's EmpatheticDialogues entry pointed at the local server: the tarball's three
// CSVs (here the bundled samples) land where `kindred data prepare --ed` reads them, and load.
TEST_F(Fetch, TheEmpatheticDialoguesTarballIsUnpackedForPrepare) {
    std::vector<std::pair<std::string, std::string>> members;
    for (const char* split : {"train", "valid", "test"})
        members.emplace_back(fmt::format("empatheticdialogues/{}.csv", split),
                             read_all(source_path(fmt::format("data/samples/empatheticdialogues/{}.csv", split))));
    members.emplace_back("empatheticdialogues/README.txt", "ignored");
    files_["/ed.tar.gz"] = tar_gz(members, dir_ / "ed.tar.gz");
    RemoteDataset ed = find_dataset("ed");
    ed.files[0].url = server_.url("/ed.tar.gz");
    ed.files[0].sha256 = net::sha256_hex(files_["/ed.tar.gz"]);
    std::vector<std::string> lines;
    options_.log = [&](const std::string& line) { lines.push_back(line); };
    fetch_dataset(ed, options_);
    const fs::path folder = fs::path(options_.dir) / "empatheticdialogues";
    for (const auto& [member, bytes] : members) {
        if (member == "empatheticdialogues/README.txt") continue;
        EXPECT_EQ(read_all((fs::path(options_.dir) / member).string()), bytes) << member;
    }
    EXPECT_FALSE(fs::exists(folder / "README.txt"));
    EXPECT_EQ(lines.size(), 4u);  // the download and three extractions
    SourceStats stats;
    std::size_t examples = 0;
    load_empathetic_dialogues(folder.string(), LoadOptions{}, stats, [&](Example&&) { ++examples; });
    EXPECT_EQ(examples, 88u);  // data/samples/README.md: 64 + 12 + 12 conversations

    server_.stop();  // offline, and nothing left to extract
    lines.clear();
    fetch_dataset(ed, options_);
    EXPECT_EQ(lines.size(), 1u);
}

// The pins of the catalog are the digests of the real releases kept in ../shared (byte-identical
// copies, ../shared/README.md); every URL is https and every path stays inside the fetch folder.
TEST(FetchCatalog, PinsMatchTheRealFilesAndPathsStayInside) {
    const std::map<std::string, std::string> shared = {
        {"goemotions/train.tsv", "goemotions/train.tsv"},
        {"goemotions/dev.tsv", "goemotions/dev.tsv"},
        {"goemotions/emotions.txt", "goemotions/emotions.txt"},
        {"eqbench-v2/eq_bench_v2_questions_171.json", "eqbench-v2/eq_bench_v2_questions_171.json"},
        {"eqbench-v2/LICENSE", "eqbench-v2/LICENSE"},
    };
    std::set<std::string> paths;
    std::size_t checked = 0, unpinned = 0;
    for (const auto& dataset : dataset_catalog()) {
        EXPECT_EQ(&find_dataset(dataset.name), &dataset);
        for (const auto& file : dataset.files) {
            SCOPED_TRACE(file.path);
            EXPECT_TRUE(paths.insert(file.path).second);
            EXPECT_EQ(file.url.rfind("https://", 0), 0u);
            EXPECT_FALSE(fs::path(file.path).is_absolute());
            EXPECT_EQ(file.path.find(".."), std::string::npos);
            EXPECT_TRUE(file.sha256.empty() || file.sha256.size() == 64);
            unpinned += file.sha256.empty();
            std::string local = shared.count(file.path) ? shared.at(file.path) : "";
            if (file.path.rfind("eqbench3/", 0) == 0) local = file.path;
            if (local.empty()) continue;
            EXPECT_EQ(net::sha256_file(kindred::testing::shared_path(local)), file.sha256);
            ++checked;
        }
    }
    EXPECT_EQ(checked, 5u + 13u);
    EXPECT_EQ(unpinned, 1u);  // ESConv.json (docs/data.md)
    try {
        find_dataset("imdb");
        FAIL();
    } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find("known: ed, esconv, goemotions, eqbench2, eqbench3"), std::string::npos)
            << error.what();
    }
}

TEST(ExtractMembers, MalformedArchivesAreRefusedNamingTheFile) {
    const ScratchDir scratch{"kindred-tar-corpus"};
    const std::vector<std::pair<std::string, std::string>> members = {
        {"empatheticdialogues/train.csv", scratch / "train.csv"},
        {"empatheticdialogues/valid.csv", scratch / "valid.csv"},
        {"empatheticdialogues/test.csv", scratch / "test.csv"}};
    kindred::testing::expect_every_corpus_file_refused(
        source_path("tests/corpus/tar-malformed"),
        [&](const fs::path& file, const std::string&) { extract_members(file.string(), members, 1u << 20); });
}

}  // namespace
}  // namespace kindred::data
