// model/weights.cpp — tensor tables of parsed files turned into named views.
#include "model/weights.h"

#include <cstring>
#include <regex>

#include <fmt/ranges.h>

#include "core/error.h"
#include "core/mapped_file.h"
#include "formats/gguf.h"
#include "formats/hf_mxfp4.h"
#include "formats/safetensors.h"

namespace kindred::model {

void Weights::add(std::string name, WeightView view) {
    const auto [it, inserted] = views_.emplace(std::move(name), std::move(view));
    if (!inserted) fail("{}: tensor '{}' appears twice", source_, it->first);
}

void Weights::add_owned(std::string name, WeightView view, std::vector<std::uint8_t> bytes) {
    owned_.push_back(std::move(bytes));
    view.data = owned_.back().data();
    add(std::move(name), std::move(view));
}

void Weights::replace_owned(std::string_view name, WeightView view, std::vector<std::uint8_t> bytes) {
    const auto it = views_.find(name);
    if (it == views_.end()) fail("{}: tensor '{}' is missing", source_, name);
    const WeightView& old = it->second;
    bool was_owned = false;
    for (auto& buffer : owned_) {
        if (buffer.empty() || buffer.data() != old.data) continue;
        std::vector<std::uint8_t>().swap(buffer);
        was_owned = true;
    }
    if (!was_owned) {
        // A view into a file mapping: its pages need not stay resident beside the replacement.
        if (old.slices.empty()) release_mapped_pages(old.data, tensor_bytes(old.type, old.shape));
        const std::vector<std::int64_t> matrix(old.shape.begin() + (old.slices.empty() ? 0 : 1), old.shape.end());
        for (const void* slice : old.slices) release_mapped_pages(slice, tensor_bytes(old.type, matrix));
    }
    owned_.push_back(std::move(bytes));
    view.data = owned_.back().data();
    it->second = std::move(view);
}

const WeightView* Weights::find(std::string_view name) const {
    const auto it = views_.find(name);
    return it == views_.end() ? nullptr : &it->second;
}

const WeightView& Weights::get(std::string_view name) const {
    const WeightView* view = find(name);
    if (view == nullptr) fail("{}: tensor '{}' is missing", source_, name);
    return *view;
}

namespace {

// Which columns of a row a gate or up half takes: first + i · step for i < count.
struct Columns {
    std::int64_t first, step, count;
};

// Columns `take` of every row of a [..., cols] tensor of a one-element-per-block type (F32, F16,
// BF16), copied into [..., take.count]. `what` names the tensor in errors.
std::vector<std::uint8_t> copy_columns(const WeightView& view, Columns take, const std::string& what) {
    const auto& info = dtype_info(view.type);
    if (info.block_size != 1) fail("{} has type {}, expected F32, F16 or BF16", what, info.name);
    const std::int64_t cols = view.shape.back();
    std::int64_t rows = 1;
    for (std::size_t i = 0; i + 1 < view.shape.size(); ++i) rows *= view.shape[i];
    const auto element = static_cast<std::int64_t>(info.block_bytes);
    std::vector<std::uint8_t> out(static_cast<std::size_t>(rows * take.count * element));
    const auto* in = static_cast<const std::uint8_t*>(view.data);
    for (std::int64_t r = 0; r < rows; ++r)
        for (std::int64_t c = 0; c < take.count; ++c)
            std::memcpy(out.data() + (r * take.count + c) * element, in + (r * cols + take.first + c * take.step) * element,
                        static_cast<std::size_t>(element));
    return out;
}

// [experts, a, b] -> [experts, b, a] for a one-element-per-block type, keeping only the columns
// `take` of the input's last dimension (which become the output's rows).
std::vector<std::uint8_t> transpose_experts(const WeightView& view, Columns take, const std::string& what) {
    const auto& info = dtype_info(view.type);
    if (info.block_size != 1) fail("{} has type {}, expected F32, F16 or BF16", what, info.name);
    const std::int64_t experts = view.shape[0], a = view.shape[1], b = view.shape[2];
    const auto element = static_cast<std::int64_t>(info.block_bytes);
    std::vector<std::uint8_t> out(static_cast<std::size_t>(experts * take.count * a * element));
    const auto* in = static_cast<const std::uint8_t*>(view.data);
    for (std::int64_t e = 0; e < experts; ++e)
        for (std::int64_t o = 0; o < take.count; ++o)
            for (std::int64_t i = 0; i < a; ++i)
                std::memcpy(out.data() + ((e * take.count + o) * a + i) * element,
                            in + ((e * a + i) * b + take.first + o * take.step) * element, static_cast<std::size_t>(element));
    return out;
}

std::string replaced(const std::string& name, const std::string& from, const std::string& to) {
    const auto at = name.find(from);
    return name.substr(0, at) + to + name.substr(at + from.size());
}

// GGUF's fused gate_up stack (per expert: n gate rows, then n up rows) as gate and up views over
// its halves; its fused bias [experts, 2n] split into two copies (a half is strided there).
void split_fused_gate_up(Weights& weights, const std::string& name) {
    const WeightView stack = weights.get(name);
    const bool bias = name.ends_with(".bias");
    const std::string what = weights.source() + ": tensor '" + name + "'";
    if (stack.shape.size() != (bias ? 2u : 3u) || stack.shape[1] % 2 != 0)
        fail("{} has shape [{}], expected {} with as many up as gate rows", what, fmt::join(stack.shape, ", "),
             bias ? "[experts, 2n]" : "[experts, 2n, hidden]");
    const std::string gate = replaced(name, "ffn_gate_up_exps", "ffn_gate_exps");
    const std::string up = replaced(name, "ffn_gate_up_exps", "ffn_up_exps");
    const std::int64_t experts = stack.shape[0], half = stack.shape[1] / 2;
    if (bias) {
        const WeightView part{stack.type, {experts, half}, nullptr, {}};
        weights.add_owned(gate, part, copy_columns(stack, {0, 1, half}, what));
        weights.add_owned(up, part, copy_columns(stack, {half, 1, half}, what));
        return;
    }
    const std::int64_t cols = stack.shape[2];
    const auto row_size = static_cast<std::int64_t>(row_bytes(stack.type, static_cast<std::uint64_t>(cols)));
    for (const auto& [part_name, first] : {std::pair{gate, std::int64_t{0}}, std::pair{up, half}}) {
        WeightView view{stack.type, {experts, half, cols}, nullptr, {}};
        for (std::int64_t e = 0; e < experts; ++e)
            view.slices.push_back(static_cast<const std::uint8_t*>(stack.data) + (e * 2 * half + first) * row_size);
        weights.add(part_name, std::move(view));
    }
}

}  // namespace

Weights load_weights(const gguf::File& file) {
    Weights weights(file.name());
    const std::string arch =
        file.metadata().find("general.architecture") != nullptr ? file.metadata().string("general.architecture") : "";
    static const std::regex post_attention_norm(R"(blk\.(\d+)\.post_attention_norm\.weight)");
    std::vector<std::string> fused;
    for (const auto& info : file.tensors()) {
        WeightView view{info.type, {}, info.data.data(), {}};
        for (auto it = info.dims.rbegin(); it != info.dims.rend(); ++it) view.shape.push_back(static_cast<std::int64_t>(*it));
        std::smatch match;
        std::string name = info.name;
        if (arch == "gpt-oss" && std::regex_match(name, match, post_attention_norm))
            name = "blk." + match[1].str() + ".ffn_norm.weight";
        if (name.find(".ffn_gate_up_exps.") != std::string::npos) fused.push_back(name);
        weights.add(std::move(name), std::move(view));
    }
    for (const auto& name : fused) split_fused_gate_up(weights, name);
    weights.qk_interleaved = arch == "llama";
    return weights;
}

namespace {

// HF tensor names -> GGUF names (llama.cpp's convert_hf_to_gguf mapping).
std::string gguf_name(const std::string& hf, Architecture architecture) {
    static const std::map<std::string, std::string, std::less<>> globals = {
        {"model.embed_tokens.weight", "token_embd.weight"},
        {"model.norm.weight", "output_norm.weight"},
        {"lm_head.weight", "output.weight"},
    };
    static const std::map<std::string, std::string, std::less<>> per_layer = {
        {"input_layernorm", "attn_norm"},      {"post_attention_layernorm", "ffn_norm"},
        {"self_attn.q_proj", "attn_q"},        {"self_attn.k_proj", "attn_k"},
        {"self_attn.v_proj", "attn_v"},        {"self_attn.o_proj", "attn_output"},
        {"self_attn.q_norm", "attn_q_norm"},   {"self_attn.k_norm", "attn_k_norm"},
        {"mlp.gate_proj", "ffn_gate"},         {"mlp.up_proj", "ffn_up"},
        {"mlp.down_proj", "ffn_down"},
        {"mlp.gate", "ffn_gate_inp"},          {"mlp.router", "ffn_gate_inp"},  // Qwen3-MoE, gpt-oss routers
    };
    // Gemma normalises after each block too: its post_attention_layernorm is not the MLP's norm.
    static const std::map<std::string, std::string, std::less<>> gemma_norms = {
        {"post_attention_layernorm", "post_attention_norm"},
        {"pre_feedforward_layernorm", "ffn_norm"},
        {"post_feedforward_layernorm", "post_ffw_norm"},
    };
    if (const auto it = globals.find(hf); it != globals.end()) return it->second;
    static const std::regex layer(R"(model\.layers\.(\d+)\.(.+)\.(weight|bias))");
    static const std::regex sinks(R"(model\.layers\.(\d+)\.self_attn\.sinks)");
    std::smatch match;
    if (std::regex_match(hf, match, sinks)) return "blk." + match[1].str() + ".attn_sinks.weight";
    if (std::regex_match(hf, match, layer)) {
        const std::string part = match[2].str();
        const bool gemma_norm = architecture == Architecture::Gemma3 && gemma_norms.contains(part);
        const auto& names = gemma_norm ? gemma_norms : per_layer;
        if (const auto it = names.find(part); it != names.end())
            return "blk." + match[1].str() + "." + it->second + "." + match[3].str();
    }
    return hf;
}

WeightView view_of(const safetensors::TensorInfo& info) {
    WeightView view{info.type, {}, info.data.data(), {}};
    for (const auto dim : info.shape) view.shape.push_back(static_cast<std::int64_t>(dim));
    return view;
}

// Qwen3-MoE's per-expert tensors "model.layers.L.mlp.experts.E.{gate,up,down}_proj.weight",
// gathered per (layer, projection) into one stack view over the expert tensors.
class ExpertTensors {
public:
    bool take(const safetensors::TensorInfo& info) {
        static const std::regex expert(R"(model\.layers\.(\d+)\.mlp\.experts\.(\d+)\.(gate|up|down)_proj\.weight)");
        std::smatch match;
        if (!std::regex_match(info.name, match, expert)) return false;
        const std::string stack = "blk." + match[1].str() + ".ffn_" + match[3].str() + "_exps.weight";
        const auto [it, inserted] = stacks_[stack].emplace(std::stoll(match[2].str()), &info);
        if (!inserted) fail("tensor '{}' appears twice", info.name);
        return true;
    }

    void add_to(Weights& weights) const {
        for (const auto& [name, experts] : stacks_) {
            const safetensors::TensorInfo& first = *experts.begin()->second;
            WeightView stack{first.type, {static_cast<std::int64_t>(experts.size())}, nullptr, {}};
            for (const auto dim : first.shape) stack.shape.push_back(static_cast<std::int64_t>(dim));
            std::int64_t expected = 0;
            for (const auto& [index, info] : experts) {
                if (index != expected)
                    fail("{}: expert {} of '{}' is missing (tensor '{}' is the next present)", weights.source(), expected,
                         name, info->name);
                if (info->type != first.type || info->shape != first.shape || first.shape.size() != 2)
                    fail("{}: tensor '{}' is {} [{}], unlike '{}' {} [{}]; the experts of one projection must match",
                         weights.source(), info->name, dtype_name(info->type), fmt::join(info->shape, ", "), first.name,
                         dtype_name(first.type), fmt::join(first.shape, ", "));
                stack.slices.push_back(info->data.data());
                ++expected;
            }
            weights.add(name, std::move(stack));
        }
    }

private:
    std::map<std::string, std::map<std::int64_t, const safetensors::TensorInfo*>> stacks_;
};

// gpt-oss's expert tensors: dense gate_up [E, hidden, 2n] (gate in even columns) and down
// [E, n, hidden], transposed here into [E, out, in] stacks; released MXFP4 `_blocks`/`_scales` pairs
// [E, out, in/32, 16] repacked (gate rows even, up rows odd); the gate_up bias split. Returns false
// for any other tensor.
bool take_gpt_oss_experts(Weights& weights, const safetensors::Checkpoint& checkpoint,
                          const safetensors::TensorInfo& info) {
    static const std::regex expert(R"(model\.layers\.(\d+)\.mlp\.experts\.(gate_up_proj|down_proj)(_bias|_blocks|_scales)?)");
    std::smatch match;
    if (!std::regex_match(info.name, match, expert)) return false;
    const std::string prefix = "blk." + match[1].str() + ".";
    const bool gate_up = match[2] == "gate_up_proj";
    const std::string suffix = match[3].str();
    const std::string what = checkpoint.path() + ": tensor '" + info.name + "'";
    const WeightView view = view_of(info);
    if (suffix == "_scales") return true;  // read with its blocks
    if (suffix == "_bias" && !gate_up) {
        weights.add(prefix + "ffn_down_exps.bias", view);
        return true;
    }
    if (suffix == "_bias") {
        if (view.shape.size() != 2 || view.shape[1] % 2 != 0)
            fail("{} has shape [{}], expected [experts, 2n]", what, fmt::join(view.shape, ", "));
        const std::int64_t half = view.shape[1] / 2;
        const WeightView part{view.type, {view.shape[0], half}, nullptr, {}};
        weights.add_owned(prefix + "ffn_gate_exps.bias", part, copy_columns(view, {0, 2, half}, what));
        weights.add_owned(prefix + "ffn_up_exps.bias", part, copy_columns(view, {1, 2, half}, what));
        return true;
    }
    if (suffix == "_blocks") {
        const std::string scales_name = replaced(info.name, "_blocks", "_scales");
        const safetensors::TensorInfo* scales = checkpoint.find(scales_name);
        if (scales == nullptr) fail("{}: tensor '{}' is missing (the scales of '{}')", checkpoint.path(), scales_name, info.name);
        const std::vector<std::pair<std::string, std::int64_t>> parts =
            gate_up ? std::vector<std::pair<std::string, std::int64_t>>{{"ffn_gate_exps", 0}, {"ffn_up_exps", 1}}
                    : std::vector<std::pair<std::string, std::int64_t>>{{"ffn_down_exps", 0}};
        for (const auto& [part, first] : parts) {
            Mxfp4Stack stack = mxfp4_from_hf(info, *scales, first, gate_up ? 2 : 1, checkpoint.path());
            weights.add_owned(prefix + part + ".weight", WeightView{DType::MXFP4, {stack.experts, stack.rows, stack.cols}, nullptr, {}},
                              std::move(stack.bytes));
        }
        return true;
    }
    if (view.shape.size() != 3 || (gate_up && view.shape[2] % 2 != 0))
        fail("{} has shape [{}], expected [experts, in, {}]", what, fmt::join(view.shape, ", "), gate_up ? "2n" : "out");
    const std::int64_t experts = view.shape[0], in = view.shape[1];
    if (gate_up) {
        const std::int64_t half = view.shape[2] / 2;
        const WeightView part{view.type, {experts, half, in}, nullptr, {}};
        weights.add_owned(prefix + "ffn_gate_exps.weight", part, transpose_experts(view, {0, 2, half}, what));
        weights.add_owned(prefix + "ffn_up_exps.weight", part, transpose_experts(view, {1, 2, half}, what));
    } else {
        const std::int64_t out = view.shape[2];
        weights.add_owned(prefix + "ffn_down_exps.weight", WeightView{view.type, {experts, out, in}, nullptr, {}},
                          transpose_experts(view, {0, 1, out}, what));
    }
    return true;
}

}  // namespace

Weights load_weights(const safetensors::Checkpoint& checkpoint, Architecture architecture) {
    Weights weights(checkpoint.path());
    ExpertTensors experts;
    for (const auto& info : checkpoint.tensors()) {
        try {
            if (experts.take(info)) continue;
        } catch (const Error& error) {
            fail("{}: {}", checkpoint.path(), error.what());
        }
        if (take_gpt_oss_experts(weights, checkpoint, info)) continue;
        weights.add(gguf_name(info.name, architecture), view_of(info));
    }
    experts.add_to(weights);
    return weights;
}

}  // namespace kindred::model
