// model/weights.h — a model's frozen base tensors as named views into memory someone else owns
// (a memory-mapped GGUF or safetensors file). Names follow GGUF's convention ("blk.3.attn_q.weight");
// the safetensors loader renames HF names onto it, so the decoder binds one set of names.
// Loading maps a parsed file's tensor table; it reads no file and copies no tensor data.
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
    const void* data = nullptr;
};

class Weights {
public:
    explicit Weights(std::string source = {}) : source_(std::move(source)) {}

    // Throws Error when the name is already taken.
    void add(std::string name, WeightView view);
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
};

// The tensors of a parsed GGUF file; the file must outlive the views.
Weights load_weights(const gguf::File& file);
// The tensors of a safetensors checkpoint with HF names mapped onto GGUF names as llama.cpp's
// converter maps them for `architecture` (Gemma 3's four norms per layer differ from Llama's two);
// names without a mapping keep their HF spelling. The checkpoint must outlive the views.
Weights load_weights(const safetensors::Checkpoint& checkpoint, Architecture architecture = Architecture::Llama);

}  // namespace kindred::model
