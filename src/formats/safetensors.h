// formats/safetensors.h — safetensors files (single and sharded with an HF index): read with the
// tensor bytes memory-mapped, write atomically. The reader checks the header the way the reference
// implementation does (offsets contiguous from 0, the data buffer exactly covered, sizes matching
// dtype x shape) plus hostile-input limits, so a bad file yields kindred::Error naming the file and
// tensor, never an out-of-bounds read or a huge allocation.
//
// Limits: the JSON header may be at most kMaxHeaderBytes (100 MiB; real checkpoints with tens of
// thousands of tensors stay under a few MiB) and may nest at most three levels
// (header -> tensor -> shape), which bounds the parser's work and memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/mapped_file.h"

namespace kindred::safetensors {

inline constexpr std::uint64_t kMaxHeaderBytes = 100ull * 1024 * 1024;

// Element types the reader accepts: F32, F16, BF16, I8, U8, I32, I64.
bool is_supported(DType type);

struct TensorInfo {
    std::string name;
    DType type = DType::F32;
    std::vector<std::uint64_t> shape;    // row-major (PyTorch order): shape.back() is contiguous
    std::span<const std::uint8_t> data;  // inside the mapping; not necessarily aligned
    std::uint64_t element_count() const;
};

// One .safetensors file.
class File {
public:
    // Maps and validates the file; throws Error naming path, tensor and problem.
    static File open(const std::string& path);
    // Same validation over bytes the caller owns and keeps alive (fuzzer, tests).
    static File parse(std::span<const std::uint8_t> bytes, const std::string& name);

    const std::string& name() const { return name_; }
    const std::vector<TensorInfo>& tensors() const { return tensors_; }  // in data order
    const TensorInfo* find(std::string_view name) const;
    const std::map<std::string, std::string, std::less<>>& metadata() const { return metadata_; }

private:
    std::string name_;
    std::shared_ptr<const MappedFile> mapping_;
    std::vector<TensorInfo> tensors_;
    std::map<std::string, std::size_t, std::less<>> index_;
    std::map<std::string, std::string, std::less<>> metadata_;
};

// A checkpoint: one file or a sharded set, seen alike.
class Checkpoint {
public:
    // `path` is a .safetensors file, a *.safetensors.index.json, or a directory holding
    // model.safetensors.index.json or model.safetensors. Every shard named by an index must exist
    // and hold the tensors the index assigns to it; a name found twice is an error.
    static Checkpoint open(const std::string& path);

    const std::string& path() const { return path_; }
    const std::vector<File>& files() const { return files_; }
    // Every tensor of every file, shard by shard in data order.
    const std::vector<TensorInfo>& tensors() const { return tensors_; }
    const TensorInfo* find(std::string_view name) const;
    const TensorInfo& tensor(std::string_view name) const;  // throws Error naming path and tensor
    // The single file's __metadata__, or the first shard's.
    const std::map<std::string, std::string, std::less<>>& metadata() const;

private:
    std::string path_;
    std::vector<File> files_;
    std::vector<TensorInfo> tensors_;
    std::map<std::string, std::size_t, std::less<>> index_;
};

// Builds a safetensors file (or a sharded set) from tensors the caller owns: bytes are not copied
// and must stay alive until the last write/serialize call, so writing a large model costs no
// second copy of its weights.
class Writer {
public:
    void set_metadata(std::string key, std::string value);
    // Throws Error when the name repeats, the type is unsupported or the size does not match.
    void add_tensor(std::string name, DType type, std::vector<std::uint64_t> shape,
                    std::span<const std::uint8_t> bytes);

    std::vector<std::uint8_t> serialize() const;
    // One file, written atomically (temporary file in the same folder, then rename).
    void write(const std::string& path) const;
    // Splits the tensors, in the order added, into shards of at most `max_shard_bytes` of tensor
    // data (a larger tensor gets a shard of its own), as Hugging Face does. One shard is written as
    // `<directory>/model.safetensors`; several as model-0000i-of-0000n.safetensors plus
    // model.safetensors.index.json, the index last so it never names a missing shard.
    // Returns the path to open with Checkpoint::open.
    std::string write_sharded(const std::string& directory, std::uint64_t max_shard_bytes) const;

private:
    struct Pending {
        std::string name;
        DType type;
        std::vector<std::uint64_t> shape;
        std::span<const std::uint8_t> bytes;
    };
    std::vector<std::uint8_t> header(std::span<const Pending* const> tensors) const;
    void write_file(const std::string& path, std::span<const Pending* const> tensors) const;
    std::map<std::string, std::string> metadata_;
    std::vector<Pending> tensors_;
};

}  // namespace kindred::safetensors
