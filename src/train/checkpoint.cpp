#include "train/checkpoint.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json.h"
#include "core/mapped_file.h"
#include "formats/safetensors.h"

namespace kindred::train {
namespace fs = std::filesystem;
namespace {

constexpr const char* kFormat = "kindred-checkpoint";
constexpr int kVersion = 1;
constexpr const char* kAdapterFile = "adapter.safetensors";
constexpr const char* kOptimizerFile = "optimizer.safetensors";
constexpr const char* kConfigFile = "config.yaml";
constexpr const char* kStateFile = "state.json";
constexpr const char* kLatestFile = "latest";
constexpr const char* kTempPrefix = ".tmp-";
// Adapters of the models Kindred tunes are megabytes; this only stops a wrong file from being read whole.
constexpr std::uintmax_t kMaxFileBytes = 16ull << 30;
constexpr std::uintmax_t kMaxStateBytes = 64ull << 20;

// FNV-1a 64: catches the bit flips and torn writes a size check misses; not a security hash.
std::uint64_t fnv1a64(std::span<const std::uint8_t> bytes) {
    std::uint64_t hash = 0xcbf29ce484222325ull;
    for (const auto byte : bytes) {
        hash ^= byte;
        hash *= 0x100000001b3ull;
    }
    return hash;
}

std::span<const std::uint8_t> as_bytes(std::string_view text) {
    return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

// The step of a "step-NNNNNN" name; nullopt for anything else.
std::optional<std::int64_t> parse_dir_name(std::string_view name) {
    constexpr std::string_view prefix = "step-";
    if (!name.starts_with(prefix) || name.size() == prefix.size()) return std::nullopt;
    const auto digits = name.substr(prefix.size());
    std::int64_t step = 0;
    const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), step);
    if (error != std::errc{} || end != digits.data() + digits.size() || checkpoint_dir_name(step) != name)
        return std::nullopt;
    return step;
}

std::uint64_t element_count(const std::vector<std::uint64_t>& shape) {
    std::uint64_t count = 1;
    for (const auto dim : shape) {
        if (dim != 0 && count > std::numeric_limits<std::uint64_t>::max() / dim) fail("tensor shape overflows");
        count *= dim;
    }
    return count;
}

void check_tensors(const std::vector<NamedTensor>& tensors, const std::vector<NamedTensor>& adapter, const char* what) {
    if (tensors.size() != adapter.size())
        fail("checkpoint: {} has {} tensors for {} adapter tensors", what, tensors.size(), adapter.size());
    for (std::size_t i = 0; i < tensors.size(); ++i) {
        if (tensors[i].name != adapter[i].name || tensors[i].shape != adapter[i].shape)
            fail("checkpoint: {} tensor {} ('{}') does not mirror adapter tensor '{}'", what, i, tensors[i].name,
                 adapter[i].name);
    }
}

void check_state(const TrainState& state) {
    if (state.step < 0 || state.adam_step < 0) fail("checkpoint: step {} / adam_step {} is negative", state.step, state.adam_step);
    std::set<std::string, std::less<>> names;
    for (const auto& tensor : state.adapter) {
        if (tensor.name.empty()) fail("checkpoint: an adapter tensor has an empty name");
        if (!names.insert(tensor.name).second) fail("checkpoint: adapter tensor '{}' appears twice", tensor.name);
        if (element_count(tensor.shape) != tensor.values.size())
            fail("checkpoint: adapter tensor '{}' has {} values for its shape", tensor.name, tensor.values.size());
    }
    check_tensors(state.adam_m, state.adapter, "adam_m");
    check_tensors(state.adam_v, state.adapter, "adam_v");
    validate(state.schedule);
}

std::vector<std::uint8_t> serialize_tensors(std::span<const NamedTensor* const> tensors,
                                            std::span<const std::string> names) {
    safetensors::Writer writer;
    for (std::size_t i = 0; i < tensors.size(); ++i) {
        const auto& values = tensors[i]->values;
        writer.add_tensor(names[i], DType::F32, tensors[i]->shape,
                          {reinterpret_cast<const std::uint8_t*>(values.data()), values.size() * sizeof(float)});
    }
    return writer.serialize();
}

const char* decay_name(LrDecay decay) { return decay == LrDecay::Constant ? "constant" : "cosine"; }

// Typed reads of state.json that name the key in their Error.
struct StateReader {
    const nlohmann::json& root;
    const std::string& where;

    const nlohmann::json& at(const nlohmann::json& object, const char* key) const {
        if (!object.is_object()) fail("{}: expected an object holding '{}'", where, key);
        const auto it = object.find(key);
        if (it == object.end()) fail("{}: missing '{}'", where, key);
        return *it;
    }
    std::int64_t integer(const nlohmann::json& object, const char* key) const {
        const auto& value = at(object, key);
        if (!value.is_number_integer()) fail("{}: '{}' must be an integer", where, key);
        return value.get<std::int64_t>();
    }
    std::uint64_t unsigned_integer(const nlohmann::json& object, const char* key) const {
        const auto& value = at(object, key);
        if (!value.is_number_unsigned()) fail("{}: '{}' must be a non-negative integer", where, key);
        return value.get<std::uint64_t>();
    }
    double number(const nlohmann::json& object, const char* key) const {
        const auto& value = at(object, key);
        if (!value.is_number()) fail("{}: '{}' must be a number", where, key);
        return value.get<double>();
    }
    std::string string(const nlohmann::json& object, const char* key) const {
        const auto& value = at(object, key);
        if (!value.is_string()) fail("{}: '{}' must be a string", where, key);
        return value.get<std::string>();
    }
};

// Copies tensor `name` of `file` out as F32 with the expected shape.
NamedTensor read_tensor(const safetensors::File& file, const std::string& name, const std::string& stored_name,
                        const std::vector<std::uint64_t>& shape) {
    const auto* info = file.find(stored_name);
    if (info == nullptr) fail("{}: tensor '{}' is missing", file.name(), stored_name);
    if (info->type != DType::F32) fail("{}: tensor '{}' is not F32", file.name(), stored_name);
    if (info->shape != shape) fail("{}: tensor '{}' has another shape than state.json records", file.name(), stored_name);
    NamedTensor tensor{name, shape, std::vector<float>(info->element_count())};
    std::memcpy(tensor.values.data(), info->data.data(), info->data.size());
    return tensor;
}

// std::filesystem reports failures as filesystem_error; the project's callers expect Error.
template <typename Body>
auto with_filesystem_errors(const std::string& root, Body&& body) {
    try {
        return body();
    } catch (const fs::filesystem_error& e) {
        fail("{}: {}", root, e.what());
    }
}

}  // namespace

std::string checkpoint_dir_name(std::int64_t step) {
    if (step < 0) fail("checkpoint: step {} is negative", step);
    return fmt::format("step-{:06d}", step);
}

namespace {

std::string save_unchecked(const std::string& root, const TrainState& state, std::size_t keep_last) {
    check_state(state);
    const std::string name = checkpoint_dir_name(state.step);
    const fs::path root_path(root);
    const fs::path final_path = root_path / name;
    const fs::path temp_path = root_path / (kTempPrefix + name);
    std::error_code error;
    fs::create_directories(root_path, error);
    if (error) fail("{}: cannot create the checkpoint folder: {}", root, error.message());

    // Leftovers of a writer killed mid-save are never loadable; clear them before writing anew.
    for (const auto& entry : fs::directory_iterator(root_path)) {
        if (entry.path().filename().string().starts_with(kTempPrefix)) fs::remove_all(entry.path());
    }
    const fs::path latest_path = root_path / kLatestFile;
    fs::create_directory(temp_path, error);
    if (error) fail("{}: cannot create {}: {}", root, temp_path.string(), error.message());

    std::vector<const NamedTensor*> adapter, moments;
    std::vector<std::string> adapter_names, moment_names;
    nlohmann::ordered_json layout = nlohmann::ordered_json::array();
    for (const auto& tensor : state.adapter) {
        adapter.push_back(&tensor);
        adapter_names.push_back(tensor.name);
        layout.push_back({{"name", tensor.name}, {"shape", tensor.shape}});
    }
    for (const auto* set : {&state.adam_m, &state.adam_v}) {
        const char* prefix = set == &state.adam_m ? "m." : "v.";
        for (const auto& tensor : *set) {
            moments.push_back(&tensor);
            moment_names.push_back(prefix + tensor.name);
        }
    }
    nlohmann::ordered_json files = nlohmann::ordered_json::object();
    const auto write = [&](const char* file, std::span<const std::uint8_t> bytes) {
        write_file_atomically((temp_path / file).string(), bytes);
        files[file] = {{"bytes", bytes.size()}, {"fnv1a64", fmt::format("{:016x}", fnv1a64(bytes))}};
    };
    write(kAdapterFile, serialize_tensors(adapter, adapter_names));
    write(kOptimizerFile, serialize_tensors(moments, moment_names));
    write(kConfigFile, as_bytes(state.config_text));

    const auto& s = state.schedule;
    const nlohmann::ordered_json json = {
        {"format", kFormat},
        {"version", kVersion},
        {"step", state.step},
        {"adam_step", state.adam_step},
        {"rng", state.rng},
        {"data", {{"epoch", state.data.epoch}, {"index", state.data.index}}},
        {"schedule",
         {{"peak_lr", s.peak_lr},
          {"warmup_steps", s.warmup_steps},
          {"total_steps", s.total_steps},
          {"decay", decay_name(s.decay)},
          {"min_lr_ratio", s.min_lr_ratio},
          {"cycles", s.cycles}}},
        {"adapter", std::move(layout)},
        {"files", std::move(files)},
    };
    write_file_atomically((temp_path / kStateFile).string(), std::string_view(json.dump(2) + "\n"));
    fsync_directory(temp_path.string());

    // The same step can exist already: a complete one `latest` never reached (killed in between),
    // or a broken one a resumed run fell back from. It is moved aside, not deleted in place, so it
    // never sits half-removed under its real name; until the rename below, loading falls back.
    const fs::path replaced_path = root_path / (std::string(kTempPrefix) + "old-" + name);
    const bool replacing = fs::exists(final_path);
    if (replacing) fs::rename(final_path, replaced_path);
    fs::rename(temp_path, final_path, error);
    if (error) fail("{}: cannot move the new checkpoint into place: {}", final_path.string(), error.message());
    fsync_directory(root);
    write_file_atomically(latest_path.string(), std::string_view(name + "\n"));
    fsync_directory(root);
    if (replacing) fs::remove_all(replaced_path);

    if (keep_last > 0) {
        std::vector<std::pair<std::int64_t, fs::path>> steps;
        for (const auto& entry : fs::directory_iterator(root_path)) {
            const auto step = parse_dir_name(entry.path().filename().string());
            if (step && entry.is_directory() && *step != state.step) steps.emplace_back(*step, entry.path());
        }
        std::sort(steps.begin(), steps.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
        for (std::size_t i = keep_last - 1; i < steps.size(); ++i) fs::remove_all(steps[i].second);
    }
    return final_path.string();
}

}  // namespace

std::string save_checkpoint(const std::string& root, const TrainState& state, std::size_t keep_last) {
    return with_filesystem_errors(root, [&] { return save_unchecked(root, state, keep_last); });
}

TrainState load_checkpoint(const std::string& directory) {
    const fs::path dir(directory);
    const std::string state_path = (dir / kStateFile).string();
    const nlohmann::json root = read_json_file(state_path, kMaxStateBytes);
    const StateReader read{root, state_path};
    if (!root.is_object() || read.string(root, "format") != kFormat)
        fail("{}: not a Kindred checkpoint (format is not '{}')", state_path, kFormat);
    if (const auto version = read.integer(root, "version"); version != kVersion)
        fail("{}: checkpoint version {} is not supported (expected {})", state_path, version, kVersion);

    TrainState state;
    state.step = read.integer(root, "step");
    state.adam_step = read.integer(root, "adam_step");
    if (state.step < 0 || state.adam_step < 0) fail("{}: 'step' and 'adam_step' must not be negative", state_path);
    if (const auto name = dir.filename().string(); name != checkpoint_dir_name(state.step))
        fail("{}: records step {} but the folder is named '{}'", state_path, state.step, name);
    state.rng = read.string(root, "rng");
    const auto& data = read.at(root, "data");
    state.data = {read.unsigned_integer(data, "epoch"), read.unsigned_integer(data, "index")};
    const auto& schedule = read.at(root, "schedule");
    state.schedule.peak_lr = read.number(schedule, "peak_lr");
    state.schedule.warmup_steps = read.integer(schedule, "warmup_steps");
    state.schedule.total_steps = read.integer(schedule, "total_steps");
    const auto decay = read.string(schedule, "decay");
    if (decay != "constant" && decay != "cosine") fail("{}: schedule.decay '{}' is not constant or cosine", state_path, decay);
    state.schedule.decay = decay == "constant" ? LrDecay::Constant : LrDecay::Cosine;
    state.schedule.min_lr_ratio = read.number(schedule, "min_lr_ratio");
    state.schedule.cycles = read.number(schedule, "cycles");
    try {
        validate(state.schedule);
    } catch (const Error& e) {
        fail("{}: schedule: {}", state_path, e.what());
    }

    // Every file must be exactly what was written: size first (a torn file), then the checksum.
    const auto& files = read.at(root, "files");
    if (!files.is_object() || files.size() != 3) fail("{}: 'files' must list exactly the three checkpoint files", state_path);
    std::map<std::string, std::string, std::less<>> contents;
    for (const char* file : {kAdapterFile, kOptimizerFile, kConfigFile}) {
        const auto& entry = read.at(files, file);
        const auto bytes = read.unsigned_integer(entry, "bytes");
        const auto expected = read.string(entry, "fnv1a64");
        const std::string path = (dir / file).string();
        std::error_code error;
        const auto size = fs::file_size(path, error);
        if (error) fail("{}: cannot read: {}", path, error.message());
        if (size != bytes) fail("{}: {} bytes, but state.json records {} (torn write?)", path, size, bytes);
        std::string text = read_file_text(path, kMaxFileBytes);
        if (fmt::format("{:016x}", fnv1a64(as_bytes(text))) != expected)
            fail("{}: checksum mismatch (the file is corrupted)", path);
        contents.emplace(file, std::move(text));
    }
    state.config_text = contents.at(kConfigFile);

    const auto adapter_file = safetensors::File::parse(as_bytes(contents.at(kAdapterFile)), (dir / kAdapterFile).string());
    const auto optimizer_file =
        safetensors::File::parse(as_bytes(contents.at(kOptimizerFile)), (dir / kOptimizerFile).string());
    const auto& layout = read.at(root, "adapter");
    if (!layout.is_array()) fail("{}: 'adapter' must be an array", state_path);
    if (adapter_file.tensors().size() != layout.size())
        fail("{}: {} tensors, but state.json lists {}", adapter_file.name(), adapter_file.tensors().size(), layout.size());
    if (optimizer_file.tensors().size() != 2 * layout.size())
        fail("{}: {} tensors, expected m and v for {} adapter tensors", optimizer_file.name(),
             optimizer_file.tensors().size(), layout.size());
    for (const auto& item : layout) {
        const auto name = read.string(item, "name");
        const auto& shape_json = read.at(item, "shape");
        if (!shape_json.is_array()) fail("{}: shape of '{}' must be an array", state_path, name);
        std::vector<std::uint64_t> shape;
        for (const auto& dim : shape_json) {
            if (!dim.is_number_unsigned()) fail("{}: shape of '{}' must hold non-negative integers", state_path, name);
            shape.push_back(dim.get<std::uint64_t>());
        }
        state.adapter.push_back(read_tensor(adapter_file, name, name, shape));
        state.adam_m.push_back(read_tensor(optimizer_file, name, "m." + name, shape));
        state.adam_v.push_back(read_tensor(optimizer_file, name, "v." + name, shape));
    }
    return state;
}

namespace {

LoadedCheckpoint load_latest_unchecked(const std::string& root) {
    LoadedCheckpoint out;
    const fs::path root_path(root);
    if (!fs::is_directory(root_path)) return out;

    std::vector<std::string> candidates;
    const fs::path latest_path = root_path / kLatestFile;
    if (fs::exists(latest_path)) {
        std::string name = read_file_text(latest_path.string(), 4096);
        if (!name.empty() && name.back() == '\n') name.pop_back();
        if (parse_dir_name(name)) {
            candidates.push_back(name);
        } else {
            out.rejected.push_back(fmt::format("{}: does not name a step folder", latest_path.string()));
        }
    }
    std::vector<std::pair<std::int64_t, std::string>> steps;
    for (const auto& entry : fs::directory_iterator(root_path)) {
        const auto name = entry.path().filename().string();
        if (const auto step = parse_dir_name(name); step && entry.is_directory()) steps.emplace_back(*step, name);
    }
    std::sort(steps.begin(), steps.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    for (const auto& [step, name] : steps) {
        if (std::find(candidates.begin(), candidates.end(), name) == candidates.end()) candidates.push_back(name);
    }

    for (const auto& name : candidates) {
        const std::string directory = (root_path / name).string();
        try {
            out.state = load_checkpoint(directory);
            out.directory = directory;
            return out;
        } catch (const Error& e) {
            out.rejected.push_back(fmt::format("{}: {}", directory, e.what()));
        }
    }
    if (!candidates.empty() || !out.rejected.empty()) {
        std::string reasons;
        for (const auto& line : out.rejected) reasons += "\n  " + line;
        fail("{}: no checkpoint validates:{}", root, reasons);
    }
    return out;
}

}  // namespace

LoadedCheckpoint load_latest_checkpoint(const std::string& root) {
    return with_filesystem_errors(root, [&] { return load_latest_unchecked(root); });
}

void check_adapter_layout(const TrainState& state, std::span<const NamedTensor> expected) {
    if (state.adapter.size() != expected.size())
        fail("checkpoint: {} adapter tensors, but the model's adapter has {}", state.adapter.size(), expected.size());
    for (std::size_t i = 0; i < expected.size(); ++i) {
        const auto& have = state.adapter[i];
        if (have.name != expected[i].name) fail("checkpoint: adapter tensor {} is '{}', expected '{}'", i, have.name, expected[i].name);
        if (have.shape != expected[i].shape) fail("checkpoint: adapter tensor '{}' has another shape than the model's", have.name);
    }
}

}  // namespace kindred::train
