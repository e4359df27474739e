// Writer <-> reader round trips, writer misuse, and the reader's behaviour on every
// truncation and on deterministic byte flips of a valid file (a cheap in-tree fuzz).
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "core/error.h"
#include "formats/gguf.h"
#include "test_paths.h"

namespace kindred::gguf {
namespace {

Value array_of(ValueType type, std::vector<Value> items) { return Value{Array{type, std::move(items)}}; }

Writer sample_writer(std::uint32_t version, std::uint64_t alignment) {
    Writer writer(version, alignment);
    Metadata& m = writer.metadata();
    m.set("general.architecture", Value{std::string("llama")});
    m.set("u8", Value{std::uint8_t{7}});
    m.set("i8", Value{std::int8_t{-7}});
    m.set("u16", Value{std::uint16_t{65535}});
    m.set("i16", Value{std::int16_t{-32768}});
    m.set("u32", Value{std::uint32_t{1}});
    m.set("i32", Value{std::int32_t{-1}});
    m.set("f32", Value{-0.0f});
    m.set("bool", Value{false});
    m.set("string", Value{std::string("\xe4\xbd\xa0\xe5\xa5\xbd")});
    m.set("u64", Value{std::uint64_t{1} << 40});
    m.set("i64", Value{std::int64_t{-5}});
    m.set("f64", Value{1e300});
    m.set("empty_array", array_of(ValueType::Float32, {}));
    m.set("empty_string", Value{std::string()});
    m.set("nested", array_of(ValueType::Array, {array_of(ValueType::String, {Value{std::string("a")}}),
                                               array_of(ValueType::Bool, {}),
                                               array_of(ValueType::Array, {array_of(ValueType::UInt64, {})})}));
    const std::vector<std::uint8_t> q4_1(20 * 2, 0x5a);
    writer.add_tensor("w.q4_1", DType::Q4_1, {64, 1}, q4_1);
    const std::vector<std::uint8_t> f32(4 * 3, 0x3f);
    writer.add_tensor("w.f32", DType::F32, {3}, f32);
    return writer;
}

TEST(GgufWriter, RoundTripsEveryValueType) {
    for (const std::uint32_t version : {2u, 3u}) {
        for (const std::uint64_t alignment : {1u, 8u, 32u, 256u}) {
            const Writer writer = sample_writer(version, alignment);
            const std::vector<std::uint8_t> bytes = writer.serialize();
            const File file = File::parse(bytes, "roundtrip.gguf");
            EXPECT_EQ(file.version(), version);
            EXPECT_EQ(file.alignment(), alignment);
            EXPECT_EQ(file.data_offset() % alignment, 0u);
            for (const auto& [key, value] : writer.metadata().entries()) {
                const Value* read = file.metadata().find(key);
                ASSERT_NE(read, nullptr) << key;
                EXPECT_TRUE(*read == value) << key;
            }
            EXPECT_EQ(file.metadata().contains("general.alignment"), alignment != 32);
            ASSERT_EQ(file.tensors().size(), 2u);
            const TensorInfo& q = file.tensor("w.q4_1");
            EXPECT_EQ(q.type, DType::Q4_1);
            EXPECT_EQ(q.dims, (std::vector<std::uint64_t>{64, 1}));
            EXPECT_EQ(q.element_count(), 64u);
            EXPECT_EQ(q.data.size(), 40u);
            EXPECT_EQ(q.data[39], 0x5a);
            const TensorInfo& f = file.tensor("w.f32");
            EXPECT_EQ(f.offset % alignment, 0u);
            EXPECT_EQ(f.data.size(), 12u);
            EXPECT_EQ(file.find_tensor("missing"), nullptr);
            EXPECT_THROW((void)file.tensor("missing"), Error);
        }
    }
}

TEST(GgufWriter, WritesAFileTheReaderOpens) {
    const auto dir = std::filesystem::temp_directory_path() / ("kindred-gguf-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const std::string path = (dir / "out.gguf").string();
    sample_writer(3, 32).write(path);
    const File file = File::open(path);
    EXPECT_EQ(file.metadata().string("string"), "\xe4\xbd\xa0\xe5\xa5\xbd");
    EXPECT_EQ(file.tensor("w.q4_1").data[0], 0x5a);
    EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir), {}), 1) << "temporary file left behind";
    EXPECT_THROW(sample_writer(3, 32).write((dir / "no-such-dir" / "x.gguf").string()), Error);
    std::filesystem::remove_all(dir);
}

// Deferred tensors streamed chunk by chunk (chunks smaller than, equal to and straddling a
// tensor, sizes that need padding) give exactly the bytes of the same tensors added whole.
TEST(GgufWriter, StreamingWritesWhatSerializeWrites) {
    const std::vector<std::pair<DType, std::vector<std::uint64_t>>> shapes = {
        {DType::F32, {5}}, {DType::Q8_0, {64, 3}}, {DType::MXFP4, {32, 7}}, {DType::F16, {3, 3}}};
    const auto content = [](std::size_t tensor, std::uint64_t offset) {
        return static_cast<std::uint8_t>((tensor * 131 + offset * 7 + 3) % 251);
    };
    Writer whole, streamed;
    for (Writer* writer : {&whole, &streamed}) writer->metadata().set("general.name", {std::string("stream")});
    for (std::size_t i = 0; i < shapes.size(); ++i) {
        const auto& [type, dims] = shapes[i];
        std::uint64_t count = 1;
        for (const auto dim : dims) count *= dim;
        std::vector<std::uint8_t> bytes(count / dtype_info(type).block_size * dtype_info(type).block_bytes);
        for (std::size_t b = 0; b < bytes.size(); ++b) bytes[b] = content(i, b);
        whole.add_tensor("t" + std::to_string(i), type, dims, bytes);
        streamed.add_tensor_deferred("t" + std::to_string(i), type, dims);
    }
    EXPECT_THROW(streamed.serialize(), Error);  // deferred bytes only come through write_streaming
    const auto dir = std::filesystem::temp_directory_path() / ("kindred-gguf-stream-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    for (const std::uint64_t chunk : {1u, 7u, 64u, 4096u}) {
        const std::string path = (dir / "streamed.gguf").string();
        streamed.write_streaming(path, [&](std::size_t tensor, std::uint64_t offset, std::span<std::uint8_t> out) {
            for (std::size_t b = 0; b < out.size(); ++b) out[b] = content(tensor, offset + b);
        }, chunk);
        std::ifstream in(path, std::ios::binary);
        const std::vector<std::uint8_t> bytes{std::istreambuf_iterator<char>(in), {}};
        EXPECT_EQ(bytes, whole.serialize()) << "chunk " << chunk;
        EXPECT_EQ(File::open(path).tensor("t2").type, DType::MXFP4);
    }
    std::filesystem::remove_all(dir);
}

TEST(GgufWriter, RefusesWhatTheReaderWouldReject) {
    EXPECT_THROW(Writer(1), Error);
    EXPECT_THROW(Writer(3, 48), Error);
    EXPECT_THROW(Writer(3, 0), Error);
    Writer writer;
    const std::vector<std::uint8_t> bytes(16);
    EXPECT_THROW(writer.add_tensor("a", DType::F32, {5}, bytes), Error);        // size mismatch
    EXPECT_THROW(writer.add_tensor("a", DType::Q4_0, {16}, bytes), Error);      // not whole blocks
    EXPECT_THROW(writer.add_tensor("a", DType::F32, {}, bytes), Error);         // no dims
    EXPECT_THROW(writer.add_tensor("a", DType::F32, {4, 0}, bytes), Error);     // zero dim
    EXPECT_THROW(writer.add_tensor("a", DType::U8, {16}, bytes), Error);        // no GGUF id
    EXPECT_THROW(writer.add_tensor("\xff", DType::F32, {4}, bytes), Error);     // bad UTF-8
    writer.add_tensor("a", DType::F32, {4}, bytes);
    EXPECT_THROW(writer.add_tensor("a", DType::F32, {4}, bytes), Error);        // duplicate

    Writer mixed;
    mixed.metadata().set("mixed", array_of(ValueType::Int32, {Value{std::int32_t{1}}, Value{1.0f}}));
    EXPECT_THROW((void)mixed.serialize(), Error);
    Writer bad_string;
    bad_string.metadata().set("s", Value{std::string("\xc0\x80")});
    EXPECT_THROW((void)bad_string.serialize(), Error);
    Writer bad_alignment(3, 64);
    bad_alignment.metadata().set("general.alignment", Value{std::uint32_t{32}});
    EXPECT_THROW((void)bad_alignment.serialize(), Error);
    Writer deep;
    Value nested = array_of(ValueType::UInt8, {});
    for (int i = 0; i < 20; ++i) nested = array_of(ValueType::Array, {nested});
    deep.metadata().set("deep", nested);
    EXPECT_THROW((void)deep.serialize(), Error);
}

TEST(GgufReader, EveryTruncationIsAnError) {
    const std::vector<std::uint8_t> bytes = sample_writer(3, 32).serialize();
    const File full = File::parse(bytes, "full.gguf");
    const TensorInfo& last = full.tensor("w.f32");
    // Only the zero padding after the last tensor may be cut without losing anything.
    const std::size_t needed = full.data_offset() + last.offset + last.data.size();
    for (std::size_t size = 0; size < bytes.size(); ++size) {
        bool accepted = true;
        try {
            (void)File::parse(std::span<const std::uint8_t>(bytes.data(), size), "prefix.gguf");
        } catch (const Error&) {
            accepted = false;
        }
        EXPECT_EQ(accepted, size >= needed) << size;
    }
}

TEST(GgufReader, ByteFlipsParseOrThrowError) {
    const std::vector<std::uint8_t> original = sample_writer(3, 32).serialize();
    std::mt19937_64 rng(12345);
    for (int trial = 0; trial < 3000; ++trial) {
        std::vector<std::uint8_t> bytes = original;
        const int flips = 1 + static_cast<int>(rng() % 4);
        for (int f = 0; f < flips; ++f) bytes[rng() % bytes.size()] = static_cast<std::uint8_t>(rng());
        try {
            const File file = File::parse(bytes, "flipped.gguf");
            for (const TensorInfo& info : file.tensors()) {
                ASSERT_GE(info.data.data(), bytes.data());
                ASSERT_LE(info.data.data() + info.data.size(), bytes.data() + bytes.size());
            }
        } catch (const Error&) {
        }
    }
}

}  // namespace
}  // namespace kindred::gguf
