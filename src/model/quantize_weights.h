// model/quantize_weights.h — a bf16/fp16/fp32 checkpoint's frozen linear weights quantized at load
// into a 4-bit base (recipe key model.quantize, CLI --quantize; docs/models.md), as QLoRA does with
// bitsandbytes or llama.cpp's quantize does offline.
//
// Which tensors: every linear projection of every layer (attention q/k/v/output, MLP gate/up/down,
// and expert stacks) stored as F32, F16 or BF16. Embeddings, the output head, norms, biases, sinks
// and MoE routers keep their stored type, as bitsandbytes keeps embeddings and lm_head and
// llama.cpp keeps norms; a tensor already quantized (gpt-oss's MXFP4 experts) stays as it is.
//
// Q4_K: each such tensor's rows into Q4_K (kernels/quantize.h, llama.cpp's reference quantizer),
// or, for a tensor whose rows are not whole 256-element super-blocks (SmolLM2's 576 columns),
// into Q5_0, as llama.cpp's quantize falls back. NF4: bitsandbytes' NF4 with double quantization,
// per tensor. A tensor whose rows are not whole blocks of the chosen format (32 for Q4_K's fallback,
// 64 for NF4) is refused, naming it: padding would change the shapes LoRA and the kernels see.
//
// Memory: one tensor at a time is read from the mapped file in chunks and written into an owned
// buffer of the new type; the mapped pages it was read from are then released, so the resident
// set grows by the 4-bit copy only (plus one tensor's NF4 codes while it is converted).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "model/weights.h"

namespace kindred::model {

enum class BaseQuantization { None, Q4_K, NF4 };

// "none", "q4_k", "nf4" (the recipe's spelling); nullopt for anything else.
std::optional<BaseQuantization> parse_base_quantization(std::string_view text);
std::string_view base_quantization_name(BaseQuantization quantization);

struct QuantizationSummary {
    std::int64_t tensors = 0;           // tensors quantized
    std::int64_t fallback_tensors = 0;  // of those, Q4_K targets written as Q5_0
    std::int64_t bytes_before = 0;      // their stored size
    std::int64_t bytes_after = 0;       // their quantized size
};

// Called after each tensor with (tensors done, tensors to do, name).
using QuantizeProgress = std::function<void(std::int64_t, std::int64_t, const std::string&)>;

// Quantizes `weights`' frozen linear weights as above (None: nothing). Throws Error naming the
// source and tensor for a shape the format cannot hold or a non-finite weight, and when the
// weights hold no float linear weight to quantize (a GGUF that is already quantized).
QuantizationSummary quantize_weights(Weights& weights, BaseQuantization quantization,
                                     const QuantizeProgress& progress = {});

}  // namespace kindred::model
