#include "model/quantize_weights.h"

#include <regex>
#include <vector>

#include "core/error.h"
#include "kernels/quantize.h"

namespace kindred::model {

std::optional<BaseQuantization> parse_base_quantization(std::string_view text) {
    if (text == "none") return BaseQuantization::None;
    if (text == "q4_k") return BaseQuantization::Q4_K;
    if (text == "nf4") return BaseQuantization::NF4;
    return std::nullopt;
}

std::string_view base_quantization_name(BaseQuantization quantization) {
    switch (quantization) {
        case BaseQuantization::None: return "none";
        case BaseQuantization::Q4_K: return "q4_k";
        case BaseQuantization::NF4: return "nf4";
    }
    return "none";
}

namespace {

bool is_linear_weight(const std::string& name) {
    static const std::regex linear(
        R"(blk\.\d+\.(attn_q|attn_k|attn_v|attn_output|ffn_gate|ffn_up|ffn_down|ffn_gate_exps|ffn_up_exps|ffn_down_exps)\.weight)");
    return std::regex_match(name, linear);
}

bool is_float(DType type) { return type == DType::F32 || type == DType::F16 || type == DType::BF16; }

// The bytes of each [rows x cols] matrix of a 2-D tensor or 3-D stack (slices or contiguous).
std::vector<const std::uint8_t*> matrices(const WeightView& view, std::uint64_t matrix_bytes) {
    if (view.shape.size() == 2) return {static_cast<const std::uint8_t*>(view.data)};
    std::vector<const std::uint8_t*> out;
    for (std::int64_t e = 0; e < view.shape[0]; ++e)
        out.push_back(view.slices.empty() ? static_cast<const std::uint8_t*>(view.data) + e * matrix_bytes
                                          : static_cast<const std::uint8_t*>(view.slices[static_cast<std::size_t>(e)]));
    return out;
}

}  // namespace

QuantizationSummary quantize_weights(Weights& weights, BaseQuantization quantization, const QuantizeProgress& progress) {
    QuantizationSummary summary;
    if (quantization == BaseQuantization::None) return summary;
    std::vector<std::string> names;
    std::string quantized_example;
    for (const auto& [name, view] : weights.all()) {
        if (!is_linear_weight(name)) continue;
        if (is_float(view.type) && (view.shape.size() == 2 || view.shape.size() == 3)) names.push_back(name);
        else if (quantized_example.empty()) quantized_example = name + " (" + std::string(dtype_name(view.type)) + ")";
    }
    if (names.empty())
        fail("{}: quantize {} applies to bf16, fp16 or fp32 linear weights, but this model's are already quantized "
             "(e.g. '{}'); leave the quantization at none",
             weights.source(), base_quantization_name(quantization), quantized_example);

    for (const std::string& name : names) {
        const WeightView view = weights.get(name);
        const std::int64_t cols = view.shape.back(), rows = view.shape[view.shape.size() - 2];
        DType target = quantization == BaseQuantization::NF4 ? DType::NF4 : DType::Q4_K;
        if (target == DType::Q4_K && cols % dtype_info(DType::Q4_K).block_size != 0) {
            target = DType::Q5_0;
            ++summary.fallback_tensors;
        }
        const auto block = static_cast<std::int64_t>(dtype_info(target).block_size);
        if (cols % block != 0)
            fail("{}: tensor '{}' has rows of {} elements, not whole {}-element {} blocks; it cannot be quantized "
                 "with {} (Kindred does not pad rows: the kernels and adapters see the stored shape)",
                 weights.source(), name, cols, block, dtype_name(target), base_quantization_name(quantization));
        const auto in_bytes = matrix_bytes(view.type, static_cast<std::uint64_t>(rows * cols));
        const auto out_bytes = matrix_bytes(target, static_cast<std::uint64_t>(rows * cols));
        const std::vector<const std::uint8_t*> sources = matrices(view, in_bytes);
        std::vector<std::uint8_t> quantized(out_bytes * sources.size());
        for (std::size_t m = 0; m < sources.size(); ++m) {
            std::uint8_t* out = quantized.data() + m * out_bytes;
            try {
                if (target == DType::NF4) {
                    // bitsandbytes quantizes each Linear's weight (each expert's, for a stack) as one
                    // flattened tensor: its double quantization spans rows.
                    nf4_pack(quantize_nf4(view.type, sources[m], rows * cols), out);
                } else if (target == DType::Q4_K) {
                    quantize_q4_k(view.type, sources[m], out, rows * cols);
                } else {
                    quantize_q5_0(view.type, sources[m], out, rows * cols);
                }
            } catch (const Error& error) {
                fail("{}: tensor '{}'{}: {}", weights.source(), name,
                     sources.size() > 1 ? " expert " + std::to_string(m) : std::string(), error.what());
            }
        }
        summary.bytes_before += static_cast<std::int64_t>(in_bytes * sources.size());
        summary.bytes_after += static_cast<std::int64_t>(quantized.size());
        WeightView replacement{target, view.shape, nullptr, {}};
        weights.replace_owned(name, std::move(replacement), std::move(quantized));
        ++summary.tensors;
        if (progress) progress(summary.tensors, static_cast<std::int64_t>(names.size()), name);
    }
    return summary;
}

}  // namespace kindred::model
