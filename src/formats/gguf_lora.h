// formats/gguf_lora.h — LoRA adapters as llama.cpp loads them with `--lora`: a GGUF file with
// general.type = "adapter", adapter.type = "lora", adapter.lora.alpha and the base model's
// general.architecture, holding for each adapted base tensor `<gguf name>.lora_a` and `.lora_b`
// (e.g. blk.3.attn_q.weight.lora_a). This lets a Kindred-trained adapter run on stock llama.cpp
// on top of the unchanged quantized base.
//
// Layout facts (from llama.cpp's convert_lora_to_gguf.py and src/llama-adapter.cpp): tensors are
// stored in ggml dim order, so PEFT's A [r, in] has dims {in, r} and B [out, r] has dims {r, out},
// with the same row-major bytes; llama.cpp checks base->ne[0] == a->ne[0], base->ne[1] ==
// b->ne[1] and a->ne[1] == b->ne[0], and scales by alpha / r. For architecture "llama" the
// converter stores the base q and k weights with their rows permuted (see permute_qk_rows); an
// adapter must permute the rows of lora_B of q and k the same way, or its delta would land on the
// wrong rotary components.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "formats/peft_adapter.h"

namespace kindred::gguf_lora {

// q_proj -> attn_q, k_proj -> attn_k, v_proj -> attn_v, o_proj -> attn_output,
// gate_proj -> ffn_gate, up_proj -> ffn_up, down_proj -> ffn_down. Throws Error for others.
std::string_view gguf_module_name(std::string_view peft_module);
std::string_view peft_module_name(std::string_view gguf_module);
// PEFT key -> GGUF tensor name: "...layers.3.self_attn.q_proj.lora_A.weight" -> "blk.3.attn_q.weight.lora_a".
std::string gguf_tensor_name(std::string_view peft_key);
// The inverse; throws Error naming the tensor when it is not blk.<i>.<module>.weight.lora_<a|b>.
std::string peft_key(std::string_view gguf_name);

// llama.cpp's q/k row order for "llama" models. Each of `heads` heads owns rows/heads consecutive
// rows holding two rotary halves [first half | second half] (Hugging Face's rotate_half layout);
// llama.cpp wants them interleaved (its rope pairs adjacent elements), so within each head row
// half*d + j (half in {0,1}, j < d = rows/heads/2) moves to row 2*j + half. `heads` is n_head for
// q and n_head_kv for k. `inverse` undoes it. Values are row-major [rows, cols]; throws Error
// when rows is not a multiple of 2 * heads or the size does not match.
std::vector<float> permute_qk_rows(std::span<const float> values, std::uint64_t rows, std::uint64_t cols,
                                   std::uint32_t heads, bool inverse = false);

struct WriteOptions {
    std::string architecture;     // the base's general.architecture ("llama", "qwen2", ...)
    std::uint32_t n_head = 0;     // needed for architecture "llama" (q/k permutation)
    std::uint32_t n_head_kv = 0;  // idem
    float lora_alpha = 16.0f;
    std::uint32_t r = 8;
    // llama.cpp always scales by alpha / r; rsLoRA's alpha / sqrt(r) is stored as the equivalent
    // alpha * sqrt(r).
    bool use_rslora = false;
    DType type = DType::F32;  // F32 or F16
};

struct Tensor {
    std::string name;                 // GGUF name, e.g. blk.0.attn_q.weight.lora_a
    std::vector<std::uint64_t> dims;  // ggml order: {in, r} for lora_a, {r, out} for lora_b
    std::vector<float> values;
};

struct Adapter {
    std::string architecture;
    float lora_alpha = 0.0f;
    std::vector<Tensor> tensors;  // file order
};

// Validates the PEFT tensors (peft::validate rules, with options.r) and writes atomically.
void write(const std::string& path, std::span<const peft::LoraTensor> tensors, const WriteOptions& options);

// Reads an adapter file: checks the type keys, that every tensor is a 2-D F32/F16 lora_a or
// lora_b of a known module with its partner present and matching rank. Throws Error naming the
// file and key or tensor.
Adapter read(const std::string& path);

// Back to PEFT keys and PyTorch shapes, undoing the q/k permutation for "llama".
std::vector<peft::LoraTensor> to_peft(const Adapter& adapter, std::uint32_t n_head, std::uint32_t n_head_kv);

}  // namespace kindred::gguf_lora
