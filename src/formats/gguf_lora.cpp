#include "formats/gguf_lora.h"

#include <array>
#include <charconv>
#include <cmath>
#include <cstring>
#include <utility>

#include "core/error.h"
#include "core/half.h"
#include "formats/gguf.h"

namespace kindred::gguf_lora {
namespace {

constexpr std::array<std::pair<std::string_view, std::string_view>, 7> kModuleNames = {{
    {"q_proj", "attn_q"}, {"k_proj", "attn_k"}, {"v_proj", "attn_v"}, {"o_proj", "attn_output"},
    {"gate_proj", "ffn_gate"}, {"up_proj", "ffn_up"}, {"down_proj", "ffn_down"},
}};

// The base tensors whose rows llama.cpp's converter permutes (its LlamaModel q/k handling).
bool is_permuted(std::string_view architecture, std::string_view peft_module) {
    return architecture == "llama" && (peft_module == "q_proj" || peft_module == "k_proj");
}

// lora_B of q or k ([out, r], row-major) in or out of llama.cpp's row order; `where` names the
// file and tensor in errors.
std::vector<float> permute_lora_b(const peft::LoraTensor& tensor, std::string_view peft_module, std::uint32_t n_head,
                                  std::uint32_t n_head_kv, bool inverse, const std::string& where) {
    if (n_head == 0 || n_head_kv == 0) fail("{}: architecture llama needs n_head and n_head_kv", where);
    try {
        return permute_qk_rows(tensor.values, tensor.shape[0], tensor.shape[1],
                               peft_module == "q_proj" ? n_head : n_head_kv, inverse);
    } catch (const Error& e) {
        fail("{}: {}", where, e.what());
    }
}

std::vector<float> read_values(const gguf::TensorInfo& info, const std::string& path) {
    if (info.type != DType::F32 && info.type != DType::F16) {
        fail("{}: tensor '{}' has type {}; LoRA tensors must be F32 or F16", path, info.name, dtype_name(info.type));
    }
    std::vector<float> out(info.element_count());
    if (info.type == DType::F32) {
        std::memcpy(out.data(), info.data.data(), out.size() * sizeof(float));
    } else {
        for (std::size_t i = 0; i < out.size(); ++i) {
            std::uint16_t h;
            std::memcpy(&h, info.data.data() + 2 * i, 2);
            out[i] = fp16_to_fp32(h);
        }
    }
    return out;
}

}  // namespace

std::string_view gguf_module_name(std::string_view peft_module) {
    for (const auto& [peft, gguf] : kModuleNames) {
        if (peft == peft_module) return gguf;
    }
    fail("LoRA module '{}' has no GGUF name", peft_module);
}

std::string_view peft_module_name(std::string_view gguf_module) {
    for (const auto& [peft, gguf] : kModuleNames) {
        if (gguf == gguf_module) return peft;
    }
    fail("GGUF tensor module '{}' is not a LoRA target", gguf_module);
}

std::string gguf_tensor_name(std::string_view peft_key) {
    const peft::LoraKey key = peft::parse_lora_key(peft_key);
    return fmt::format("blk.{}.{}.weight.lora_{}", key.layer, gguf_module_name(key.module), key.is_a ? 'a' : 'b');
}

std::string peft_key(std::string_view gguf_name) {
    const auto bad = [&]() -> std::string {
        fail("GGUF LoRA tensor '{}' is not blk.<i>.<module>.weight.lora_<a|b>", gguf_name);
    };
    constexpr std::string_view prefix = "blk.";
    constexpr std::string_view suffix_a = ".weight.lora_a";  // lora_b's suffix has the same length
    const bool is_a = gguf_name.ends_with(suffix_a);
    if (gguf_name.size() <= prefix.size() + suffix_a.size() || !gguf_name.starts_with(prefix) ||
        !(is_a || gguf_name.ends_with(".weight.lora_b"))) {
        return bad();
    }
    const std::string_view middle = gguf_name.substr(prefix.size(), gguf_name.size() - prefix.size() - suffix_a.size());
    const auto dot = middle.find('.');
    if (dot == std::string_view::npos || dot == 0 || (dot > 1 && middle[0] == '0')) return bad();
    peft::LoraKey key;
    const auto [end, ec] = std::from_chars(middle.data(), middle.data() + dot, key.layer);
    if (ec != std::errc{} || end != middle.data() + dot) return bad();
    key.module = std::string(peft_module_name(middle.substr(dot + 1)));
    key.is_a = is_a;
    return peft::lora_key(key);
}

std::vector<float> permute_qk_rows(std::span<const float> values, std::uint64_t rows, std::uint64_t cols,
                                   std::uint32_t heads, bool inverse) {
    if (heads == 0 || rows % (2ull * heads) != 0) fail("q/k permutation: {} rows do not split into {} heads of two halves", rows, heads);
    if (cols == 0 || values.size() / cols != rows || values.size() % cols != 0) {
        fail("q/k permutation: {} values do not form [{}, {}]", values.size(), rows, cols);
    }
    const std::uint64_t half = rows / heads / 2;
    std::vector<float> out(values.size());
    for (std::uint64_t h = 0; h < heads; ++h) {
        for (std::uint64_t part = 0; part < 2; ++part) {
            for (std::uint64_t j = 0; j < half; ++j) {
                const std::uint64_t hf_row = h * 2 * half + part * half + j;  // rotate_half layout
                const std::uint64_t gg_row = h * 2 * half + 2 * j + part;     // interleaved layout
                const std::uint64_t from = inverse ? gg_row : hf_row;
                const std::uint64_t to = inverse ? hf_row : gg_row;
                std::memcpy(&out[to * cols], &values[from * cols], cols * sizeof(float));
            }
        }
    }
    return out;
}

void write(const std::string& path, std::span<const peft::LoraTensor> tensors, const WriteOptions& options) {
    if (options.type != DType::F32 && options.type != DType::F16) {
        fail("{}: GGUF LoRA tensors must be F32 or F16, not {}", path, dtype_name(options.type));
    }
    if (options.architecture.empty()) fail("{}: the base architecture is required", path);
    for (const peft::LoraTensor& tensor : tensors) {
        const std::string module = peft::parse_lora_key(tensor.name).module;
        if (module == peft::kExpertsOuter || module == peft::kExpertsNested)
            fail("{}: tensor '{}' adapts a mixture-of-experts stack, which Kindred does not write as a GGUF LoRA; "
                 "export the adapter as PEFT (--format peft)", path, tensor.name);
    }
    peft::Adapter check;
    check.config.r = options.r;
    check.config.target_modules.assign(std::begin(peft::kLoraModules), std::end(peft::kLoraModules));
    check.tensors.assign(tensors.begin(), tensors.end());
    peft::validate(check, path);

    gguf::Writer writer;
    writer.metadata().set("general.architecture", {options.architecture});
    writer.metadata().set("general.type", {std::string("adapter")});
    writer.metadata().set("adapter.type", {std::string("lora")});
    const double alpha = options.use_rslora ? options.lora_alpha * std::sqrt(static_cast<double>(options.r))
                                            : options.lora_alpha;
    writer.metadata().set("adapter.lora.alpha", {static_cast<float>(alpha)});
    for (const peft::LoraTensor& tensor : tensors) {
        const peft::LoraKey key = peft::parse_lora_key(tensor.name);
        const std::vector<float> values =
            !key.is_a && is_permuted(options.architecture, key.module)
                ? permute_lora_b(tensor, key.module, options.n_head, options.n_head_kv, false,
                                 fmt::format("{}: tensor '{}'", path, tensor.name))
                : tensor.values;
        std::vector<std::uint8_t> bytes;
        if (options.type == DType::F32) {
            bytes.resize(values.size() * sizeof(float));
            std::memcpy(bytes.data(), values.data(), bytes.size());
        } else {
            bytes.resize(values.size() * 2);
            for (std::size_t i = 0; i < values.size(); ++i) {
                const std::uint16_t h = fp32_to_fp16(values[i]);
                std::memcpy(&bytes[2 * i], &h, 2);
            }
        }
        writer.add_tensor(gguf_tensor_name(tensor.name), options.type, {tensor.shape[1], tensor.shape[0]}, bytes);
    }
    writer.write(path);
}

Adapter read(const std::string& path) {
    const gguf::File file = gguf::File::open(path);
    const gguf::Metadata& meta = file.metadata();
    if (const auto type = meta.string("general.type"); type != "adapter") {
        fail("{}: key general.type is \"{}\", expected \"adapter\"", path, type);
    }
    if (const auto type = meta.string("adapter.type"); type != "lora") {
        fail("{}: key adapter.type is \"{}\", expected \"lora\"", path, type);
    }
    Adapter out;
    out.architecture = meta.string("general.architecture");
    const double alpha = meta.real("adapter.lora.alpha");
    if (!std::isfinite(alpha)) fail("{}: key adapter.lora.alpha is not finite", path);
    out.lora_alpha = static_cast<float>(alpha);
    for (const gguf::TensorInfo& info : file.tensors()) {
        if (info.dims.size() != 2) fail("{}: tensor '{}' is not 2-D", path, info.name);
        out.tensors.push_back({info.name, info.dims, read_values(info, path)});
    }
    // Ranks are checked here so the message names the GGUF tensor; pairing and duplicates are the
    // PEFT rules seen through the name mapping.
    peft::Adapter check;
    check.config.target_modules.assign(std::begin(peft::kLoraModules), std::end(peft::kLoraModules));
    for (const Tensor& tensor : out.tensors) {
        std::string key;
        try {
            key = peft_key(tensor.name);
        } catch (const Error& e) {
            fail("{}: {}", path, e.what());
        }
        const std::uint64_t rank = tensor.name.ends_with("lora_a") ? tensor.dims[1] : tensor.dims[0];
        if (rank > 65536) fail("{}: tensor '{}' has rank {}; at most 65536 is supported", path, tensor.name, rank);
        if (check.tensors.empty()) check.config.r = static_cast<std::uint32_t>(rank);
        if (rank != check.config.r) {
            fail("{}: tensor '{}' has dims {{{}, {}}}: rank {} differs from the first tensor's {}", path,
                 tensor.name, tensor.dims[0], tensor.dims[1], rank, check.config.r);
        }
        check.tensors.push_back({key, {tensor.dims[1], tensor.dims[0]}, tensor.values});
    }
    peft::validate(check, path);
    return out;
}

std::vector<peft::LoraTensor> to_peft(const Adapter& adapter, std::uint32_t n_head, std::uint32_t n_head_kv) {
    std::vector<peft::LoraTensor> out;
    for (const Tensor& tensor : adapter.tensors) {
        peft::LoraTensor peft{peft_key(tensor.name), {tensor.dims[1], tensor.dims[0]}, tensor.values};
        const peft::LoraKey key = peft::parse_lora_key(peft.name);
        if (!key.is_a && is_permuted(adapter.architecture, key.module)) {
            peft.values = permute_lora_b(peft, key.module, n_head, n_head_kv, true, "tensor '" + tensor.name + "'");
        }
        out.push_back(std::move(peft));
    }
    return out;
}

}  // namespace kindred::gguf_lora
