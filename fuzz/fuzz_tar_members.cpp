// fuzz/fuzz_tar_members.cpp — libFuzzer entry for data::extract_members, the unpacker `kindred data
// fetch` runs on the EmpatheticDialogues tarball: any byte string, as an archive asked for the three
// CSV members (1 MiB limit each), must extract or throw kindred::Error; anything else (a crash, a
// sanitizer report, another exception, a hang, a write outside the output folder) is a bug.
// Seed corpus: tests/corpus/tar-malformed (tools/make_malformed_tar.py).
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "data/fetch.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    // libarchive reads files; the input goes to this process's own scratch folder first.
    static const std::filesystem::path root =
        std::filesystem::temp_directory_path() / ("fuzz_tar_members." + std::to_string(::getpid()));
    std::filesystem::remove_all(root);
    std::filesystem::create_directories(root / "out");
    const std::string archive = (root / "input.tar.gz").string();
    std::ofstream(archive, std::ios::binary).write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    const std::vector<std::pair<std::string, std::string>> members = {
        {"empatheticdialogues/train.csv", (root / "out/train.csv").string()},
        {"empatheticdialogues/valid.csv", (root / "out/valid.csv").string()},
        {"empatheticdialogues/test.csv", (root / "out/test.csv").string()}};
    try {
        kindred::data::extract_members(archive, members, 1u << 20);
    } catch (const kindred::Error&) {
    }
    // Nothing may appear but the three named outputs.
    for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
        const auto name = entry.path().filename().string();
        if (name != "input.tar.gz" && name != "out" && name != "train.csv" && name != "valid.csv" && name != "test.csv")
            __builtin_trap();
    }
    return 0;
}
