// model/decoder.h — the decoder-only transformer forward pass, config-driven.
// One Decoder serves every supported family: the constructor resolves the config into a
// ModelSpec (model/family.h: per-layer specs, rotary tables, embedding scale, logit soft-cap),
// binds the tensors that spec calls for, and the forward pass runs the shared layer pieces
// (model/layer.h) over a KV cache. Features no piece implements yet are refused at construction.
//
// Activations live in one allocation planned for `max_batch` tokens; longer inputs run in
// chunks of that size, so a forward pass allocates nothing. Weights are views (see weights.h).
// One forward at a time per Decoder (the activations are shared); kernels split each op over
// core/thread_pool's threads.
//
// LoRA at inference: attach_adapter() adds scale · (x Aᵀ) Bᵀ to every targeted linear's output
// (kernels/lora.h, no dropout), leaving the base weights untouched so one mapped model can serve
// with or without an adapter. Without an adapter the forward pass is exactly the base model's.
//
// Batched sequences (forward_batch, what `kindred serve` runs each step): the rows of several
// sequences, each with its own KV cache, positions and adapter (or none), go through one pass.
// Every product against the frozen weights runs once over all rows, so a step reads the weights
// once however many sequences it advances; embedding, RoPE positions, attention over the
// sequence's own cache and the LoRA term run per sequence's rows. forward() is forward_batch of
// one sequence with the attached adapter.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/aligned.h"
#include "formats/model_config.h"
#include "kernels/matmul.h"
#include "model/family.h"
#include "model/kv_cache.h"
#include "model/lora_adapters.h"
#include "model/quantize_weights.h"
#include "model/weights.h"

namespace kindred::gguf { class File; }
namespace kindred::safetensors { class Checkpoint; }

namespace kindred::model {

class Decoder {
public:
    static constexpr std::int64_t default_max_batch = 512;

    // Binds every tensor the config calls for; throws Error naming a missing or misshapen tensor
    // or an unsupported feature. The memory behind `weights` must outlive the decoder.
    Decoder(ModelConfig config, Weights weights, std::int64_t max_batch = default_max_batch);

    // Config via model_config_from_gguf(file) (tied when output.weight is absent) plus the file's
    // tensors; the file must outlive the decoder.
    // `quantization` quantizes its float linear weights at load (model/quantize_weights.h).
    static Decoder from_gguf(const gguf::File& file, BaseQuantization quantization = BaseQuantization::None,
                             const QuantizeProgress& progress = {});
    // An HF checkpoint with its parsed config.json; the checkpoint must outlive the decoder.
    static Decoder from_checkpoint(const safetensors::Checkpoint& checkpoint, const ModelConfig& config,
                                   BaseQuantization quantization = BaseQuantization::None,
                                   const QuantizeProgress& progress = {});

    const ModelConfig& config() const { return config_; }

    // The Precision of every product against the frozen weights in later forwards (linears,
    // experts, the LM head): F32 (the default, exact) or Int8 (8-bit activations against weights
    // with an integer dot, as llama.cpp computes; kernels/matmul.h). BF16 is for training's
    // products and refused here.
    void set_products(kernels::Precision products);
    kernels::Precision products() const { return products_; }

    // The element type of the KV caches made for this decoder (kv_cache(), which infer::Session,
    // infer::Batch and scoring use): F32 (the default, exact), F16 or Q8_0 (model/kv_cache.h).
    // A forward reads a cache of any type. Throws Error for a type check_kv_cache_type refuses.
    void set_kv_cache_type(DType type);
    DType kv_cache_type() const { return kv_cache_type_; }
    // A cache of kv_cache_type() for `capacity_tokens` tokens of this model.
    KvCache kv_cache(std::int64_t capacity_tokens) const { return KvCache(config_, capacity_tokens, kv_cache_type_); }

    // Applies `adapters` in every later forward (null detaches). They must outlive the decoder or
    // the next attach_adapter call and be laid out for this decoder's q/k row order
    // (Weights::qk_interleaved). Throws Error when their layer count or any module's in/out
    // features differ from the model's.
    void attach_adapter(const LoraAdapters* adapters);
    const LoraAdapters* adapter() const { return adapter_; }

    // Detaches the decoder's adapter for its own lifetime, then attaches it again (to run the base
    // model between runs of the fine-tuned one).
    class AdapterDetached {
    public:
        explicit AdapterDetached(Decoder& decoder) : decoder_(decoder), adapter_(decoder.adapter()) {
            decoder_.attach_adapter(nullptr);
        }
        ~AdapterDetached() { decoder_.attach_adapter(adapter_); }
        AdapterDetached(const AdapterDetached&) = delete;
        AdapterDetached& operator=(const AdapterDetached&) = delete;

    private:
        Decoder& decoder_;
        const LoraAdapters* adapter_;
    };
    const Weights& weights() const { return weights_; }

    // Appends `tokens` at positions cache.size()...; writes logits of the last token
    // (logits.size() == vocab) or, with all_logits, of every token (tokens.size() * vocab).
    // Throws Error (leaving the cache unchanged) when a token id is outside the vocabulary, the
    // span has the wrong size, or the cache would exceed its capacity or the context.
    void forward(std::span<const std::int32_t> tokens, KvCache& cache, std::span<float> logits, bool all_logits = false);
    // The final hidden state (after the output norm) of the last token of the last forward: at the
    // end of a chat prompt, the pooled position the heads read (model/heads.h). Valid until the
    // next forward; empty before the first.
    std::span<const float> last_hidden() const { return last_hidden_; }

    // One sequence's part of forward_batch: `tokens` appended to `cache` with `adapter` (null =
    // the base model, whatever is attached), and which of its rows' logits come back.
    enum class LogitRows { None, Last, Every };
    struct SequenceStep {
        std::span<const std::int32_t> tokens;
        KvCache* cache = nullptr;
        const LoraAdapters* adapter = nullptr;
        LogitRows logits = LogitRows::Last;
    };
    // Advances every sequence of `steps` in passes of up to max_batch rows (one pass when their
    // tokens fit; a sequence longer than the room left continues in the next pass). `logits`
    // receives, in the order of `steps`, the rows each asks for: vocab floats for Last,
    // tokens.size() * vocab for Every, none for None. Each sequence's logits equal what forward()
    // gives it alone up to the products' summation order, which may depend on how many rows a pass
    // holds (tests/model/test_decoder_batch.cpp). Throws Error, leaving every cache unchanged, for
    // what forward() refuses, an adapter attach_adapter() would refuse, or two steps on one cache.
    void forward_batch(std::span<const SequenceStep> steps, std::span<float> logits);

    // The bound tensors, for passes other than inference (model/trainable_decoder.h runs its own
    // training forward and backward over them).
    using Layer = LayerWeights;

    const std::vector<Layer>& layers() const { return layers_; }
    const ModelSpec& spec() const { return spec_; }
    const kernels::Matrix& embedding() const { return embedding_; }
    const kernels::Matrix& output() const { return output_; }
    const float* output_norm() const { return output_norm_; }
    // The config's rotary table (ModelSpec::rope[0]) and the attention logits' scale.
    const std::vector<float>& inverse_frequencies() const { return spec_.rope.front().inverse_frequencies; }
    float rope_attention_factor() const { return spec_.rope.front().attention_factor; }
    kernels::RopePairing rope_pairing() const { return spec_.shape.rope_pairing; }
    float attention_scale() const { return spec_.attention_scale; }

private:
    class Ops;  // the layer pieces' hooks for inference (decoder.cpp)

    // Buffers for up to max_batch tokens, views into arena_.
    struct Activations {
        float* x;         // residual stream [T x hidden]
        LayerActs layer;  // every layer's, aliased where inference keeps nothing (decoder.cpp)
        std::vector<RopeRows> rope;  // per rotary table
    };

    // A run of one sequence's tokens in a pass: steps[step].tokens[first, first + count) at rows
    // [row, row + count) of the activations, positions past, past + 1, ….
    struct Piece {
        const SequenceStep* step = nullptr;
        std::int64_t first = 0, count = 0, row = 0, past = 0;
    };

    kernels::Matrix bind_matrix(const std::string& name, std::int64_t rows, std::int64_t cols) const;
    const float* bind_vector(const std::string& name, std::int64_t size);
    Layer bind_layer(std::int64_t layer);
    // Throws Error when `adapters` do not fit this model's layers and linears.
    void check_adapter(const LoraAdapters& adapters) const;
    void check_step(const SequenceStep& step) const;
    // Runs pieces_ (rows_ rows) and writes the logits they ask for from `logits` on; returns the
    // floats written.
    std::int64_t forward_pass(float* logits);

    ModelConfig config_;
    Weights weights_;
    std::int64_t max_batch_;
    ModelSpec spec_;
    std::vector<Layer> layers_;
    kernels::Matrix embedding_, output_;
    const float* output_norm_ = nullptr;
    std::vector<std::vector<float>> owned_vectors_;  // 1-D tensors converted to fp32
    AlignedArray<float> arena_;
    std::unique_ptr<MoeActivations> moe_act_ = std::make_unique<MoeActivations>();  // MoE layers' scratch
    Activations act_{};
    const LoraAdapters* adapter_ = nullptr;
    kernels::Precision products_ = kernels::Precision::F32;
    DType kv_cache_type_ = DType::F32;
    std::vector<float> adapter_xa_;         // x · Aᵀ for max_batch tokens [T x rank], grown to the largest rank seen
    std::vector<std::int32_t> positions_;   // every row's position in its sequence [max_batch]
    std::vector<Piece> pieces_;             // the pass being run
    std::int64_t rows_ = 0;                 // its rows
    std::span<const float> last_hidden_;  // the last logit row's normed state (act_.layer.n1)
};

}  // namespace kindred::model
