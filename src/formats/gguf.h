// formats/gguf.h — GGUF (versions 2 and 3): metadata, tensor infos and memory-mapped tensor data.
// The reader validates everything before anything else looks at it: a hostile file yields
// kindred::Error naming the problem, never an out-of-bounds read or a huge allocation.
#pragma once

#include <cstdint>
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
struct Array {
    ValueType element_type = ValueType::UInt8;
    std::vector<Value> items;
};

struct Value {
    using Storage = std::variant<std::uint8_t, std::int8_t, std::uint16_t, std::int16_t, std::uint32_t,
                                 std::int32_t, float, bool, std::string, Array, std::uint64_t,
                                 std::int64_t, double>;
    Storage storage;
    ValueType type() const { return static_cast<ValueType>(storage.index()); }
};

struct TensorInfo {
    std::string name;
    std::vector<std::uint64_t> dims;  // ggml order: dims[0] is the contiguous (fastest) one
    DType type = DType::F32;
    std::uint64_t offset = 0;             // relative to the start of the data section
    std::span<const std::uint8_t> data;   // bytes inside the mapping (reader only)
    std::uint64_t element_count() const;
};

class Metadata {
public:
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
    // Same validation over bytes the caller owns (used by the fuzzer and tests).
    static File parse(std::span<const std::uint8_t> bytes, const std::string& name);

    std::uint32_t version() const { return version_; }
    std::uint64_t alignment() const { return alignment_; }
    const Metadata& metadata() const { return metadata_; }
    const std::vector<TensorInfo>& tensors() const { return tensors_; }
    const TensorInfo* find_tensor(std::string_view name) const;
    const TensorInfo& tensor(std::string_view name) const;  // throws Error when missing
    const std::string& name() const { return name_; }

private:
    std::string name_;
    std::shared_ptr<MappedFile> mapping_;
    std::uint32_t version_ = 3;
    std::uint64_t alignment_ = 32;
    Metadata metadata_;
    std::vector<TensorInfo> tensors_;
};

class Writer {
public:
    explicit Writer(std::uint32_t version = 3, std::uint64_t alignment = 32);
    Metadata& metadata() { return metadata_; }
    // Bytes are copied; their size must match type and dims.
    void add_tensor(std::string name, DType type, std::vector<std::uint64_t> dims,
                    std::span<const std::uint8_t> bytes);
    std::vector<std::uint8_t> serialize() const;
    // Writes atomically (temporary file, then rename).
    void write(const std::string& path) const;

private:
    std::uint32_t version_;
    std::uint64_t alignment_;
    Metadata metadata_;
    struct PendingTensor {
        std::string name;
        DType type;
        std::vector<std::uint64_t> dims;
        std::vector<std::uint8_t> bytes;
    };
    std::vector<PendingTensor> tensors_;
};

}  // namespace kindred::gguf
