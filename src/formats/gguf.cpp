#include "formats/gguf.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <numeric>
#include <type_traits>
#include <utility>

#include <fmt/ranges.h>

#include "core/atomic_file.h"
#include "core/error.h"

namespace kindred::gguf {
namespace {

constexpr std::uint8_t kMagic[4] = {'G', 'G', 'U', 'F'};
constexpr std::uint64_t kDefaultAlignment = 32;
constexpr std::uint32_t kMaxDims = 4;  // ggml tensors have at most four dimensions
// Nested arrays recurse; real files nest at most once, so a deep nest is an attack on the stack.
constexpr int kMaxArrayDepth = 8;
// Each metadata element becomes a Value (~40 bytes) whatever its size in the file, so a file of
// one-byte elements would grow 40x in memory. Real vocabularies have well under a million entries
// per array; capping the total keeps a hostile file's metadata below ~1 GB.
constexpr std::uint64_t kMaxMetadataElements = std::uint64_t{1} << 24;

static_assert(std::endian::native == std::endian::little, "GGUF is read in place as little-endian");

const char* value_type_name(ValueType type) {
    switch (type) {
        case ValueType::UInt8: return "uint8";
        case ValueType::Int8: return "int8";
        case ValueType::UInt16: return "uint16";
        case ValueType::Int16: return "int16";
        case ValueType::UInt32: return "uint32";
        case ValueType::Int32: return "int32";
        case ValueType::Float32: return "float32";
        case ValueType::Bool: return "bool";
        case ValueType::String: return "string";
        case ValueType::Array: return "array";
        case ValueType::UInt64: return "uint64";
        case ValueType::Int64: return "int64";
        case ValueType::Float64: return "float64";
    }
    return "unknown";
}

bool valid_value_type(std::uint32_t raw) { return raw <= static_cast<std::uint32_t>(ValueType::Float64); }

// Smallest number of bytes one element of `type` occupies in the file; bounds counts before
// anything is allocated for them.
std::uint64_t min_encoded_size(ValueType type) {
    switch (type) {
        case ValueType::UInt8: case ValueType::Int8: case ValueType::Bool: return 1;
        case ValueType::UInt16: case ValueType::Int16: return 2;
        case ValueType::UInt32: case ValueType::Int32: case ValueType::Float32: return 4;
        case ValueType::UInt64: case ValueType::Int64: case ValueType::Float64: return 8;
        case ValueType::String: return 8;   // length prefix
        case ValueType::Array: return 12;   // element type + length
    }
    return 1;
}

// Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF.
bool is_valid_utf8(std::string_view text) {
    std::size_t i = 0;
    const std::size_t n = text.size();
    while (i < n) {
        const auto lead = static_cast<unsigned char>(text[i]);
        if (lead < 0x80) {
            ++i;
            continue;
        }
        std::size_t length;
        unsigned char low = 0x80;
        unsigned char high = 0xbf;
        if (lead >= 0xc2 && lead <= 0xdf) {
            length = 2;
        } else if (lead >= 0xe0 && lead <= 0xef) {
            length = 3;
            if (lead == 0xe0) low = 0xa0;
            if (lead == 0xed) high = 0x9f;
        } else if (lead >= 0xf0 && lead <= 0xf4) {
            length = 4;
            if (lead == 0xf0) low = 0x90;
            if (lead == 0xf4) high = 0x8f;
        } else {
            return false;
        }
        if (n - i < length) return false;
        const auto second = static_cast<unsigned char>(text[i + 1]);
        if (second < low || second > high) return false;
        for (std::size_t k = 2; k < length; ++k) {
            const auto next = static_cast<unsigned char>(text[i + k]);
            if (next < 0x80 || next > 0xbf) return false;
        }
        i += length;
    }
    return true;
}

std::uint64_t align_up(std::uint64_t value, std::uint64_t alignment, const std::string& name) {
    const std::uint64_t remainder = value % alignment;
    if (remainder == 0) return value;
    if (value > std::numeric_limits<std::uint64_t>::max() - (alignment - remainder)) {
        fail("{}: offset {} overflows when aligned to {}", name, value, alignment);
    }
    return value + (alignment - remainder);
}

// Bounds-checked little-endian reads over the file's bytes; every error names the file,
// the byte position and what was being read.
class Cursor {
public:
    Cursor(std::span<const std::uint8_t> bytes, const std::string& name) : bytes_(bytes), name_(name) {}

    std::uint64_t position() const { return position_; }
    std::uint64_t remaining() const { return bytes_.size() - position_; }

    template <typename T>
    T read(std::string_view what) {
        static_assert(std::is_trivially_copyable_v<T>);
        need(sizeof(T), what);
        T value;
        std::memcpy(&value, bytes_.data() + position_, sizeof(T));
        position_ += sizeof(T);
        return value;
    }

    std::string read_string(std::string_view what) {
        const auto length = read<std::uint64_t>(what);
        if (length > remaining()) {
            fail("{}: {}: string length {} at byte {} exceeds the {} bytes left in the file", name_, what,
                 length, position_ - 8, remaining());
        }
        std::string text(reinterpret_cast<const char*>(bytes_.data() + position_), length);
        if (!is_valid_utf8(text)) fail("{}: {}: string at byte {} is not valid UTF-8", name_, what, position_);
        position_ += length;
        return text;
    }

    // Fails unless `count` items of at least `min_size` bytes each can still fit in the file.
    void check_count(std::uint64_t count, std::uint64_t min_size, std::string_view what) const {
        if (count > remaining() / min_size) {
            fail("{}: {} {} at byte {} cannot fit in the {} bytes left in the file", name_, what, count, position_,
                 remaining());
        }
    }

private:
    void need(std::uint64_t size, std::string_view what) const {
        if (size > remaining()) {
            fail("{}: truncated: {} at byte {} needs {} bytes, {} left", name_, what, position_, size, remaining());
        }
    }

    std::span<const std::uint8_t> bytes_;
    const std::string& name_;
    std::uint64_t position_ = 0;
};

struct Header {
    std::uint32_t version = 0;
    std::uint64_t alignment = kDefaultAlignment;
    std::uint64_t data_offset = 0;
    Metadata metadata;
    std::vector<TensorInfo> tensors;
    std::map<std::string, std::size_t, std::less<>> tensor_index;
};

class Parser {
public:
    Parser(std::span<const std::uint8_t> bytes, const std::string& name) : cursor_(bytes, name), name_(name) {}

    Value read_value(ValueType type, const std::string& context, int depth) {
        switch (type) {
            case ValueType::UInt8: return {cursor_.read<std::uint8_t>(context)};
            case ValueType::Int8: return {cursor_.read<std::int8_t>(context)};
            case ValueType::UInt16: return {cursor_.read<std::uint16_t>(context)};
            case ValueType::Int16: return {cursor_.read<std::int16_t>(context)};
            case ValueType::UInt32: return {cursor_.read<std::uint32_t>(context)};
            case ValueType::Int32: return {cursor_.read<std::int32_t>(context)};
            case ValueType::Float32: return {cursor_.read<float>(context)};
            case ValueType::UInt64: return {cursor_.read<std::uint64_t>(context)};
            case ValueType::Int64: return {cursor_.read<std::int64_t>(context)};
            case ValueType::Float64: return {cursor_.read<double>(context)};
            case ValueType::Bool: {
                const auto raw = cursor_.read<std::uint8_t>(context);
                if (raw > 1) fail("{}: {}: bool value {} is neither 0 nor 1", name_, context, raw);
                return {raw == 1};
            }
            case ValueType::String: return {cursor_.read_string(context)};
            case ValueType::Array: return {read_array(context, depth + 1)};
        }
        fail("{}: {}: unknown value type {}", name_, context, static_cast<std::uint32_t>(type));
    }

    Array read_array(const std::string& context, int depth) {
        if (depth > kMaxArrayDepth) fail("{}: {}: arrays nested deeper than {}", name_, context, kMaxArrayDepth);
        const auto raw_type = cursor_.read<std::uint32_t>(context);
        if (!valid_value_type(raw_type)) fail("{}: {}: unknown array element type {}", name_, context, raw_type);
        Array array;
        array.element_type = static_cast<ValueType>(raw_type);
        const auto length = cursor_.read<std::uint64_t>(context);
        cursor_.check_count(length, min_encoded_size(array.element_type), context + ": array length");
        if (length > kMaxMetadataElements - elements_) {
            fail("{}: {}: more than {} metadata array elements in the file", name_, context, kMaxMetadataElements);
        }
        elements_ += length;
        array.items.reserve(length);
        for (std::uint64_t i = 0; i < length; ++i) array.items.push_back(read_value(array.element_type, context, depth));
        return array;
    }

    Header parse() {
        Header contents;
        std::uint8_t magic[4];
        for (auto& byte : magic) byte = cursor_.read<std::uint8_t>("magic");
        if (std::memcmp(magic, kMagic, 4) != 0) fail("{}: not a GGUF file (bad magic)", name_);
        contents.version = cursor_.read<std::uint32_t>("version");
        if (contents.version == 1) fail("{}: GGUF version 1 is not supported (only versions 2 and 3)", name_);
        if (contents.version != 2 && contents.version != 3) {
            const bool swapped = (contents.version & 0xffffu) == 0 && contents.version != 0;
            fail("{}: unsupported GGUF version {}{}", name_, contents.version,
                 swapped ? " (a big-endian file? only little-endian GGUF is supported)" : " (only versions 2 and 3)");
        }
        const auto tensor_count = cursor_.read<std::uint64_t>("tensor count");
        const auto kv_count = cursor_.read<std::uint64_t>("metadata count");
        // A key/value pair takes at least a key length, a type and a one-byte value.
        cursor_.check_count(kv_count, 8 + 4 + 1, "metadata count");
        for (std::uint64_t i = 0; i < kv_count; ++i) {
            std::string key = cursor_.read_string(fmt::format("key of metadata entry {}", i));
            if (key.empty()) fail("{}: metadata entry {} has an empty key", name_, i);
            const std::string context = fmt::format("key '{}'", key);
            if (contents.metadata.contains(key)) fail("{}: duplicate {}", name_, context);
            const auto raw_type = cursor_.read<std::uint32_t>(context);
            if (!valid_value_type(raw_type)) fail("{}: {}: unknown value type {}", name_, context, raw_type);
            Value value = read_value(static_cast<ValueType>(raw_type), context, 0);
            contents.metadata.set(std::move(key), std::move(value));
        }

        contents.alignment = kDefaultAlignment;
        if (contents.metadata.contains("general.alignment")) {
            const Value& value = *contents.metadata.find("general.alignment");
            if (value.type() != ValueType::UInt32) {
                fail("{}: key 'general.alignment' has type {}, expected uint32", name_, value_type_name(value.type()));
            }
            contents.alignment = std::get<std::uint32_t>(value.storage);
            if (!std::has_single_bit(contents.alignment)) {
                fail("{}: key 'general.alignment': {} is not a power of two", name_, contents.alignment);
            }
        }

        // A tensor info takes at least a name length, n_dims, one dim, a type and an offset.
        cursor_.check_count(tensor_count, 8 + 4 + 8 + 4 + 8, "tensor count");
        contents.tensors.reserve(tensor_count);
        for (std::uint64_t i = 0; i < tensor_count; ++i) {
            TensorInfo info = read_tensor_info(i, contents.alignment);
            if (!contents.tensor_index.emplace(info.name, i).second) {
                fail("{}: duplicate tensor name '{}'", name_, info.name);
            }
            contents.tensors.push_back(std::move(info));
        }
        contents.data_offset = align_up(cursor_.position(), contents.alignment, name_);
        return contents;
    }

private:
    TensorInfo read_tensor_info(std::uint64_t index, std::uint64_t alignment) {
        TensorInfo info;
        info.name = cursor_.read_string(fmt::format("name of tensor {}", index));
        if (info.name.empty()) fail("{}: tensor {} has an empty name", name_, index);
        const std::string context = fmt::format("tensor '{}'", info.name);
        const auto n_dims = cursor_.read<std::uint32_t>(context);
        if (n_dims == 0 || n_dims > kMaxDims) {
            fail("{}: {}: {} dimensions (must be 1 to {})", name_, context, n_dims, kMaxDims);
        }
        std::uint64_t elements = 1;
        for (std::uint32_t d = 0; d < n_dims; ++d) {
            const auto dim = cursor_.read<std::uint64_t>(context);
            if (dim == 0) fail("{}: {}: dimension {} is zero", name_, context, d);
            // ggml counts elements in int64.
            if (dim > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) / elements) {
                fail("{}: {}: element count overflows", name_, context);
            }
            elements *= dim;
            info.dims.push_back(dim);
        }
        const auto raw_type = cursor_.read<std::uint32_t>(context);
        try {
            info.type = dtype_from_ggml_id(raw_type);
        } catch (const Error& error) {
            fail("{}: {}: {}", name_, context, error.what());
        }
        const DTypeInfo& type_info = dtype_info(info.type);
        if (info.dims[0] % type_info.block_size != 0) {
            fail("{}: {}: row length {} is not a multiple of the {} block size {}", name_, context, info.dims[0],
                 type_info.name, type_info.block_size);
        }
        info.offset = cursor_.read<std::uint64_t>(context);
        if (info.offset % alignment != 0) {
            fail("{}: {}: offset {} is not aligned to {}", name_, context, info.offset, alignment);
        }
        return info;
    }

    Cursor cursor_;
    const std::string& name_;
    std::uint64_t elements_ = 0;
};

// Byte size of a tensor, overflow-checked (dims are already known to be non-zero and
// their product to fit in int64).
std::uint64_t tensor_bytes(const TensorInfo& info) {
    std::uint64_t size = row_bytes(info.type, info.dims[0]);
    for (std::size_t d = 1; d < info.dims.size(); ++d) {
        if (info.dims[d] > std::numeric_limits<std::uint64_t>::max() / size) fail("byte size overflows");
        size *= info.dims[d];
    }
    return size;
}

template <typename Target>
std::optional<Target> integer_as(const Value& value) {
    return std::visit(
        [](const auto& held) -> std::optional<Target> {
            using Held = std::decay_t<decltype(held)>;
            if constexpr (std::is_integral_v<Held> && !std::is_same_v<Held, bool>) {
                if (std::in_range<Target>(held)) return static_cast<Target>(held);
            }
            return std::nullopt;
        },
        value.storage);
}

}  // namespace

std::uint64_t TensorInfo::element_count() const {
    std::uint64_t count = 1;
    for (const std::uint64_t dim : dims) count *= dim;
    return count;
}

// ---- Metadata ----

void Metadata::set(std::string key, Value value) {
    if (const auto found = index_.find(key); found != index_.end()) {
        entries_[found->second].second = std::move(value);
        return;
    }
    index_.emplace(key, entries_.size());
    entries_.emplace_back(std::move(key), std::move(value));
}

const Value* Metadata::find(std::string_view key) const {
    const auto found = index_.find(key);
    return found == index_.end() ? nullptr : &entries_[found->second].second;
}

namespace {
const Value& require(const Metadata& metadata, std::string_view key) {
    const Value* value = metadata.find(key);
    if (value == nullptr) fail("missing metadata key '{}'", key);
    return *value;
}

[[noreturn]] void wrong_type(std::string_view key, const Value& value, std::string_view expected) {
    fail("metadata key '{}' has type {}, expected {}", key, value_type_name(value.type()), expected);
}
}  // namespace

std::string Metadata::string(std::string_view key) const {
    const Value& value = require(*this, key);
    if (const auto* text = std::get_if<std::string>(&value.storage)) return *text;
    wrong_type(key, value, "string");
}

std::uint64_t Metadata::uint(std::string_view key) const {
    const Value& value = require(*this, key);
    if (const auto result = integer_as<std::uint64_t>(value)) return *result;
    wrong_type(key, value, "a non-negative integer");
}

std::int64_t Metadata::integer(std::string_view key) const {
    const Value& value = require(*this, key);
    if (const auto result = integer_as<std::int64_t>(value)) return *result;
    wrong_type(key, value, "an integer that fits in int64");
}

double Metadata::real(std::string_view key) const {
    const Value& value = require(*this, key);
    const auto result = std::visit(
        [](const auto& held) -> std::optional<double> {
            using Held = std::decay_t<decltype(held)>;
            if constexpr (std::is_arithmetic_v<Held> && !std::is_same_v<Held, bool>) return static_cast<double>(held);
            return std::nullopt;
        },
        value.storage);
    if (result) return *result;
    wrong_type(key, value, "a number");
}

bool Metadata::boolean(std::string_view key) const {
    const Value& value = require(*this, key);
    if (const auto* flag = std::get_if<bool>(&value.storage)) return *flag;
    wrong_type(key, value, "bool");
}

const Array& Metadata::array(std::string_view key) const {
    const Value& value = require(*this, key);
    if (const auto* items = std::get_if<Array>(&value.storage)) return *items;
    wrong_type(key, value, "array");
}

std::vector<std::string> Metadata::string_array(std::string_view key) const {
    const Array& items = array(key);
    if (items.element_type != ValueType::String) {
        fail("metadata key '{}' is an array of {}, expected an array of strings", key,
             value_type_name(items.element_type));
    }
    std::vector<std::string> result;
    result.reserve(items.items.size());
    for (const Value& item : items.items) result.push_back(std::get<std::string>(item.storage));
    return result;
}

// ---- File ----

File File::open(const std::string& path) {
    auto mapping = std::make_shared<MappedFile>(path);
    File file = parse(mapping->bytes(), path);
    file.mapping_ = std::move(mapping);
    return file;
}

File File::parse(std::span<const std::uint8_t> bytes, const std::string& name) {
    File file;
    file.name_ = name;
    Header contents = Parser(bytes, name).parse();
    file.version_ = contents.version;
    file.alignment_ = contents.alignment;
    file.data_offset_ = contents.data_offset;
    file.metadata_ = std::move(contents.metadata);
    file.tensors_ = std::move(contents.tensors);
    file.tensor_index_ = std::move(contents.tensor_index);
    if (file.tensors_.empty()) return file;

    if (file.data_offset_ > bytes.size()) {
        fail("{}: truncated: tensor data would start at byte {} but the file has {} bytes", name, file.data_offset_,
             bytes.size());
    }
    const std::uint64_t data_size = bytes.size() - file.data_offset_;
    std::vector<std::size_t> order(file.tensors_.size());
    for (TensorInfo& info : file.tensors_) {
        const std::uint64_t size = [&] {
            try {
                return tensor_bytes(info);
            } catch (const Error& error) {
                fail("{}: tensor '{}': {}", name, info.name, error.what());
            }
        }();
        if (info.offset > data_size || size > data_size - info.offset) {
            fail("{}: tensor '{}': bytes {}..{} of the data section lie outside the file ({} bytes of data)", name,
                 info.name, info.offset, info.offset + size, data_size);
        }
        info.data = bytes.subspan(file.data_offset_ + info.offset, size);
    }
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::sort(order.begin(), order.end(),
              [&](std::size_t a, std::size_t b) { return file.tensors_[a].offset < file.tensors_[b].offset; });
    for (std::size_t i = 1; i < order.size(); ++i) {
        const TensorInfo& previous = file.tensors_[order[i - 1]];
        const TensorInfo& current = file.tensors_[order[i]];
        if (current.offset < previous.offset + previous.data.size()) {
            fail("{}: tensor '{}' (offset {}) overlaps tensor '{}' (bytes {}..{})", name, current.name, current.offset,
                 previous.name, previous.offset, previous.offset + previous.data.size());
        }
    }
    return file;
}

const TensorInfo* File::find_tensor(std::string_view tensor_name) const {
    const auto found = tensor_index_.find(tensor_name);
    return found == tensor_index_.end() ? nullptr : &tensors_[found->second];
}

const TensorInfo& File::tensor(std::string_view tensor_name) const {
    const TensorInfo* info = find_tensor(tensor_name);
    if (info == nullptr) fail("{}: no tensor named '{}'", name_, tensor_name);
    return *info;
}

// ---- Writer ----

namespace {

class Sink {
public:
    explicit Sink(std::vector<std::uint8_t>& out) : out_(out) {}

    template <typename T>
    void put(T value) {
        static_assert(std::is_trivially_copyable_v<T>);
        const auto* bytes = reinterpret_cast<const std::uint8_t*>(&value);
        out_.insert(out_.end(), bytes, bytes + sizeof(T));
    }

    void put_string(std::string_view text, std::string_view what) {
        if (!is_valid_utf8(text)) fail("GGUF writer: {} is not valid UTF-8", what);
        put<std::uint64_t>(text.size());
        out_.insert(out_.end(), text.begin(), text.end());
    }

    void pad_to(std::uint64_t alignment) {
        while (out_.size() % alignment != 0) out_.push_back(0);
    }

    void put_value(const Value& value, const std::string& context, int depth) {
        std::visit(
            [&](const auto& held) {
                using Held = std::decay_t<decltype(held)>;
                if constexpr (std::is_same_v<Held, std::string>) {
                    put_string(held, context);
                } else if constexpr (std::is_same_v<Held, Array>) {
                    put_array(held, context, depth + 1);
                } else if constexpr (std::is_same_v<Held, bool>) {
                    put<std::uint8_t>(held ? 1 : 0);
                } else {
                    put(held);
                }
            },
            value.storage);
    }

    void put_array(const Array& array, const std::string& context, int depth) {
        if (depth > kMaxArrayDepth) fail("GGUF writer: {}: arrays nested deeper than {}", context, kMaxArrayDepth);
        put(static_cast<std::uint32_t>(array.element_type));
        put<std::uint64_t>(array.items.size());
        for (const Value& item : array.items) {
            if (item.type() != array.element_type) {
                fail("GGUF writer: {}: array of {} holds a {}", context, value_type_name(array.element_type),
                     value_type_name(item.type()));
            }
            put_value(item, context, depth);
        }
    }

private:
    std::vector<std::uint8_t>& out_;
};

}  // namespace

Writer::Writer(std::uint32_t version, std::uint64_t alignment) : version_(version), alignment_(alignment) {
    if (version != 2 && version != 3) fail("GGUF writer: version {} (only 2 and 3 can be written)", version);
    if (!std::has_single_bit(alignment) || alignment > std::numeric_limits<std::uint32_t>::max()) {
        fail("GGUF writer: alignment {} is not a power of two that fits in uint32", alignment);
    }
}

std::uint64_t Writer::check_tensor(const std::string& name, DType type, const std::vector<std::uint64_t>& dims) const {
    if (name.empty() || !is_valid_utf8(name)) fail("GGUF writer: tensor name '{}' is empty or not UTF-8", name);
    for (const PendingTensor& tensor : tensors_) {
        if (tensor.name == name) fail("GGUF writer: duplicate tensor name '{}'", name);
    }
    if (!dtype_info(type).ggml) fail("GGUF writer: tensor '{}': type {} has no GGUF id", name, dtype_name(type));
    if (dims.empty() || dims.size() > kMaxDims) {
        fail("GGUF writer: tensor '{}': {} dimensions (must be 1 to {})", name, dims.size(), kMaxDims);
    }
    TensorInfo probe;
    probe.type = type;
    probe.dims = dims;
    for (const std::uint64_t dim : dims) {
        if (dim == 0) fail("GGUF writer: tensor '{}': a dimension is zero", name);
    }
    try {
        return tensor_bytes(probe);
    } catch (const Error& error) {
        fail("GGUF writer: tensor '{}': {}", name, error.what());
    }
}

void Writer::add_tensor(std::string name, DType type, std::vector<std::uint64_t> dims,
                        std::span<const std::uint8_t> bytes) {
    const std::uint64_t expected = check_tensor(name, type, dims);
    if (expected != bytes.size()) {
        fail("GGUF writer: tensor '{}': {} bytes given, {} {} needs {}", name, bytes.size(), dtype_name(type),
             fmt::join(dims, "x"), expected);
    }
    tensors_.push_back({std::move(name), type, std::move(dims), expected, false, {bytes.begin(), bytes.end()}});
}

void Writer::add_tensor_deferred(std::string name, DType type, std::vector<std::uint64_t> dims) {
    const std::uint64_t size = check_tensor(name, type, dims);
    tensors_.push_back({std::move(name), type, std::move(dims), size, true, {}});
}

std::vector<std::uint8_t> Writer::header() const {
    // Readers only learn a non-default alignment from this key, so it must agree with the
    // writer's; it is appended when the caller did not set it.
    bool append_alignment = false;
    if (const Value* value = metadata_.find("general.alignment")) {
        const auto* stored = std::get_if<std::uint32_t>(&value->storage);
        if (stored == nullptr || *stored != alignment_) {
            fail("GGUF writer: key 'general.alignment' must be the uint32 {} given to the writer", alignment_);
        }
    } else {
        append_alignment = alignment_ != kDefaultAlignment;
    }
    std::vector<std::uint8_t> out;
    Sink sink(out);
    for (const std::uint8_t byte : kMagic) sink.put(byte);
    sink.put(version_);
    sink.put<std::uint64_t>(tensors_.size());
    sink.put<std::uint64_t>(metadata_.entries().size() + (append_alignment ? 1 : 0));
    const auto put_entry = [&](const std::string& key, const Value& value) {
        if (key.empty()) fail("GGUF writer: empty metadata key");
        const std::string context = fmt::format("key '{}'", key);
        sink.put_string(key, context);
        sink.put(static_cast<std::uint32_t>(value.type()));
        sink.put_value(value, context, 0);
    };
    for (const auto& [key, value] : metadata_.entries()) put_entry(key, value);
    if (append_alignment) put_entry("general.alignment", Value{static_cast<std::uint32_t>(alignment_)});
    // Each tensor starts on an alignment boundary of the (itself aligned) data section.
    std::uint64_t offset = 0;
    for (const PendingTensor& tensor : tensors_) {
        sink.put_string(tensor.name, "tensor name");
        sink.put(static_cast<std::uint32_t>(tensor.dims.size()));
        for (const std::uint64_t dim : tensor.dims) sink.put(dim);
        sink.put(static_cast<std::uint32_t>(tensor.type));
        sink.put(offset);
        offset = align_up(offset + tensor.size, alignment_, "GGUF writer");
    }
    sink.pad_to(alignment_);
    return out;
}

std::vector<std::uint8_t> Writer::serialize() const {
    std::vector<std::uint8_t> out = header();
    Sink sink(out);
    for (const PendingTensor& tensor : tensors_) {
        if (tensor.deferred) fail("GGUF writer: tensor '{}' has no bytes yet (write it with write_streaming)", tensor.name);
        out.insert(out.end(), tensor.bytes.begin(), tensor.bytes.end());
        sink.pad_to(alignment_);
    }
    return out;
}

void Writer::write(const std::string& path) const {
    write_file_atomically(path, serialize());
}

void Writer::write_streaming(const std::string& path, const TensorFill& fill, std::uint64_t chunk_bytes) const {
    if (chunk_bytes == 0) fail("GGUF writer: chunk size must be positive");
    write_file_atomically(path, [&](const ByteSink& sink) {
        const std::vector<std::uint8_t> head = header();
        sink(head);
        std::vector<std::uint8_t> chunk;
        const std::vector<std::uint8_t> padding(alignment_, 0);
        for (std::size_t i = 0; i < tensors_.size(); ++i) {
            const PendingTensor& tensor = tensors_[i];
            if (!tensor.deferred) {
                sink(tensor.bytes);
            } else {
                for (std::uint64_t offset = 0; offset < tensor.size; offset += chunk_bytes) {
                    chunk.resize(static_cast<std::size_t>(std::min(chunk_bytes, tensor.size - offset)));
                    fill(i, offset, chunk);
                    sink(chunk);
                }
            }
            // The data section starts aligned (the header is padded), so each tensor's padding is
            // what its size leaves to the next boundary.
            const std::uint64_t pad = (alignment_ - tensor.size % alignment_) % alignment_;
            sink(std::span(padding).first(static_cast<std::size_t>(pad)));
        }
    });
}

}  // namespace kindred::gguf
