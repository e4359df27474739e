// data/fetch.h — `kindred data fetch`: the datasets and benchmark files Kindred reads but does not
// ship, downloaded from where their authors publish them, each pinned by its sha256 (docs/data.md,
// "Fetching"), into the layout `kindred data prepare`, `kindred eval` and the demo read:
//
//   DIR/empatheticdialogues/  empatheticdialogues.tar.gz and its train.csv, valid.csv, test.csv
//   DIR/esconv/               ESConv.json
//   DIR/goemotions/           train.tsv, dev.tsv, test.tsv, emotions.txt
//   DIR/eqbench-v2/           eq_bench_v2_questions_171.json, LICENSE
//   DIR/eqbench3/             the 12 data files of EQ-Bench 3, LICENSE
//
// Downloads go through net::download_file: resumable (a `.part` file continued with an HTTP Range
// request, also by the next run), verified before they are renamed into place (nothing
// half-written or unverified is ever at the final path), retried with backoff, and skipped without
// any network access when the file is already there with the right digest (offline once cached).
// A file without an established checksum (ESConv.json: see docs/data.md) is still downloaded
// atomically; its digest is reported so it can be pinned, and an existing copy is used as it is.
//
// Mirrors: with a base URL (--base-url, or KINDRED_DATA_MIRROR) every file is fetched from
// <base>/<its path under DIR>, so serving a fetched DIR over HTTP makes a mirror. Pins still apply.
//
// The EmpatheticDialogues tarball is unpacked with libarchive, extracting only its three CSV members
// (by name, to names chosen here: an archive cannot write anywhere else), each atomically and
// bounded in size; a member already extracted is kept.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "net/http.h"

namespace kindred::data {

struct RemoteFile {
    std::string path;    // under the fetch folder and under a mirror, e.g. "goemotions/train.tsv"
    std::string url;     // the official location
    std::string sha256;  // lowercase hex; empty: no published checksum could be established
};

// An archive member extracted to a file of the fetch folder.
struct ArchiveMember {
    std::string archive;  // a RemoteFile::path of the same dataset
    std::string member;   // its name inside the archive
    std::string path;     // where it is written, under the fetch folder
};

struct RemoteDataset {
    std::string name;     // the command-line name: ed, esconv, goemotions, eqbench2, eqbench3
    std::string title;    // "EmpatheticDialogues (Rashkin et al., 2019)"
    std::string license;
    std::string prepare;  // what reads it, e.g. "kindred data prepare --ed DIR/empatheticdialogues"
    std::vector<RemoteFile> files;
    std::vector<ArchiveMember> unpack;
};

// The official releases (docs/data.md lists them with their provenance).
std::span<const RemoteDataset> dataset_catalog();
// The catalog entry named `name`; Error listing the names for any other.
const RemoteDataset& find_dataset(const std::string& name);

struct FetchOptions {
    std::string dir;       // the fetch folder, created when missing
    std::string base_url;  // empty: the official URLs; else a mirror as described above
    net::DownloadOptions download;  // retries, timeouts (its sha256 and progress are set per file)
    // Called with each file's bytes done and total (-1 when unknown) as they arrive.
    std::function<void(const RemoteFile&, std::int64_t done, std::int64_t total)> progress;
    std::function<void(const std::string&)> log;  // one line per event worth telling the user
};

struct FetchedFile {
    std::string path;  // on disk
    std::string url;   // where it came from (or would have)
    net::DownloadOutcome outcome = net::DownloadOutcome::AlreadyPresent;
    std::string sha256;  // of the file on disk
    bool pinned = true;  // false: its digest is not checked against a published one
};

// Fetches every file of `dataset` into options.dir and unpacks its archive members. Throws Error
// naming the URL (and the path) on an HTTP failure, exhausted retries or a checksum mismatch, and
// naming the archive and member when one is missing, not a plain file or too large.
std::vector<FetchedFile> fetch_dataset(const RemoteDataset& dataset, const FetchOptions& options);

// The URL `file` is fetched from: its own, or base_url + "/" + its path.
std::string fetch_url(const RemoteFile& file, const std::string& base_url);

// Extracts the named members of a (gzip-compressed or plain) tar archive to their paths, each
// written atomically; members not named are skipped. Throws Error naming the archive and member
// when a named member is absent, not a regular file or larger than max_member_bytes, or when the
// archive is unreadable.
void extract_members(const std::string& archive, std::span<const std::pair<std::string, std::string>> members,
                     std::uint64_t max_member_bytes);

}  // namespace kindred::data
