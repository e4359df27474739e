// model/kv_cache.h's element types: what an F16 and a Q8_0 cache store for keys and values and read
// back, byte for byte and bit for bit against numpy's float16 and gguf-py's Q8_0
// (tools/goldens/kv_cache_formats.py); the names `--kv-cache` takes; the bytes each type reserves.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "kernels/dequantize.h"
#include "kernels/kernel_test_util.h"
#include "model/kv_cache.h"
#include "test_paths.h"

namespace kindred::model {
namespace {

ModelConfig one_head_config(std::int64_t head_dim) {
    ModelConfig config;
    config.num_layers = 2;
    config.num_kv_heads = 1;
    config.head_dim = head_dim;
    config.context_length = 16;
    return config;
}

// Each golden row stored as layer 1's keys at position i and its values at position rows - 1 - i
// (so that keys and values, layers and positions are all told apart), then compared as stored and
// as read back.
TEST(KvCache, NarrowTypesStoreAndReadBackAsNumpyAndGguf) {
    std::ifstream in(kindred::testing::source_path("tests/goldens/kv_cache/kv_cache_formats.json"));
    const auto golden = nlohmann::json::parse(in);
    const std::int64_t rows = golden.at("rows"), head_dim = golden.at("head_dim");
    const auto input = kindred::testing::from_hex<float>(golden.at("input"));
    const ModelConfig config = one_head_config(head_dim);
    for (const auto& [type, name] : {std::pair{DType::F16, "f16"}, std::pair{DType::Q8_0, "q8_0"}}) {
        SCOPED_TRACE(name);
        const auto stored = kindred::testing::from_hex<std::uint8_t>(golden.at(name));
        const auto read = kindred::testing::from_hex<float>(golden.at(std::string(name) + "_read"));
        const auto row_size = static_cast<std::size_t>(row_bytes(type, static_cast<std::uint64_t>(head_dim)));
        ASSERT_EQ(stored.size(), static_cast<std::size_t>(rows) * row_size);
        KvCache cache(config, rows, type);
        for (std::int64_t i = 0; i < rows; ++i)
            cache.store(1, i, input.data() + i * head_dim, input.data() + (rows - 1 - i) * head_dim);
        for (std::int64_t i = 0; i < rows; ++i) {
            const auto* key = static_cast<const std::uint8_t*>(cache.keys(1)) + i * row_size;
            const auto* value = static_cast<const std::uint8_t*>(cache.values(1)) + (rows - 1 - i) * row_size;
            const std::uint8_t* want = stored.data() + i * row_size;
            EXPECT_EQ(std::memcmp(key, want, row_size), 0) << "keys, row " << i;
            EXPECT_EQ(std::memcmp(value, want, row_size), 0) << "values, row " << i;
            std::vector<float> back(static_cast<std::size_t>(head_dim));
            dequantize_row(type, key, back.data(), head_dim);
            // Bits, so that the infinities of the rows beyond fp16's range compare too.
            EXPECT_EQ(std::memcmp(back.data(), read.data() + i * head_dim, back.size() * sizeof(float)), 0) << "row " << i;
        }
    }
}

TEST(KvCache, TypesByName) {
    EXPECT_EQ(kv_cache_type_from_name("f32"), DType::F32);
    EXPECT_EQ(kv_cache_type_from_name("f16"), DType::F16);
    EXPECT_EQ(kv_cache_type_from_name("q8_0"), DType::Q8_0);
    EXPECT_EQ(kv_cache_type_from_name("bf16"), std::nullopt);
    EXPECT_EQ(kv_cache_type_from_name("Q8_0"), std::nullopt);
    EXPECT_EQ(kv_cache_type_name(DType::Q8_0), "q8_0");
    EXPECT_THROW(kv_cache_type_name(DType::Q4_0), Error);
    EXPECT_THROW(KvCache(one_head_config(64), 4, DType::BF16), Error);
    try {
        KvCache(one_head_config(48), 4, DType::Q8_0);
        ADD_FAILURE() << "a head_dim of 48 is not whole Q8_0 blocks";
    } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find("q8_0 needs head_dim to be a multiple of 32"), std::string::npos)
            << error.what();
    }
    EXPECT_NO_THROW(KvCache(one_head_config(48), 4, DType::F16));
}

// fp16 halves the reservation; Q8_0 keeps 34 bytes per 32 elements, 17/64 of fp32's.
TEST(KvCache, ReservedBytesFollowTheType) {
    const ModelConfig config = one_head_config(64);
    const std::uint64_t f32 = 2 * 2 * 16 * 64 * sizeof(float);  // keys and values, 2 layers, 16 tokens
    EXPECT_EQ(KvCache(config, 16).reserved_bytes(), f32);
    EXPECT_EQ(KvCache(config, 16, DType::F16).reserved_bytes(), f32 / 2);
    EXPECT_EQ(KvCache(config, 16, DType::Q8_0).reserved_bytes(), f32 * 17 / 64);
}

}  // namespace
}  // namespace kindred::model
