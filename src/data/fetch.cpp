// data/fetch.cpp — the catalog of official releases, their download and unpacking (see fetch.h).
#include "data/fetch.h"

#include <archive.h>
#include <archive_entry.h>

#include <algorithm>
#include <filesystem>
#include <memory>

#include <fmt/format.h>

#include "core/atomic_file.h"
#include "core/error.h"

namespace kindred::data {
namespace {

namespace fs = std::filesystem;

// Pinned commits: a branch can move, a commit cannot (the digests below are of these versions).
constexpr const char* kEqBench2 = "https://raw.githubusercontent.com/EQ-bench/EQ-Bench/d28c60c514fe6667dc5818114ed10088f91f09f3";
constexpr const char* kEqBench3 = "https://raw.githubusercontent.com/EQ-bench/eqbench3/3c21bcc514bd43f93a00a5cf9c630aa3eb73a380";
constexpr const char* kEsconv =
    "https://raw.githubusercontent.com/thu-coai/Emotional-Support-Conversation/f262d062ad74cb39b17ea476facc81568ddcba24";
// google-research/google-research is a monorepo too large to pin here by commit; the files have
// not changed since the 2020 release and their digests (also in Hugging Face's go_emotions
// dataset_infos.json) catch any change.
constexpr const char* kGoEmotions = "https://raw.githubusercontent.com/google-research/google-research/master/goemotions/data";

// The three CSVs of ParlAI's tarball (the layout its EmpatheticDialogues teacher reads).
constexpr std::uint64_t kMaxMemberBytes = 1ull << 30;

std::vector<RemoteDataset> make_catalog() {
    std::vector<RemoteDataset> catalog;
    catalog.push_back({"ed", "EmpatheticDialogues (Rashkin et al., 2019)", "CC BY-NC 4.0",
                       "kindred data prepare --ed DIR/empatheticdialogues",
                       {{"empatheticdialogues/empatheticdialogues.tar.gz",
                         "https://dl.fbaipublicfiles.com/parlai/empatheticdialogues/empatheticdialogues.tar.gz",
                         "56f234d77b7dd1f005fd365bb17769cfe346c3c84295b69bc069c8ccb83be03d"}},
                       {}});
    for (const char* split : {"train", "valid", "test"})
        catalog.back().unpack.push_back({"empatheticdialogues/empatheticdialogues.tar.gz",
                                         fmt::format("empatheticdialogues/{}.csv", split),
                                         fmt::format("empatheticdialogues/{}.csv", split)});
    // No sha256 of ESConv.json is published anywhere reachable when this was written, and the file
    // (over 4 MiB) could not be read here to compute one: it is fetched unpinned (docs/data.md).
    catalog.push_back({"esconv", "ESConv (Liu et al., 2021)", "CC BY-NC 4.0",
                       "kindred data prepare --esconv DIR/esconv/ESConv.json",
                       {{"esconv/ESConv.json", fmt::format("{}/ESConv.json", kEsconv), ""}},
                       {}});
    catalog.push_back({"goemotions", "GoEmotions (Demszky et al., 2020)", "Apache-2.0",
                       "kindred data prepare --goemotions DIR/goemotions",
                       {{"goemotions/train.tsv", fmt::format("{}/train.tsv", kGoEmotions),
                         "1c254a142be5c00e80d819b9ae1bbd36d94b2eeb8f4b1271846508d57e57d9c5"},
                        {"goemotions/dev.tsv", fmt::format("{}/dev.tsv", kGoEmotions),
                         "575489c079c9de1097062a01738f998590d6b7ead66dd1c9fd1d2ba01fd8bc62"},
                        {"goemotions/test.tsv", fmt::format("{}/test.tsv", kGoEmotions),
                         "0587b2dd8b27b97352adbfc3fb083d46005c8946657fdc2b1ca8b1cc7f1f8be4"},
                        {"goemotions/emotions.txt", fmt::format("{}/emotions.txt", kGoEmotions),
                         "45c3ef86782d2a4d7fedcd6d8c111aa0d0e94720689bd164fac94fefb4495a89"}},
                       {}});
    catalog.push_back({"eqbench2", "EQ-Bench v2 questions (Paech, 2023)", "MIT",
                       "kindred eval eqbench2 --questions DIR/eqbench-v2/eq_bench_v2_questions_171.json",
                       {{"eqbench-v2/eq_bench_v2_questions_171.json",
                         fmt::format("{}/data/eq_bench_v2_questions_171.json", kEqBench2),
                         "b4e9bf11df7e88bc12381efab18565f8b0ff0d4743fe8708c4482df91c4e617a"},
                        {"eqbench-v2/LICENSE", fmt::format("{}/LICENSE", kEqBench2),
                         "7a6f28bb003e68da258abb850aff07cc38da1a7618beaf4b080762b2aa86ba09"}},
                       {}});
    const std::pair<const char*, const char*> eqbench3[] = {
        {"debrief_prompt.txt", "5f63279c27e444b7f8b154a190f9ce10a79d4d9cebb556fae97c70346f52c6fa"},
        {"pairwise_prompt_eqbench3.txt", "6b0be4d94f089a53e207ef4d916f078bae72609c9f2a4101e0ee1bb33d83b3fd"},
        {"pairwise_prompt_eqbench3_analysis.txt", "9ad372bc6feac6bdbd5c0e7c6f0adc01c50fcbeff54edd0721d0bbc76f675bf4"},
        {"rubric_scoring_criteria.txt", "11fefca1f467bbabfab8618731338aeeb167141c80756bf2d040d000d8318727"},
        {"rubric_scoring_criteria_analysis.txt", "a83e91be22a4233c364c7cd3e611702360af94d045b170b6a88848dabf9d4d21"},
        {"rubric_scoring_prompt.txt", "423612b81594601548bf4625ca32c4400637fb3876171a153f3067cbcc0ec939"},
        {"rubric_scoring_prompt_analysis.txt", "78927fbb695c5c5374ce23ce39a1add4033abc5c99870e6be9747368df0e3f96"},
        {"scenario_master_prompt.txt", "8f76e06423fa6110e2afe9e88561b3511fc97a68dcd1aa1a4459c7af6424785c"},
        {"scenario_master_prompt_analysis.txt", "b5773ced14ab7fc6d96ae1d6a0da981d7797804359a38d4992ad530edb3915e9"},
        {"scenario_master_prompt_message_drafting.txt", "719dc595c4fb3127a0347bbd90ceb2af7bdb5f86a0218df3cc51888a31b3f133"},
        {"scenario_notes.txt", "d66a4463bdd45d2a32dac04afcf448346fa4d9cb20e2dbd50c424c86055e2ff9"},
        {"scenario_prompts.txt", "736f67a8f18ef5bba1f4eca89e60daef1a26ac58c8fea956560726357da39cae"},
    };
    catalog.push_back({"eqbench3", "EQ-Bench 3 data files (Paech, 2025)", "MIT", "the EQ-Bench 3 runner (DIR/eqbench3)",
                       {{"eqbench3/LICENSE", fmt::format("{}/LICENSE", kEqBench3),
                         "6406f413f884ffcd5de6c28d77ccc44b62764a6f5fb912de93dee1f0bb2439be"}},
                       {}});
    for (const auto& [name, sha256] : eqbench3)
        catalog.back().files.push_back({fmt::format("eqbench3/{}", name), fmt::format("{}/data/{}", kEqBench3, name), sha256});
    return catalog;
}

// A tar member name without a leading "./" (some archivers write one) or the trailing "/" of a
// folder, so a folder under a wanted name is found, and refused as not a file.
std::string member_name(const char* raw) {
    std::string name = raw == nullptr ? std::string() : std::string(raw);
    while (name.rfind("./", 0) == 0) name.erase(0, 2);
    while (!name.empty() && name.back() == '/') name.pop_back();
    return name;
}

}  // namespace

std::span<const RemoteDataset> dataset_catalog() {
    static const std::vector<RemoteDataset> catalog = make_catalog();
    return catalog;
}

const RemoteDataset& find_dataset(const std::string& name) {
    std::vector<std::string> names;
    for (const auto& dataset : dataset_catalog()) {
        if (dataset.name == name) return dataset;
        names.push_back(dataset.name);
    }
    fail("unknown dataset '{}' (known: {}, or all)", name, fmt::join(names, ", "));
}

std::string fetch_url(const RemoteFile& file, const std::string& base_url) {
    if (base_url.empty()) return file.url;
    std::string base = base_url;
    while (!base.empty() && base.back() == '/') base.pop_back();
    return base + "/" + file.path;
}

void extract_members(const std::string& archive, std::span<const std::pair<std::string, std::string>> members,
                     std::uint64_t max_member_bytes) {
    const std::unique_ptr<struct archive, decltype(&archive_read_free)> reader(archive_read_new(), archive_read_free);
    if (!reader) fail("{}: cannot allocate an archive reader", archive);
    archive_read_support_filter_gzip(reader.get());
    archive_read_support_format_tar(reader.get());
    if (archive_read_open_filename(reader.get(), archive.c_str(), 64 * 1024) != ARCHIVE_OK)
        fail("{}: not a readable tar archive: {}", archive, archive_error_string(reader.get()));
    std::vector<bool> found(members.size(), false);
    for (;;) {
        struct archive_entry* entry = nullptr;
        const int status = archive_read_next_header(reader.get(), &entry);
        if (status == ARCHIVE_EOF) break;
        if (status != ARCHIVE_OK && status != ARCHIVE_WARN)
            fail("{}: corrupt tar archive: {}", archive, archive_error_string(reader.get()));
        const std::string name = member_name(archive_entry_pathname(entry));
        const auto wanted = std::find_if(members.begin(), members.end(), [&](const auto& m) { return m.first == name; });
        if (wanted == members.end()) continue;  // archive_read_next_header skips its data
        const auto index = static_cast<std::size_t>(wanted - members.begin());
        if (archive_entry_filetype(entry) != AE_IFREG) fail("{}: member '{}' is not a regular file", archive, name);
        if (archive_entry_size_is_set(entry) != 0 && static_cast<std::uint64_t>(archive_entry_size(entry)) > max_member_bytes)
            fail("{}: member '{}' holds {} bytes, more than the {} allowed", archive, name, archive_entry_size(entry),
                 max_member_bytes);
        fs::create_directories(fs::path(wanted->second).parent_path());
        write_file_atomically(wanted->second, [&](const ByteSink& sink) {
            std::uint64_t written = 0;
            std::vector<std::uint8_t> buffer(64 * 1024);
            for (;;) {
                const la_ssize_t n = archive_read_data(reader.get(), buffer.data(), buffer.size());
                if (n < 0) fail("{}: member '{}': {}", archive, name, archive_error_string(reader.get()));
                if (n == 0) break;
                written += static_cast<std::uint64_t>(n);
                if (written > max_member_bytes)
                    fail("{}: member '{}' is larger than the {} bytes allowed", archive, name, max_member_bytes);
                sink({buffer.data(), static_cast<std::size_t>(n)});
            }
        });
        found[index] = true;
    }
    for (std::size_t i = 0; i < members.size(); ++i)
        if (!found[i]) fail("{}: member '{}' is missing from the archive", archive, members[i].first);
}

std::vector<FetchedFile> fetch_dataset(const RemoteDataset& dataset, const FetchOptions& options) {
    if (options.dir.empty()) fail("data fetch: no folder given (--dir)");
    const fs::path root(options.dir);
    const auto log = [&](const std::string& line) {
        if (options.log) options.log(line);
    };
    std::vector<FetchedFile> out;
    for (const RemoteFile& file : dataset.files) {
        FetchedFile fetched;
        fetched.path = (root / file.path).string();
        fetched.url = fetch_url(file, options.base_url);
        fetched.pinned = !file.sha256.empty();
        net::DownloadOptions download = options.download;
        download.sha256 = file.sha256;
        if (options.progress)
            download.progress = [&](std::int64_t done, std::int64_t total) { options.progress(file, done, total); };
        fetched.outcome = net::download_file(fetched.url, fetched.path, download);
        fetched.sha256 = fetched.pinned ? file.sha256 : net::sha256_file(fetched.path);
        const char* how = fetched.outcome == net::DownloadOutcome::AlreadyPresent ? "present"
                          : fetched.outcome == net::DownloadOutcome::Resumed      ? "resumed"
                                                                                  : "downloaded";
        log(fmt::format("{}: {} {}{}", dataset.name, fetched.path, how,
                        fetched.pinned ? " (sha256 verified)"
                                       : fmt::format(" (no published sha256 to check; this copy's is {})", fetched.sha256)));
        out.push_back(std::move(fetched));
    }
    // Archives: every member not yet extracted, in one pass per archive.
    std::vector<std::string> archives;
    for (const auto& member : dataset.unpack)
        if (std::find(archives.begin(), archives.end(), member.archive) == archives.end()) archives.push_back(member.archive);
    for (const auto& archive : archives) {
        std::vector<std::pair<std::string, std::string>> pending;
        for (const auto& member : dataset.unpack)
            if (member.archive == archive && !fs::exists(root / member.path))
                pending.emplace_back(member.member, (root / member.path).string());
        if (pending.empty()) continue;
        extract_members((root / archive).string(), pending, kMaxMemberBytes);
        for (const auto& [member, path] : pending) log(fmt::format("{}: {} extracted", dataset.name, path));
    }
    return out;
}

}  // namespace kindred::data
