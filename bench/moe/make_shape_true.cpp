// kindred_make_shape_true MODEL OUT.gguf [--tokenizer-dir DIR]: a random-weight GGUF with the real
// tensor list, shapes, quantization types and metadata of MODEL, so that loading, memory and
// speed can be measured at real size without the real weights:
//   gpt-oss-20b     arch gpt-oss, 24 layers, hidden 2880, 64 q / 8 kv heads of 64, 32 experts
//                   (top-4) of width 2880 in MXFP4, everything else Q8_0 (ggml-org's
//                   gpt-oss-20b-mxfp4.gguf keeps its non-expert matrices in Q8_0), norms,
//                   biases, sinks and router F32; YaRN (factor 32 over 4096), window 128 on
//                   alternate layers; about 12 GB
//   qwen3-30b-a3b   arch qwen3moe, 48 layers, hidden 2048, 32 q / 4 kv heads of 128, 128 experts
//                   (top-8) of width 768; every matrix Q4_K but the output head (Q6_K), as a
//                   Q4_K_M file mostly is; about 17 GB
// The values are random but sane for each type (scales of about 2^-5 times small codes, norms
// near 1), so the forward computes finite numbers. The tokenizer is the real one when
// --tokenizer-dir holds the family's tokenizer.json (../shared/tokenizers/<gpt-oss|qwen3>), its
// vocabulary padded to the embedding's rows with unused tokens as llama.cpp's converter pads;
// without it the file has no tokenizer (Kindred's decoder does not need one; llama.cpp does).
// The file is written through gguf::Writer::write_streaming: one 69 MB chunk of tensor data in
// memory at a time, never the model.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "../bench_main.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/half.h"
#include "core/json.h"
#include "core/progress.h"
#include "formats/gguf.h"

namespace {

using kindred::DType;
using kindred::fail;
using kindred::gguf::Array;
using kindred::gguf::Value;
using kindred::gguf::ValueType;
using kindred::gguf::Writer;

struct Tensor {
    std::string name;
    DType type;
    std::vector<std::uint64_t> dims;  // ggml order: the row (input) length first
};

struct Model {
    std::string arch;
    std::string tokenizer_family;  // folder under ../shared/tokenizers
    std::string pre;               // tokenizer.ggml.pre
    std::uint64_t vocab = 0;
    std::vector<std::pair<std::string, Value>> keys;  // without the "<arch>." prefix
    std::vector<Tensor> tensors;
};

Value u32(std::uint64_t v) { return {static_cast<std::uint32_t>(v)}; }
Value f32(double v) { return {static_cast<float>(v)}; }

// The layer-independent tensors and keys every decoder has.
void add_common(Model& m, std::uint64_t hidden, DType matrices, DType output) {
    m.tensors.push_back({"token_embd.weight", matrices, {hidden, m.vocab}});
    m.tensors.push_back({"output_norm.weight", DType::F32, {hidden}});
    m.tensors.push_back({"output.weight", output, {hidden, m.vocab}});
}

void add_attention(Model& m, const std::string& blk, std::uint64_t hidden, std::uint64_t q_dim, std::uint64_t kv_dim,
                   DType type) {
    m.tensors.push_back({blk + "attn_norm.weight", DType::F32, {hidden}});
    m.tensors.push_back({blk + "attn_q.weight", type, {hidden, q_dim}});
    m.tensors.push_back({blk + "attn_k.weight", type, {hidden, kv_dim}});
    m.tensors.push_back({blk + "attn_v.weight", type, {hidden, kv_dim}});
    m.tensors.push_back({blk + "attn_output.weight", type, {q_dim, hidden}});
}

void add_experts(Model& m, const std::string& blk, std::uint64_t hidden, std::uint64_t width, std::uint64_t experts,
                 DType type) {
    m.tensors.push_back({blk + "ffn_gate_inp.weight", DType::F32, {hidden, experts}});
    m.tensors.push_back({blk + "ffn_gate_exps.weight", type, {hidden, width, experts}});
    m.tensors.push_back({blk + "ffn_up_exps.weight", type, {hidden, width, experts}});
    m.tensors.push_back({blk + "ffn_down_exps.weight", type, {width, hidden, experts}});
}

// The "<arch>." keys both families have (llama.cpp's names; model_config_from_gguf reads them).
struct Hyper {
    std::uint64_t context, hidden, feed_forward, layers, heads, kv_heads, head_dim, experts, used, width;
    double rms_eps, rope_base;
};

std::vector<std::pair<std::string, Value>> decoder_keys(const Model& m, const Hyper& h) {
    return {{"vocab_size", u32(m.vocab)},
            {"context_length", u32(h.context)},
            {"embedding_length", u32(h.hidden)},
            {"feed_forward_length", u32(h.feed_forward)},
            {"block_count", u32(h.layers)},
            {"attention.head_count", u32(h.heads)},
            {"attention.head_count_kv", u32(h.kv_heads)},
            {"attention.key_length", u32(h.head_dim)},
            {"attention.value_length", u32(h.head_dim)},
            {"attention.layer_norm_rms_epsilon", f32(h.rms_eps)},
            {"rope.freq_base", f32(h.rope_base)},
            {"expert_count", u32(h.experts)},
            {"expert_used_count", u32(h.used)},
            {"expert_feed_forward_length", u32(h.width)}};
}

Model gpt_oss_20b() {
    Model m{"gpt-oss", "gpt-oss", "gpt-4o", 201088, {}, {}};
    const Hyper h{131072, 2880, 2880, 24, 64, 8, 64, 32, 4, 2880, 1e-5, 150000};
    m.keys = decoder_keys(m, h);
    m.keys.insert(m.keys.end(), {{"attention.sliding_window", u32(128)},
                                 {"rope.scaling.type", {std::string("yarn")}},
                                 {"rope.scaling.factor", f32(32)},
                                 {"rope.scaling.original_context_length", u32(4096)}});
    const std::uint64_t q_dim = h.heads * h.head_dim, kv_dim = h.kv_heads * h.head_dim;
    add_common(m, h.hidden, DType::Q8_0, DType::Q8_0);
    for (std::uint64_t l = 0; l < h.layers; ++l) {
        const std::string blk = fmt::format("blk.{}.", l);
        add_attention(m, blk, h.hidden, q_dim, kv_dim, DType::Q8_0);
        m.tensors.push_back({blk + "attn_q.bias", DType::F32, {q_dim}});
        m.tensors.push_back({blk + "attn_k.bias", DType::F32, {kv_dim}});
        m.tensors.push_back({blk + "attn_v.bias", DType::F32, {kv_dim}});
        m.tensors.push_back({blk + "attn_output.bias", DType::F32, {h.hidden}});
        m.tensors.push_back({blk + "attn_sinks.weight", DType::F32, {h.heads}});
        m.tensors.push_back({blk + "post_attention_norm.weight", DType::F32, {h.hidden}});  // the MLP's norm
        add_experts(m, blk, h.hidden, h.width, h.experts, DType::MXFP4);
        m.tensors.push_back({blk + "ffn_gate_inp.bias", DType::F32, {h.experts}});
        m.tensors.push_back({blk + "ffn_gate_exps.bias", DType::F32, {h.width, h.experts}});
        m.tensors.push_back({blk + "ffn_up_exps.bias", DType::F32, {h.width, h.experts}});
        m.tensors.push_back({blk + "ffn_down_exps.bias", DType::F32, {h.hidden, h.experts}});
    }
    return m;
}

Model qwen3_30b_a3b() {
    Model m{"qwen3moe", "qwen3", "qwen2", 151936, {}, {}};
    const Hyper h{40960, 2048, 6144, 48, 32, 4, 128, 128, 8, 768, 1e-6, 1000000};
    m.keys = decoder_keys(m, h);
    add_common(m, h.hidden, DType::Q4_K, DType::Q6_K);
    for (std::uint64_t l = 0; l < h.layers; ++l) {
        const std::string blk = fmt::format("blk.{}.", l);
        add_attention(m, blk, h.hidden, h.heads * h.head_dim, h.kv_heads * h.head_dim, DType::Q4_K);
        m.tensors.push_back({blk + "attn_q_norm.weight", DType::F32, {h.head_dim}});
        m.tensors.push_back({blk + "attn_k_norm.weight", DType::F32, {h.head_dim}});
        m.tensors.push_back({blk + "ffn_norm.weight", DType::F32, {h.hidden}});
        add_experts(m, blk, h.hidden, h.width, h.experts, DType::Q4_K);
    }
    return m;
}

// tokenizer.ggml.* from a tokenizer.json: byte-level BPE tokens by id (added tokens CONTROL,
// padding UNUSED up to the model's vocabulary), merges as "a b".
void add_tokenizer(Writer& writer, const Model& m, const std::string& directory) {
    const std::string path = directory + "/tokenizer.json";
    const nlohmann::json root = kindred::read_json_file(path, 64u << 20, 64);
    std::vector<std::string> tokens(m.vocab);
    std::vector<std::int32_t> types(m.vocab, 5);  // UNUSED
    for (const auto& [text, id] : root.at("model").at("vocab").items()) {
        const auto i = id.get<std::uint64_t>();
        if (i >= m.vocab) fail("{}: token id {} is beyond the model's vocabulary of {}", path, i, m.vocab);
        tokens[i] = text;
        types[i] = 1;  // NORMAL
    }
    for (const auto& added : root.at("added_tokens")) {
        const auto i = added.at("id").get<std::uint64_t>();
        if (i >= m.vocab) fail("{}: added token id {} is beyond the model's vocabulary of {}", path, i, m.vocab);
        tokens[i] = added.at("content").get<std::string>();
        types[i] = 3;  // CONTROL
    }
    for (std::uint64_t i = 0; i < m.vocab; ++i)
        if (tokens[i].empty()) tokens[i] = fmt::format("[PAD{}]", i);
    Array token_array{ValueType::String, {}}, type_array{ValueType::Int32, {}}, merge_array{ValueType::String, {}};
    for (std::uint64_t i = 0; i < m.vocab; ++i) {
        token_array.items.push_back({tokens[i]});
        type_array.items.push_back({types[i]});
    }
    for (const auto& merge : root.at("model").at("merges"))
        merge_array.items.push_back({merge.is_string() ? merge.get<std::string>()
                                                       : merge.at(0).get<std::string>() + " " + merge.at(1).get<std::string>()});
    writer.metadata().set("tokenizer.ggml.model", {std::string("gpt2")});
    writer.metadata().set("tokenizer.ggml.pre", {m.pre});
    writer.metadata().set("tokenizer.ggml.tokens", {std::move(token_array)});
    writer.metadata().set("tokenizer.ggml.token_type", {std::move(type_array)});
    writer.metadata().set("tokenizer.ggml.merges", {std::move(merge_array)});
    const std::string eos = m.arch == "gpt-oss" ? "<|return|>" : "<|im_end|>";
    for (std::uint64_t i = 0; i < m.vocab; ++i)
        if (tokens[i] == eos) writer.metadata().set("tokenizer.ggml.eos_token_id", u32(i));
}

// Random but sane contents of one type, block by block: `bytes` starts on a block boundary.
class Filler {
public:
    void fill(DType type, std::span<std::uint8_t> bytes, bool norm) {
        const auto& info = kindred::dtype_info(type);
        for (std::size_t at = 0; at < bytes.size(); at += info.block_bytes)
            block(type, bytes.subspan(at, info.block_bytes), norm);
    }

private:
    std::uint64_t next() {  // xorshift64*
        state_ ^= state_ >> 12;
        state_ ^= state_ << 25;
        state_ ^= state_ >> 27;
        return state_ * 0x2545F4914F6CDD1DULL;
    }
    float uniform() { return static_cast<float>(next() >> 40) / static_cast<float>(1 << 24) * 2.0f - 1.0f; }
    void random_bytes(std::span<std::uint8_t> out) {
        for (std::size_t i = 0; i < out.size(); i += 8) {
            const std::uint64_t r = next();
            std::memcpy(out.data() + i, &r, std::min<std::size_t>(8, out.size() - i));
        }
    }
    void put_half(std::uint8_t* at, float value) {
        const std::uint16_t h = kindred::fp32_to_fp16(value);
        std::memcpy(at, &h, 2);
    }
    void block(DType type, std::span<std::uint8_t> b, bool norm) {
        switch (type) {
            case DType::F32: {
                const float value = norm ? 1.0f + 0.1f * uniform() : 0.05f * uniform();
                std::memcpy(b.data(), &value, 4);
                return;
            }
            case DType::MXFP4:  // E8M0 scale 2^-5..2^-3, random e2m1 codes (|value| <= 6 · scale)
                random_bytes(b);
                b[0] = static_cast<std::uint8_t>(122 + next() % 3);
                return;
            case DType::Q8_0:  // fp16 scale, 32 int8 codes
                random_bytes(b);
                put_half(b.data(), 0.0005f);
                return;
            case DType::Q4_K:  // fp16 d and dmin, 6-bit scales and mins, 4-bit codes
                random_bytes(b);
                put_half(b.data(), 0.0005f);
                put_half(b.data() + 2, 0.0005f);
                return;
            case DType::Q6_K:  // 6-bit codes, int8 scales, fp16 d last
                random_bytes(b);
                put_half(b.data() + 208, 0.0001f);
                return;
            default: fail("no random filler for type {}", kindred::dtype_name(type));
        }
    }
    std::uint64_t state_ = 0x9E3779B97F4A7C15ULL;
};

int run(int argc, char** argv) {
    if (argc < 3) fail("usage: kindred_make_shape_true gpt-oss-20b|qwen3-30b-a3b OUT.gguf [--tokenizer-dir DIR]");
    const std::string which = argv[1], out = argv[2];
    std::string tokenizer_dir;
    for (int i = 3; i + 1 < argc; i += 2) {
        if (std::string(argv[i]) != "--tokenizer-dir") fail("unknown option {}", argv[i]);
        tokenizer_dir = argv[i + 1];
    }
    const Model m = which == "gpt-oss-20b"     ? gpt_oss_20b()
                    : which == "qwen3-30b-a3b" ? qwen3_30b_a3b()
                                               : (fail("unknown model '{}' (gpt-oss-20b or qwen3-30b-a3b)", which), Model{});
    Writer writer;
    writer.metadata().set("general.architecture", {m.arch});
    writer.metadata().set("general.name", {which + " (shape-true random weights)"});
    for (const auto& [key, value] : m.keys) writer.metadata().set(m.arch + "." + key, value);
    if (!tokenizer_dir.empty()) add_tokenizer(writer, m, tokenizer_dir);
    std::uint64_t total = 0;
    for (const Tensor& t : m.tensors) {
        writer.add_tensor_deferred(t.name, t.type, t.dims);
        std::uint64_t count = 1;
        for (const auto dim : t.dims) count *= dim;
        total += count / kindred::dtype_info(t.type).block_size * kindred::dtype_info(t.type).block_bytes;
    }
    std::fprintf(stderr, "writing %s: %zu tensors, %.2f GB of weights\n", out.c_str(), m.tensors.size(),
                 static_cast<double>(total) / 1e9);
    // Chunks are a multiple of every block size used (4, 17, 34, 144, 210 bytes), so each starts
    // on a block boundary.
    constexpr std::uint64_t chunk = 4ull * 17 * 9 * 16 * 5 * 7 * 200;
    Filler filler;
    kindred::ProgressOptions shown;
    shown.label = "write";
    shown.unit = "MB";
    kindred::Progress progress(static_cast<std::int64_t>(total >> 20), shown);
    std::uint64_t written = 0;
    writer.write_streaming(out, [&](std::size_t tensor, std::uint64_t, std::span<std::uint8_t> bytes) {
        const Tensor& t = m.tensors[tensor];
        filler.fill(t.type, bytes, t.name.find("norm") != std::string::npos);
        written += bytes.size();
        progress.update(static_cast<std::int64_t>(written >> 20));
    }, chunk);
    progress.finish();
    std::fprintf(stderr, "wrote %s\n", out.c_str());
    return 0;
}

}  // namespace

int main(int argc, char** argv) { return bench_main("kindred_make_shape_true", run, argc, argv); }
