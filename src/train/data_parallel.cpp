// train/data_parallel.cpp — see data_parallel.h.
#include "train/data_parallel.h"

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <vector>

#include <fmt/format.h>

#include "core/error.h"
#include "data/split.h"

namespace kindred::train {
namespace {

template <typename T>
void sum_in_buckets(dist::Communicator* communicator, std::span<T> values) {
    if (communicator == nullptr || communicator->size() == 1) return;
    for (std::size_t first = 0; first < values.size(); first += DataParallel::bucket_floats)
        communicator->all_reduce_sum(values.subspan(first, std::min(DataParallel::bucket_floats, values.size() - first)));
}

}  // namespace

void DataParallel::sum(std::span<float> values) const { sum_in_buckets(communicator_, values); }
void DataParallel::sum(std::span<double> values) const { sum_in_buckets(communicator_, values); }

void DataParallel::require_same(const std::string& what, const std::string& value) const {
    if (active()) communicator_->require_same(what, value);
}

std::string DataParallel::root_value(std::string value) const {
    if (!active()) return value;
    std::uint64_t size = value.size();
    communicator_->broadcast({reinterpret_cast<std::uint8_t*>(&size), sizeof size}, 0);
    value.resize(static_cast<std::size_t>(size));
    communicator_->broadcast({reinterpret_cast<std::uint8_t*>(value.data()), value.size()}, 0);
    return value;
}

void DataParallel::barrier() const {
    if (active()) communicator_->barrier();
}

std::string file_fingerprint(const std::string& path) {
    constexpr std::uintmax_t span = std::uintmax_t{4} << 20;
    std::error_code error;
    const std::uintmax_t size = std::filesystem::file_size(path, error);
    if (error) fail("{}: cannot read its size: {}", path, error.message());
    std::ifstream file(path, std::ios::binary);
    if (!file) fail("{}: cannot open", path);
    std::string bytes;
    const auto read_at = [&](std::uintmax_t offset, std::uintmax_t count) {
        std::string part(static_cast<std::size_t>(count), '\0');
        file.seekg(static_cast<std::streamoff>(offset));
        if (!file.read(part.data(), static_cast<std::streamsize>(count))) fail("{}: read failed at byte {}", path, offset);
        bytes += part;
    };
    read_at(0, std::min(size, span));
    if (size > span) read_at(size - std::min(size - span, span), std::min(size - span, span));
    return fmt::format("{} bytes, fnv1a64 {:016x}", size, data::fnv1a64(bytes));
}

std::string examples_fingerprint(std::span<const TokenizedExample> examples) {
    std::string bytes;
    const auto add = [&bytes](const auto& values) {
        const auto size = values.size();
        bytes.append(reinterpret_cast<const char*>(&size), sizeof size);
        bytes.append(reinterpret_cast<const char*>(values.data()), values.size() * sizeof values[0]);
    };
    for (const TokenizedExample& example : examples) {
        add(example.tokens);
        add(example.targets);
        add(example.teacher_tokens);
        add(example.teacher_positions);
        for (const HeadSite& site : example.sites) {
            add(site.emotions);
            add(std::array<std::int32_t, 3>{site.position, site.strategy, site.has_va ? 1 : 0});
            add(std::array<float, 2>{site.valence, site.arousal});
        }
    }
    return fmt::format("{} examples, fnv1a64 {:016x}", examples.size(), data::fnv1a64(bytes));
}

}  // namespace kindred::train
