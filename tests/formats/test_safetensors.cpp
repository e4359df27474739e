// Safetensors reader against files written by the Python `safetensors` package
// (tools/goldens/safetensors_and_configs.py), writer round trips, sharded checkpoints, and the
// malformed corpus (every file must yield Error with the expected phrase).
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>


#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/half.h"
#include "formats/safetensors.h"
#include "malformed_corpus.h"
#include "scratch_dir.h"
#include "test_paths.h"

namespace kindred::safetensors {
namespace {

using nlohmann::json;
using testing::ScratchDir;
using testing::source_path;

json read_json(const std::string& path) {
    std::ifstream in(path);
    return json::parse(in);
}

// Element i of a tensor as double (exact for every type the goldens use).
double element(const TensorInfo& tensor, std::size_t i) {
    const std::uint8_t* p = tensor.data.data();
    auto load = [&]<typename T>(T) {
        T value;
        std::memcpy(&value, p + i * sizeof(T), sizeof(T));
        return value;
    };
    switch (tensor.type) {
        case DType::F32: return load(float{});
        case DType::F16: return fp16_to_fp32(load(std::uint16_t{}));
        case DType::BF16: return bf16_to_fp32(load(std::uint16_t{}));
        case DType::I8: return load(std::int8_t{});
        case DType::U8: return load(std::uint8_t{});
        case DType::I32: return load(std::int32_t{});
        case DType::I64: return static_cast<double>(load(std::int64_t{}));
        default: ADD_FAILURE() << "unexpected type"; return 0;
    }
}

void expect_tensors(const Checkpoint& checkpoint, const json& expected) {
    ASSERT_EQ(checkpoint.tensors().size(), expected.size());
    for (const auto& [name, want] : expected.items()) {
        SCOPED_TRACE(name);
        const TensorInfo& tensor = checkpoint.tensor(name);
        EXPECT_EQ(dtype_name(tensor.type), want["dtype"].get<std::string>());
        EXPECT_EQ(tensor.shape, want["shape"].get<std::vector<std::uint64_t>>());
        const auto& values = want["values"];
        ASSERT_EQ(tensor.element_count(), values.size());
        for (std::size_t i = 0; i < values.size(); ++i) {
            if (tensor.type == DType::I64) {
                std::int64_t value;
                std::memcpy(&value, tensor.data.data() + 8 * i, 8);
                EXPECT_EQ(value, values[i].get<std::int64_t>()) << i;  // beyond double's 53 bits
            } else {
                EXPECT_EQ(element(tensor, i), values[i].get<double>()) << i;  // exact: values are k/4
            }
        }
    }
}

const std::string kGoldens = "tests/goldens/safetensors/";

TEST(Safetensors, ReadsEveryDtypeWrittenByThePythonPackage) {
    const json expected = read_json(source_path(kGoldens + "expected.json"));
    const Checkpoint checkpoint = Checkpoint::open(source_path(kGoldens + "all_dtypes.safetensors"));
    expect_tensors(checkpoint, expected["all_dtypes.safetensors"]["tensors"]);
    for (const auto& [key, value] : expected["all_dtypes.safetensors"]["metadata"].items()) {
        ASSERT_TRUE(checkpoint.metadata().contains(key)) << key;
        EXPECT_EQ(checkpoint.metadata().at(key), value.get<std::string>());
    }
    EXPECT_EQ(checkpoint.find("missing"), nullptr);
    EXPECT_THROW(checkpoint.tensor("missing"), Error);
}

TEST(Safetensors, RefusesUnsupportedDtypeNamingTensor) {
    try {
        Checkpoint::open(source_path(kGoldens + "unsupported_f64.safetensors"));
        FAIL() << "F64 accepted";
    } catch (const Error& error) {
        const std::string message = error.what();
        EXPECT_NE(message.find("'wide'"), std::string::npos) << message;
        EXPECT_NE(message.find("F64"), std::string::npos) << message;
        EXPECT_NE(message.find("unsupported_f64.safetensors"), std::string::npos) << message;
    }
}

TEST(Safetensors, ReadsShardedCheckpointByIndexOrFolder) {
    const json expected = read_json(source_path(kGoldens + "expected.json"))["sharded"]["tensors"];
    for (const std::string& path : {source_path(kGoldens + "sharded/model.safetensors.index.json"),
                                   source_path(kGoldens + "sharded")}) {
        SCOPED_TRACE(path);
        const Checkpoint checkpoint = Checkpoint::open(path);
        EXPECT_EQ(checkpoint.files().size(), 2u);
        expect_tensors(checkpoint, expected);
        EXPECT_EQ(checkpoint.metadata().at("format"), "pt");
    }
}

std::vector<std::uint8_t> file_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
}

struct Sample {
    std::vector<std::uint8_t> a = std::vector<std::uint8_t>(4 * 6), b = std::vector<std::uint8_t>(2 * 5),
                              c = std::vector<std::uint8_t>(8 * 3), d = std::vector<std::uint8_t>(7);
    Sample() {
        for (auto* bytes : {&a, &b, &c, &d}) {
            for (std::size_t i = 0; i < bytes->size(); ++i) (*bytes)[i] = static_cast<std::uint8_t>(i * 13 + bytes->size());
        }
    }
    Writer writer() const {
        Writer w;
        w.set_metadata("format", "pt");
        w.add_tensor("a.weight", DType::F32, {2, 3}, a);
        w.add_tensor("b.bias", DType::BF16, {5}, b);
        w.add_tensor("c.index", DType::I64, {3, 1}, c);
        w.add_tensor("d.bytes", DType::U8, {7}, d);
        return w;
    }
    void expect_in(const Checkpoint& checkpoint) const {
        ASSERT_EQ(checkpoint.tensors().size(), 4u);
        const std::pair<const char*, const std::vector<std::uint8_t>*> all[] = {
            {"a.weight", &a}, {"b.bias", &b}, {"c.index", &c}, {"d.bytes", &d}};
        for (const auto& [name, bytes] : all) {
            const TensorInfo& tensor = checkpoint.tensor(name);
            EXPECT_TRUE(std::equal(tensor.data.begin(), tensor.data.end(), bytes->begin(), bytes->end())) << name;
        }
        EXPECT_EQ(checkpoint.tensor("a.weight").shape, (std::vector<std::uint64_t>{2, 3}));
        EXPECT_EQ(checkpoint.tensor("c.index").type, DType::I64);
    }
};

TEST(SafetensorsWriter, RoundTripsSingleFile) {
    const Sample sample;
    const ScratchDir dir{"kindred-st"};
    const Writer writer = sample.writer();
    writer.write(dir / "out.safetensors");
    const Checkpoint checkpoint = Checkpoint::open(dir / "out.safetensors");
    sample.expect_in(checkpoint);
    EXPECT_EQ(checkpoint.metadata().at("format"), "pt");
    EXPECT_EQ(file_bytes(dir / "out.safetensors"), writer.serialize());
    // Data starts 8-byte aligned, as the reference writer arranges.
    const auto bytes = writer.serialize();
    std::uint64_t header = 0;
    std::memcpy(&header, bytes.data(), 8);
    EXPECT_EQ(header % 8, 0u);
    // Nothing but the file is left in the folder (the temporary was renamed).
    EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 1);
}

TEST(SafetensorsWriter, ShardsLikeHuggingFace) {
    const Sample sample;
    const ScratchDir dir{"kindred-st"};
    // Sizes 24, 10, 24, 7: a + b = 34 fills a 34-byte shard exactly; c + d = 31 make the second.
    const std::string index = sample.writer().write_sharded(dir / "ckpt", 34);
    EXPECT_EQ(index, dir / "ckpt/model.safetensors.index.json");
    const Checkpoint checkpoint = Checkpoint::open(dir / "ckpt");
    EXPECT_EQ(checkpoint.files().size(), 2u);
    sample.expect_in(checkpoint);
    const json parsed = read_json(index);
    EXPECT_EQ(parsed["metadata"]["total_size"], 24 + 10 + 24 + 7);
    EXPECT_EQ(parsed["weight_map"]["b.bias"], "model-00001-of-00002.safetensors");
    EXPECT_EQ(parsed["weight_map"]["c.index"], "model-00002-of-00002.safetensors");

    // With 20 bytes, each 24-byte tensor exceeds the limit and gets a shard of its own.
    sample.writer().write_sharded(dir / "small", 20);
    const Checkpoint small = Checkpoint::open(dir / "small/model.safetensors.index.json");
    EXPECT_EQ(small.files().size(), 4u);
    sample.expect_in(small);

    const std::string single = sample.writer().write_sharded(dir / "one", 1000);
    EXPECT_EQ(single, dir / "one/model.safetensors");
    sample.expect_in(Checkpoint::open(dir / "one"));
}

TEST(SafetensorsWriter, RejectsBadTensors) {
    const std::vector<std::uint8_t> bytes(8);
    Writer writer;
    EXPECT_THROW(writer.add_tensor("x", DType::F32, {3}, bytes), Error);       // 12 bytes needed
    EXPECT_THROW(writer.add_tensor("x", DType::Q4_0, {32}, bytes), Error);     // not a safetensors dtype
    EXPECT_THROW(writer.add_tensor("__metadata__", DType::U8, {8}, bytes), Error);
    writer.add_tensor("x", DType::F32, {2}, bytes);
    EXPECT_THROW(writer.add_tensor("x", DType::F32, {2}, bytes), Error);
    EXPECT_THROW(writer.write_sharded("/nonexistent-kindred/x", 0), Error);
}

TEST(SafetensorsCheckpoint, ShardErrorsNameIndexAndTensor) {
    const Sample sample;
    const ScratchDir dir{"kindred-st"};
    sample.writer().write_sharded(dir / "ckpt", 34);
    const std::string index = dir / "ckpt/model.safetensors.index.json";
    const json original = read_json(index);
    auto expect_error = [&](const json& edited, const std::string& phrase) {
        std::ofstream(index) << edited.dump();
        try {
            Checkpoint::open(index);
            ADD_FAILURE() << "accepted: " << phrase;
        } catch (const Error& error) {
            EXPECT_NE(std::string(error.what()).find(phrase), std::string::npos) << error.what();
        }
    };
    json edited = original;
    edited["weight_map"]["a.weight"] = "model-00009-of-00009.safetensors";
    expect_error(edited, "shard model-00009-of-00009.safetensors is missing");
    edited = original;
    edited["weight_map"]["a.weight"] = "model-00002-of-00002.safetensors";
    expect_error(edited, "tensor 'a.weight'");
    edited = original;
    edited["weight_map"]["a.weight"] = "../escape.safetensors";
    expect_error(edited, "leaves the checkpoint folder");
    edited = original;
    edited["weight_map"]["a.weight"] = "/etc/passwd";
    expect_error(edited, "not a relative path");
    expect_error(json{{"metadata", {}}}, "no 'weight_map'");
    expect_error(json{{"weight_map", json::object()}}, "weight_map is empty");

    // The same tensor in two shards.
    const std::vector<std::uint8_t> four(4);
    Writer extra;
    extra.add_tensor("a.weight", DType::F32, {1}, four);
    extra.add_tensor("other", DType::F32, {1}, four);
    extra.write(dir / "ckpt/extra.safetensors");
    edited = original;
    edited["weight_map"]["other"] = "extra.safetensors";
    expect_error(edited, "appears in both");

    EXPECT_THROW(Checkpoint::open(dir.path().string()), Error);  // neither index nor model.safetensors
    EXPECT_THROW(Checkpoint::open(dir / "absent.safetensors"), Error);
}

TEST(SafetensorsCorpus, EveryMalformedFileYieldsErrorWithItsPhrase) {
    kindred::testing::expect_every_corpus_file_refused(
        source_path("tests/corpus/safetensors-malformed"),
        [](const std::filesystem::path& file, const std::string&) { File::open(file.string()); });
}

TEST(SafetensorsParse, InMemoryBytesMatchFileReader) {
    const Sample sample;
    const std::vector<std::uint8_t> bytes = sample.writer().serialize();
    const File file = File::parse(bytes, "memory");
    EXPECT_EQ(file.tensors().size(), 4u);
    // Tensors come back in data order, which is the order they were added.
    EXPECT_EQ(file.tensors().front().name, "a.weight");
    EXPECT_EQ(file.tensors().back().name, "d.bytes");
    EXPECT_EQ(file.find("b.bias")->data.data(), bytes.data() + (bytes.size() - 7 - 24 - 10));
    // Every truncation of a valid file is an error, never a crash.
    for (std::size_t size = 0; size < bytes.size(); ++size) {
        EXPECT_THROW(File::parse(std::span(bytes).first(size), "truncated"), Error) << size;
    }
}

TEST(SafetensorsParse, EmptyHeaderIsAnEmptyFile) {
    const std::vector<std::uint8_t> bytes = {2, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
    EXPECT_TRUE(File::parse(bytes, "empty").tensors().empty());
}

}  // namespace
}  // namespace kindred::safetensors
