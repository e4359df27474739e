#include "formats/safetensors.h"

#include <algorithm>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json.h"
#include "core/mapped_file.h"

namespace kindred::safetensors {
namespace {

using nlohmann::json;

constexpr std::string_view kIndexName = "model.safetensors.index.json";
constexpr std::string_view kSingleName = "model.safetensors";
// Index files list one line per tensor; even a 100k-tensor model stays far below this.
constexpr std::uintmax_t kMaxIndexBytes = 64ull * 1024 * 1024;

std::uint64_t read_le64(const std::uint8_t* p) {
    std::uint64_t value = 0;
    for (int i = 7; i >= 0; --i) value = (value << 8) | p[i];
    return value;
}

DType parse_dtype(const json& value, const std::string& file, const std::string& tensor) {
    if (!value.is_string()) fail("{}: tensor '{}': 'dtype' is not a string", file, tensor);
    const auto& text = value.get_ref<const std::string&>();
    const auto type = dtype_from_name(text);
    if (!type || !is_supported(*type)) {
        fail("{}: tensor '{}' has dtype '{}', which is not supported (F32, F16, BF16, I8, U8, I32, I64)",
             file, tensor, text);
    }
    return *type;
}

std::uint64_t parse_unsigned(const json& value, const std::string& file, const std::string& tensor,
                             const char* field) {
    if (!value.is_number_unsigned()) {
        // is_number_integer with a negative value, floats, strings... all rejected.
        fail("{}: tensor '{}': '{}' holds {} where a non-negative integer belongs", file, tensor, field,
             value.dump());
    }
    return value.get<std::uint64_t>();
}

std::string check_shard_name(const std::string& shard, const std::string& index_path) {
    // An index names files next to itself; anything else could reach outside the checkpoint.
    const std::filesystem::path relative(shard);
    if (shard.empty() || relative.is_absolute()) {
        fail("{}: shard file name '{}' is not a relative path", index_path, shard);
    }
    for (const auto& part : relative) {
        if (part == "..") fail("{}: shard file name '{}' leaves the checkpoint folder", index_path, shard);
    }
    return (std::filesystem::path(index_path).parent_path() / relative).string();
}

}  // namespace

bool is_supported(DType type) {
    switch (type) {
        case DType::F32: case DType::F16: case DType::BF16: case DType::I8: case DType::U8:
        case DType::I32: case DType::I64:
            return true;
        default:
            return false;
    }
}

std::uint64_t TensorInfo::element_count() const {
    std::uint64_t count = 1;
    for (const auto dim : shape) count *= dim;  // cannot overflow: checked when parsed
    return count;
}

// ------------------------------------------------------------------------------------------------
// Reading

File File::open(const std::string& path) {
    auto mapping = std::make_shared<const MappedFile>(path);
    File file = parse(mapping->bytes(), path);
    file.mapping_ = std::move(mapping);
    return file;
}

File File::parse(std::span<const std::uint8_t> bytes, const std::string& name) {
    File file;
    file.name_ = name;
    if (bytes.size() < 8) fail("{}: {} bytes is too short for a safetensors header length", name, bytes.size());
    const std::uint64_t header_size = read_le64(bytes.data());
    if (header_size > kMaxHeaderBytes) {
        fail("{}: header length {} exceeds the {} byte limit", name, header_size, kMaxHeaderBytes);
    }
    if (header_size > bytes.size() - 8) {
        fail("{}: header length {} runs past the end of the {} byte file", name, header_size, bytes.size());
    }
    const std::string_view header_text(reinterpret_cast<const char*>(bytes.data() + 8), header_size);
    // Depth 3: header object -> tensor object -> shape/offsets arrays.
    const json header = parse_json(header_text, name + ": header", 3);
    if (!header.is_object()) fail("{}: header is not a JSON object", name);

    const std::span<const std::uint8_t> buffer = bytes.subspan(8 + header_size);
    struct Extent {
        std::uint64_t begin, end;
        std::size_t tensor;
    };
    std::vector<Extent> extents;
    for (const auto& [key, entry] : header.items()) {
        if (key == "__metadata__") {
            if (!entry.is_object()) fail("{}: __metadata__ is not an object", name);
            for (const auto& [meta_key, meta_value] : entry.items()) {
                if (!meta_value.is_string()) fail("{}: __metadata__ '{}' is not a string", name, meta_key);
                file.metadata_.emplace(meta_key, meta_value.get<std::string>());
            }
            continue;
        }
        if (!entry.is_object()) fail("{}: tensor '{}': entry is not an object", name, key);
        for (const char* field : {"dtype", "shape", "data_offsets"}) {
            if (!entry.contains(field)) fail("{}: tensor '{}': missing '{}'", name, key, field);
        }
        TensorInfo info;
        info.name = key;
        info.type = parse_dtype(entry.at("dtype"), name, key);
        const json& shape = entry.at("shape");
        if (!shape.is_array()) fail("{}: tensor '{}': 'shape' is not an array", name, key);
        std::uint64_t elements = 1;
        for (const auto& dim : shape) {
            const std::uint64_t value = parse_unsigned(dim, name, key, "shape");
            if (value != 0 && elements > UINT64_MAX / value) {
                fail("{}: tensor '{}': shape {} has more elements than 64 bits count", name, key, shape.dump());
            }
            elements *= value;
            info.shape.push_back(value);
        }
        const std::uint64_t element_bytes = dtype_info(info.type).block_bytes;
        if (elements > UINT64_MAX / element_bytes) {
            fail("{}: tensor '{}': shape {} is too large to address", name, key, shape.dump());
        }
        const std::uint64_t size = elements * element_bytes;
        const json& offsets = entry.at("data_offsets");
        if (!offsets.is_array() || offsets.size() != 2) {
            fail("{}: tensor '{}': 'data_offsets' is not a [begin, end] pair", name, key);
        }
        const std::uint64_t begin = parse_unsigned(offsets[0], name, key, "data_offsets");
        const std::uint64_t end = parse_unsigned(offsets[1], name, key, "data_offsets");
        if (begin > end) fail("{}: tensor '{}': data_offsets [{}, {}] run backwards", name, key, begin, end);
        if (end > buffer.size()) {
            fail("{}: tensor '{}': data_offsets [{}, {}] run past the {} byte data buffer", name, key, begin,
                 end, buffer.size());
        }
        if (end - begin != size) {
            fail("{}: tensor '{}': data_offsets [{}, {}] hold {} bytes but {} {} needs {}", name, key, begin, end,
                 end - begin, dtype_name(info.type), shape.dump(), size);
        }
        info.data = buffer.subspan(begin, size);
        extents.push_back({begin, end, file.tensors_.size()});
        file.tensors_.push_back(std::move(info));
    }

    // The reference implementation requires the tensors to tile the buffer exactly.
    std::sort(extents.begin(), extents.end(), [](const Extent& a, const Extent& b) {
        return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
    });
    std::uint64_t covered = 0;
    const TensorInfo* previous = nullptr;
    for (const Extent& extent : extents) {
        const TensorInfo& tensor = file.tensors_[extent.tensor];
        if (extent.begin < covered) {
            fail("{}: tensor '{}' overlaps tensor '{}' (data_offsets start at {}, before {})", name, tensor.name,
                 previous->name, extent.begin, covered);
        }
        if (extent.begin > covered) {
            fail("{}: bytes {}..{} of the data buffer belong to no tensor (before tensor '{}')", name, covered,
                 extent.begin, tensor.name);
        }
        covered = extent.end;
        previous = &tensor;
    }
    if (covered != buffer.size()) {
        fail("{}: bytes {}..{} at the end of the data buffer belong to no tensor", name, covered, buffer.size());
    }

    std::vector<TensorInfo> ordered;
    ordered.reserve(extents.size());
    for (const Extent& extent : extents) ordered.push_back(std::move(file.tensors_[extent.tensor]));
    file.tensors_ = std::move(ordered);
    for (std::size_t i = 0; i < file.tensors_.size(); ++i) file.index_.emplace(file.tensors_[i].name, i);
    return file;
}

const TensorInfo* File::find(std::string_view name) const {
    const auto it = index_.find(name);
    return it == index_.end() ? nullptr : &tensors_[it->second];
}

Checkpoint Checkpoint::open(const std::string& path) {
    Checkpoint checkpoint;
    checkpoint.path_ = path;
    std::string target = path;
    if (std::filesystem::is_directory(path)) {
        const auto dir = std::filesystem::path(path);
        if (std::filesystem::exists(dir / kIndexName)) {
            target = (dir / kIndexName).string();
        } else if (std::filesystem::exists(dir / kSingleName)) {
            target = (dir / kSingleName).string();
        } else {
            fail("{}: folder holds neither {} nor {}", path, kIndexName, kSingleName);
        }
    }

    if (!target.ends_with(".json")) {
        checkpoint.files_.push_back(File::open(target));
    } else {
        const json index = parse_json(read_file_text(target, kMaxIndexBytes), target, 4);
        if (!index.is_object() || !index.contains("weight_map") || !index.at("weight_map").is_object()) {
            fail("{}: no 'weight_map' object", target);
        }
        std::map<std::string, std::vector<std::string>> by_shard;  // shard -> tensors it must hold
        for (const auto& [tensor, shard] : index.at("weight_map").items()) {
            if (!shard.is_string()) fail("{}: weight_map entry '{}' is not a file name", target, tensor);
            by_shard[shard.get<std::string>()].push_back(tensor);
        }
        if (by_shard.empty()) fail("{}: weight_map is empty", target);
        for (const auto& [shard, names] : by_shard) {
            const std::string shard_path = check_shard_name(shard, target);
            if (!std::filesystem::exists(shard_path)) {
                fail("{}: shard {} is missing (expected at {})", target, shard, shard_path);
            }
            File file = File::open(shard_path);
            for (const std::string& name : names) {
                if (file.find(name) == nullptr) {
                    fail("{}: weight_map puts tensor '{}' in {}, which does not contain it", target, name,
                         shard_path);
                }
            }
            checkpoint.files_.push_back(std::move(file));
        }
    }
    std::vector<std::size_t> owner;  // file of each tensor, for the duplicate message
    for (std::size_t f = 0; f < checkpoint.files_.size(); ++f) {
        for (const TensorInfo& tensor : checkpoint.files_[f].tensors()) {
            const auto [it, added] = checkpoint.index_.emplace(tensor.name, checkpoint.tensors_.size());
            if (!added) {
                fail("{}: tensor '{}' appears in both {} and {}", path, tensor.name,
                     checkpoint.files_[owner[it->second]].name(), checkpoint.files_[f].name());
            }
            checkpoint.tensors_.push_back(tensor);
            owner.push_back(f);
        }
    }
    return checkpoint;
}

const TensorInfo* Checkpoint::find(std::string_view name) const {
    const auto it = index_.find(name);
    return it == index_.end() ? nullptr : &tensors_[it->second];
}

const TensorInfo& Checkpoint::tensor(std::string_view name) const {
    const TensorInfo* info = find(name);
    if (info == nullptr) fail("{}: no tensor named '{}'", path_, name);
    return *info;
}

const std::map<std::string, std::string, std::less<>>& Checkpoint::metadata() const {
    return files_.front().metadata();
}

// ------------------------------------------------------------------------------------------------
// Writing

void Writer::set_metadata(std::string key, std::string value) { metadata_[std::move(key)] = std::move(value); }

void Writer::add_tensor(std::string name, DType type, std::vector<std::uint64_t> shape,
                        std::span<const std::uint8_t> bytes) {
    if (name == "__metadata__" || name.empty()) fail("safetensors writer: '{}' cannot name a tensor", name);
    if (!is_supported(type)) {
        fail("safetensors writer: tensor '{}' has type {}, which safetensors files here do not hold", name,
             dtype_name(type));
    }
    for (const Pending& pending : tensors_) {
        if (pending.name == name) fail("safetensors writer: tensor '{}' added twice", name);
    }
    std::uint64_t size = dtype_info(type).block_bytes;
    for (const auto dim : shape) {
        if (dim != 0 && size > UINT64_MAX / dim) fail("safetensors writer: tensor '{}' is too large", name);
        size *= dim;
    }
    if (size != bytes.size()) {
        fail("safetensors writer: tensor '{}' is {} bytes but {} of that shape needs {}", name, bytes.size(),
             dtype_name(type), size);
    }
    tensors_.push_back({std::move(name), type, std::move(shape), bytes});
}

std::vector<std::uint8_t> Writer::header(std::span<const Pending* const> tensors) const {
    json header = json::object();
    if (!metadata_.empty()) header["__metadata__"] = metadata_;
    std::uint64_t offset = 0;
    for (const Pending* tensor : tensors) {
        header[tensor->name] = {{"dtype", std::string(dtype_name(tensor->type))},
                                {"shape", tensor->shape},
                                {"data_offsets", {offset, offset + tensor->bytes.size()}}};
        offset += tensor->bytes.size();
    }
    std::string text = header.dump();
    // Pad with spaces so the data starts 8-byte aligned, as the reference writer does.
    text.append((8 - text.size() % 8) % 8, ' ');
    std::vector<std::uint8_t> out(8 + text.size());
    std::uint64_t length = text.size();
    for (int i = 0; i < 8; ++i) out[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(length >> (8 * i));
    std::memcpy(out.data() + 8, text.data(), text.size());
    return out;
}

std::vector<std::uint8_t> Writer::serialize() const {
    std::vector<const Pending*> all;
    for (const Pending& tensor : tensors_) all.push_back(&tensor);
    std::vector<std::uint8_t> out = header(all);
    for (const Pending* tensor : all) out.insert(out.end(), tensor->bytes.begin(), tensor->bytes.end());
    return out;
}

void Writer::write_file(const std::string& path, std::span<const Pending* const> tensors) const {
    write_file_atomically(path, [&](const ByteSink& sink) {
        sink(header(tensors));
        for (const Pending* tensor : tensors) sink(tensor->bytes);
    });
}

void Writer::write(const std::string& path) const {
    std::vector<const Pending*> all;
    for (const Pending& tensor : tensors_) all.push_back(&tensor);
    write_file(path, all);
}

std::string Writer::write_sharded(const std::string& directory, std::uint64_t max_shard_bytes) const {
    if (max_shard_bytes == 0) fail("{}: the maximum shard size must be positive", directory);
    std::vector<std::vector<const Pending*>> shards(1);
    std::uint64_t current = 0;
    for (const Pending& tensor : tensors_) {
        if (!shards.back().empty() && current + tensor.bytes.size() > max_shard_bytes) {
            shards.emplace_back();
            current = 0;
        }
        shards.back().push_back(&tensor);
        current += tensor.bytes.size();
    }
    std::error_code error;
    std::filesystem::create_directories(directory, error);
    if (error) fail("{}: cannot create folder: {}", directory, error.message());
    const std::filesystem::path dir(directory);
    if (shards.size() == 1) {
        const std::string path = (dir / kSingleName).string();
        write_file(path, shards.front());
        return path;
    }
    json weight_map = json::object();
    std::uint64_t total = 0;
    for (std::size_t i = 0; i < shards.size(); ++i) {
        const std::string shard = fmt::format("model-{:05}-of-{:05}.safetensors", i + 1, shards.size());
        write_file((dir / shard).string(), shards[i]);
        for (const Pending* tensor : shards[i]) {
            weight_map[tensor->name] = shard;
            total += tensor->bytes.size();
        }
    }
    const json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
    const std::string index_path = (dir / kIndexName).string();
    write_file_atomically(index_path, index.dump(2) + "\n");
    return index_path;
}

}  // namespace kindred::safetensors
