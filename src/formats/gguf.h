// formats/gguf.h — GGUF (versions 2 and 3): metadata, tensor infos and memory-mapped tensor data.
// The reader validates everything before anything else looks at it: a hostile file yields
// kindred::Error naming the problem, never an out-of-bounds read or a huge allocation.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/dtype.h"
#include "core/mapped_file.h"

namespace kindred::gguf {

enum class ValueType : std::uint32_t {
    UInt8 = 0, Int8 = 1, UInt16 = 2, Int16 = 3, UInt32 = 4, Int32 = 5, Float32 = 6,
    Bool = 7, String = 8, Array = 9, UInt64 = 10, Int64 = 11, Float64 = 12,
};

struct Value;
// Every item holds element_type; items of an array of arrays each carry their own element type.
struct Array {
    ValueType element_type = ValueType::UInt8;
    std::vector<Value> items;
    friend bool operator==(const Array&, const Array&) = default;
};

struct Value {
    using Storage = std::variant<std::uint8_t, std::int8_t, std::uint16_t, std::int16_t, std::uint32_t,
                                 std::int32_t, float, bool, std::string, Array, std::uint64_t,
                                 std::int64_t, double>;
    Storage storage;
    ValueType type() const { return static_cast<ValueType>(storage.index()); }
    friend bool operator==(const Value&, const Value&) = default;
};

struct TensorInfo {
    std::string name;
    std::vector<std::uint64_t> dims;  // ggml order: dims[0] is the contiguous (fastest) one
    DType type = DType::F32;
    std::uint64_t offset = 0;             // relative to the start of the data section
    // Reader only: the tensor's bytes inside the mapping (File::open; valid while any copy of the
    // File lives) or inside the caller's buffer (File::parse; valid while that buffer lives).
    std::span<const std::uint8_t> data;
    std::uint64_t element_count() const;
};

class Metadata {
public:
    // Adds the key, or replaces its value in place (keeping its position in entries()).
    void set(std::string key, Value value);
    const Value* find(std::string_view key) const;
    bool contains(std::string_view key) const { return find(key) != nullptr; }
    // Typed getters throw Error naming the key when it is missing or of another type.
    // Integer getters accept any integer type whose value fits.
    std::string string(std::string_view key) const;
    std::uint64_t uint(std::string_view key) const;
    std::int64_t integer(std::string_view key) const;
    double real(std::string_view key) const;  // any numeric type
    bool boolean(std::string_view key) const;
    const Array& array(std::string_view key) const;
    std::vector<std::string> string_array(std::string_view key) const;
    const std::vector<std::pair<std::string, Value>>& entries() const { return entries_; }

private:
    std::vector<std::pair<std::string, Value>> entries_;  // file order
    std::map<std::string, std::size_t, std::less<>> index_;
};

class File {
public:
    // Maps and validates the file; throws Error naming path and problem.
    static File open(const std::string& path);
    // Same validation over bytes the caller owns (used by the fuzzer and tests); `name` stands
    // for the file in error messages. Accepted: versions 2 and 3, little-endian, arrays nested
    // up to 8 deep, at most 2^24 metadata array elements in all, 1 to 4 non-zero dims, bool
    // bytes 0 or 1, strict UTF-8 keys, names and strings, tensors inside the file, aligned,
    // not overlapping, of a known ggml type and whole blocks per row.
    static File parse(std::span<const std::uint8_t> bytes, const std::string& name);

    std::uint32_t version() const { return version_; }
    std::uint64_t alignment() const { return alignment_; }
    const Metadata& metadata() const { return metadata_; }
    const std::vector<TensorInfo>& tensors() const { return tensors_; }
    const TensorInfo* find_tensor(std::string_view name) const;
    const TensorInfo& tensor(std::string_view name) const;  // throws Error when missing
    const std::string& name() const { return name_; }
    // Where the data section starts; TensorInfo::offset counts from here.
    std::uint64_t data_offset() const { return data_offset_; }

private:
    std::string name_;
    std::shared_ptr<MappedFile> mapping_;  // keeps TensorInfo::data valid for open()ed files
    std::uint32_t version_ = 3;
    std::uint64_t alignment_ = 32;
    std::uint64_t data_offset_ = 0;
    Metadata metadata_;
    std::vector<TensorInfo> tensors_;
    std::map<std::string, std::size_t, std::less<>> tensor_index_;  // name -> position in tensors_
};

class Writer {
public:
    // A non-default alignment is recorded as `general.alignment` (appended after the caller's
    // keys unless the caller set it, which must then agree).
    explicit Writer(std::uint32_t version = 3, std::uint64_t alignment = 32);
    Metadata& metadata() { return metadata_; }
    const Metadata& metadata() const { return metadata_; }
    // Bytes are copied; their size must match type and dims.
    void add_tensor(std::string name, DType type, std::vector<std::uint64_t> dims,
                    std::span<const std::uint8_t> bytes);
    // A tensor whose bytes write_streaming asks for when it writes them (files larger than memory).
    void add_tensor_deferred(std::string name, DType type, std::vector<std::uint64_t> dims);
    // Throws Error for anything the reader would reject (mixed-type arrays, bad UTF-8, empty
    // keys, arrays nested deeper than 8), or for a deferred tensor. For the same keys and tensors
    // the bytes equal those of gguf-py's GGUFWriter (tests/formats/test_gguf_golden.cpp).
    std::vector<std::uint8_t> serialize() const;
    // Writes atomically (temporary file, then rename).
    void write(const std::string& path) const;

    // fill(tensor index, byte offset, chunk) writes bytes [offset, offset + chunk.size()) of a
    // deferred tensor into `chunk`.
    using TensorFill = std::function<void(std::size_t, std::uint64_t, std::span<std::uint8_t>)>;
    // Writes atomically as write() does the same bytes serialize() would, holding at most one
    // chunk of tensor data in memory: deferred tensors are filled chunk by chunk, in file order.
    void write_streaming(const std::string& path, const TensorFill& fill, std::uint64_t chunk_bytes = 64u << 20) const;

private:
    std::uint64_t check_tensor(const std::string& name, DType type, const std::vector<std::uint64_t>& dims) const;
    std::vector<std::uint8_t> header() const;  // everything before the first tensor's data, padded

    std::uint32_t version_;
    std::uint64_t alignment_;
    Metadata metadata_;
    struct PendingTensor {
        std::string name;
        DType type;
        std::vector<std::uint64_t> dims;
        std::uint64_t size;  // bytes
        bool deferred;       // bytes come from write_streaming's fill
        std::vector<std::uint8_t> bytes;
    };
    std::vector<PendingTensor> tensors_;
};

}  // namespace kindred::gguf
