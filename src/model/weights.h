// model/weights.h — a model's frozen base tensors as named views into memory someone else owns
// (a memory-mapped GGUF or safetensors file). Names follow GGUF's convention ("blk.3.attn_q.weight");
// the safetensors loader renames HF names onto it, so the decoder binds one set of names.
// Loading maps a parsed file's tensor table; it reads no file and copies no tensor data, with one
// exception: HF gpt-oss experts are stored in layouts the kernels cannot read in place (MXFP4 as
// separate blocks and scales with another nibble order; dense stacks transposed, gate and up
// interleaved), so they are rearranged once into owned buffers of the same type (MXFP4 stays 4-bit).
//
// Expert stacks are 3-D views [experts, rows, cols] named as GGUF's ffn_{gate,up,down}_exps. A GGUF
// stack is one contiguous tensor; an HF Qwen3-MoE checkpoint stores one tensor per expert, gathered
// here into one view whose `slices` point at each expert's tensor, so nothing is copied.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/dtype.h"
#include "formats/model_config.h"

namespace kindred::gguf { class File; }
namespace kindred::safetensors { class Checkpoint; }

namespace kindred::model {

struct WeightView {
    DType type = DType::F32;
    std::vector<std::int64_t> shape;  // row-major: rows x cols for matrices (ggml dims reversed)
    const void* data = nullptr;       // null when `slices` holds the data
    // A 3-D expert stack stored one tensor per expert: slices[e] is expert e's [rows x cols].
    std::vector<const void*> slices = {};
};

class Weights {
public:
    explicit Weights(std::string source = {}) : source_(std::move(source)) {}

    // Throws Error when the name is already taken.
    void add(std::string name, WeightView view);
    // Adds a tensor whose bytes the Weights keep (a rearranged copy); view.data is set to them.
    void add_owned(std::string name, WeightView view, std::vector<std::uint8_t> bytes);
    const WeightView* find(std::string_view name) const;
    const WeightView& get(std::string_view name) const;  // throws Error naming source and tensor
    const std::map<std::string, WeightView, std::less<>>& all() const { return views_; }
    const std::string& source() const { return source_; }

    // True when q/k rows of each head are stored in ggml's interleaved order (GGUF arch `llama`
    // permutes them at conversion so that adjacent-pair rope applies; see kernels/rope.h).
    bool qk_interleaved = false;

private:
    std::string source_;
    std::map<std::string, WeightView, std::less<>> views_;
    // Buffers behind add_owned views (moving the outer vector keeps every buffer's address).
    std::vector<std::vector<std::uint8_t>> owned_;
};

// The tensors of a parsed GGUF file; the file must outlive the views. gpt-oss files name the norm
// before the MLP `post_attention_norm` (llama.cpp's attn_post_norm); it is bound as ffn_norm, as
// for every other family. A fused `ffn_gate_up_exps` stack (gate rows, then up rows, per expert;
// llama.cpp's --fuse-gate-up-exps) becomes gate and up views over its halves, without copying.
Weights load_weights(const gguf::File& file);
// The tensors of a safetensors checkpoint with HF names mapped onto GGUF names as llama.cpp's
// converter maps them for `architecture` (Llama family; Gemma 3's four norms per layer; Qwen3-MoE's
// router and per-expert tensors; gpt-oss's router, sinks and dense or MXFP4 experts); names without
// a mapping keep their HF spelling. The checkpoint must outlive the views. Throws Error naming the
// tensor when an expert stack is incomplete or inconsistent.
Weights load_weights(const safetensors::Checkpoint& checkpoint, Architecture architecture = Architecture::Llama);

}  // namespace kindred::model
