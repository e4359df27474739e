// Goldens written by tools/goldens/gguf_dequant.py with the reference gguf-py package:
// every metadata value type read back, the Writer reproducing gguf-py's bytes, and
// dequantization bit-exact with gguf.quants on random blocks, on the default model and on real
// Q5_0 blocks of Gemma 3 270M (stored in the golden, so no model file is needed).
#include <bit>
#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "core/error.h"
#include "core/mapped_file.h"
#include "formats/gguf.h"
#include "kernels/dequantize.h"
#include "test_paths.h"

namespace kindred::gguf {
namespace {

File open_golden(const std::string& name) { return File::open(testing::source_path("tests/goldens/gguf/" + name)); }

std::vector<float> f32_values(const TensorInfo& info) {
    EXPECT_EQ(info.type, DType::F32) << info.name;
    std::vector<float> values(info.data.size() / sizeof(float));
    std::memcpy(values.data(), info.data.data(), info.data.size());
    return values;
}

// Bitwise comparison: EXPECT_FLOAT_EQ would hide a one-ulp difference (e.g. from an FMA).
void expect_bits_equal(const std::vector<float>& actual, const std::vector<float>& expected, const std::string& what) {
    ASSERT_EQ(actual.size(), expected.size()) << what;
    std::size_t mismatches = 0;
    for (std::size_t i = 0; i < actual.size(); ++i) {
        if (std::bit_cast<std::uint32_t>(actual[i]) != std::bit_cast<std::uint32_t>(expected[i]) && ++mismatches <= 5) {
            ADD_FAILURE() << what << "[" << i << "]: " << actual[i] << " != " << expected[i];
        }
    }
    EXPECT_EQ(mismatches, 0u) << what;
}

template <typename T>
T held(const Value& value) {
    return std::get<T>(value.storage);
}

TEST(GgufGolden, ReadsEveryValueTypeWrittenByGgufPy) {
    const File file = open_golden("metadata.gguf");
    const Metadata& m = file.metadata();
    EXPECT_EQ(file.version(), 3u);
    EXPECT_EQ(file.alignment(), 64u);
    EXPECT_EQ(m.string("general.architecture"), "kindred-golden");
    EXPECT_EQ(held<std::uint8_t>(*m.find("test.u8")), 200);
    EXPECT_EQ(held<std::int8_t>(*m.find("test.i8")), -100);
    EXPECT_EQ(held<std::uint16_t>(*m.find("test.u16")), 60000);
    EXPECT_EQ(held<std::int16_t>(*m.find("test.i16")), -30000);
    EXPECT_EQ(held<std::uint32_t>(*m.find("test.u32")), 4000000000u);
    EXPECT_EQ(held<std::int32_t>(*m.find("test.i32")), -2000000000);
    EXPECT_EQ(held<float>(*m.find("test.f32")), 1.5f);
    EXPECT_EQ(held<bool>(*m.find("test.bool")), true);
    EXPECT_EQ(m.string("test.string"), "h\xc3\xa9llo, w\xc3\xb6rld \xe2\x9c\x93");
    EXPECT_EQ(held<std::uint64_t>(*m.find("test.u64")), (std::uint64_t{1} << 63) + 5);
    EXPECT_EQ(held<std::int64_t>(*m.find("test.i64")), -(std::int64_t{1} << 62));
    EXPECT_EQ(held<double>(*m.find("test.f64")), 0.1);

    // Typed getters convert integers that fit and refuse the rest.
    EXPECT_EQ(m.uint("test.u8"), 200u);
    EXPECT_EQ(m.integer("test.i8"), -100);
    EXPECT_THROW(m.uint("test.i8"), Error);
    EXPECT_THROW(m.integer("test.u64"), Error);
    EXPECT_DOUBLE_EQ(m.real("test.i16"), -30000.0);
    EXPECT_TRUE(m.boolean("test.bool"));
    EXPECT_THROW(m.string("test.u8"), Error);
    EXPECT_THROW(m.uint("missing.key"), Error);

    const Array& u8 = m.array("test.array.u8");
    EXPECT_EQ(u8.element_type, ValueType::UInt8);
    ASSERT_EQ(u8.items.size(), 2u);
    EXPECT_EQ(held<std::uint8_t>(u8.items[1]), 255);
    const Array& i32 = m.array("test.array.i32");
    ASSERT_EQ(i32.items.size(), 3u);
    EXPECT_EQ(held<std::int32_t>(i32.items[1]), -2);
    EXPECT_EQ(held<std::uint64_t>(m.array("test.array.u64").items.at(0)), ~std::uint64_t{0});
    EXPECT_EQ(held<float>(m.array("test.array.f32").items.at(1)), -2.25f);
    EXPECT_EQ(held<double>(m.array("test.array.f64").items.at(0)), -0.1);
    EXPECT_EQ(held<bool>(m.array("test.array.bool").items.at(1)), false);
    EXPECT_EQ(m.string_array("test.array.string"), (std::vector<std::string>{"a", "", "\xc3\xbc"}));
    EXPECT_THROW(m.string_array("test.array.i32"), Error);

    const Array& nested = m.array("test.array.nested");
    EXPECT_EQ(nested.element_type, ValueType::Array);
    ASSERT_EQ(nested.items.size(), 2u);
    const Array& first = held<Array>(nested.items[0]);
    EXPECT_EQ(first.element_type, ValueType::Int32);
    ASSERT_EQ(first.items.size(), 2u);
    EXPECT_EQ(held<std::int32_t>(first.items[1]), 2);
    EXPECT_EQ(held<std::int32_t>(held<Array>(nested.items[1]).items.at(0)), 3);
    const Array& nested_strings = m.array("test.array.nested_strings");
    EXPECT_EQ(held<std::string>(held<Array>(nested_strings.items.at(1)).items.at(1)), "z");

    ASSERT_EQ(file.tensors().size(), 2u);
    const TensorInfo& t = file.tensor("t.f32");
    EXPECT_EQ(t.dims, (std::vector<std::uint64_t>{3, 2}));
    EXPECT_EQ(f32_values(t), (std::vector<float>{-2.5f, -1.5f, -0.5f, 0.5f, 1.5f, 2.5f}));
    const TensorInfo& q = file.tensor("t.q8_0");
    EXPECT_EQ(q.type, DType::Q8_0);
    EXPECT_EQ(q.offset % 64, 0u);
    std::vector<float> row(32);
    dequantize_row(q.type, q.data.data(), row.data(), 32);
    EXPECT_EQ(row.front(), -16.0f);
    EXPECT_EQ(row.back(), 15.0f);
}

TEST(GgufGolden, WriterReproducesGgufPyBytes) {
    const MappedFile golden(testing::source_path("tests/goldens/gguf/metadata.gguf"));
    const File file = File::parse(golden.bytes(), golden.path());
    Writer writer(3, 64);
    for (const auto& [key, value] : file.metadata().entries()) writer.metadata().set(key, value);
    for (const TensorInfo& info : file.tensors()) writer.add_tensor(info.name, info.type, info.dims, info.data);
    const std::vector<std::uint8_t> bytes = writer.serialize();
    ASSERT_EQ(bytes.size(), golden.size());
    EXPECT_TRUE(std::equal(bytes.begin(), bytes.end(), golden.data()));
}

TEST(GgufGolden, DequantizeMatchesGgufPyBitForBit) {
    const File file = open_golden("dequant.gguf");
    int checked = 0;
    for (const DType type : {DType::F32, DType::F16, DType::BF16, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q8_0,
                             DType::Q4_K, DType::Q6_K, DType::MXFP4}) {
        const std::string name(dtype_name(type));
        const TensorInfo& blocks = file.tensor(name + ".blocks");
        ASSERT_EQ(blocks.type, type);
        const std::vector<float> expected = f32_values(file.tensor(name + ".expected"));
        ASSERT_EQ(expected.size(), blocks.element_count());
        // Row by row, as the inference engine calls it.
        const auto row_elements = static_cast<std::int64_t>(blocks.dims[0]);
        const std::uint64_t stride = row_bytes(type, blocks.dims[0]);
        std::vector<float> actual(expected.size());
        for (std::uint64_t r = 0; r < blocks.dims[1]; ++r) {
            dequantize_row(type, blocks.data.data() + r * stride, actual.data() + r * blocks.dims[0], row_elements);
        }
        expect_bits_equal(actual, expected, name);
        std::vector<float> scalar(expected.size());
        detail::dequantize_row_scalar(type, blocks.data.data(), scalar.data(), static_cast<std::int64_t>(scalar.size()));
        expect_bits_equal(scalar, expected, name + " (scalar)");
        ++checked;
    }
    EXPECT_EQ(checked, 10);
}

TEST(GgufGolden, DequantizeGemma3Q5_0RowsLikeGgufPy) {
    const File golden = open_golden("gemma3_q5_0_rows.gguf");
    int checked = 0;
    for (const TensorInfo& blocks : golden.tensors()) {
        const std::string& key = blocks.name;
        const std::size_t suffix = key.rfind(".blocks");
        if (suffix == std::string::npos) continue;
        ASSERT_EQ(blocks.type, DType::Q5_0) << key;
        const std::vector<float> expected = f32_values(golden.tensor(key.substr(0, suffix)));
        ASSERT_EQ(expected.size(), blocks.element_count()) << key;
        std::vector<float> actual(expected.size());
        dequantize_row(DType::Q5_0, blocks.data.data(), actual.data(), static_cast<std::int64_t>(actual.size()));
        expect_bits_equal(actual, expected, key);
        detail::dequantize_row_scalar(DType::Q5_0, blocks.data.data(), actual.data(), static_cast<std::int64_t>(actual.size()));
        expect_bits_equal(actual, expected, key + " (scalar)");
        ++checked;
    }
    EXPECT_EQ(checked, 3);
}

TEST(GgufGolden, DequantizeDefaultModelRowsLikeGgufPy) {
    const File golden = open_golden("model_rows.gguf");
    const File model = File::open(testing::default_model_path());
    ASSERT_EQ(MappedFile(model.name()).size(), golden.metadata().uint("source.file_size"))
        << "the default model is not the file the golden was recorded from";
    for (const TensorInfo& expected_info : golden.tensors()) {
        const std::string& key = expected_info.name;
        const std::size_t hash = key.find('#');
        ASSERT_NE(hash, std::string::npos) << key;
        const TensorInfo& tensor = model.tensor(key.substr(0, hash));
        const std::uint64_t row = std::stoull(key.substr(hash + 1));
        const std::uint64_t stride = row_bytes(tensor.type, tensor.dims[0]);
        std::vector<float> actual(tensor.dims[0]);
        dequantize_row(tensor.type, tensor.data.data() + row * stride, actual.data(),
                       static_cast<std::int64_t>(tensor.dims[0]));
        expect_bits_equal(actual, f32_values(expected_info), key);
    }
    EXPECT_EQ(golden.tensors().size(), 9u);
}

}  // namespace
}  // namespace kindred::gguf
