// model/moe_weights.cpp — a layer's MoE tensors with their shapes checked (see moe_weights.h).
#include "model/moe_weights.h"

#include <fmt/ranges.h>

#include "core/error.h"
#include "kernels/dequantize.h"

namespace kindred::model {
namespace {

void check_shape(const Weights& weights, const std::string& name, const WeightView& view,
                 const std::vector<std::int64_t>& expected, const char* meaning) {
    if (view.shape != expected)
        fail("{}: tensor '{}' has shape [{}], expected [{}] ({})", weights.source(), name, fmt::join(view.shape, ", "),
             fmt::join(expected, ", "), meaning);
    if (!dtype_info(view.type).dequantizable)
        fail("{}: tensor '{}' has type {}, which the kernels cannot read", weights.source(), name, dtype_name(view.type));
}

ExpertStack bind_stack(const Weights& weights, const std::string& name, std::int64_t experts, std::int64_t rows,
                       std::int64_t cols) {
    const WeightView& view = weights.get(name);
    check_shape(weights, name, view, {experts, rows, cols}, "experts x out x in");
    ExpertStack stack{view.type, experts, rows, cols, view.slices};
    if (stack.slices.empty()) kernels::expert_slices(stack.slices, view.data, view.type, experts, rows, cols);
    return stack;
}

// An fp32 copy of a [dims...] bias, or empty when the file has none and it is optional.
std::vector<float> bind_bias(const Weights& weights, const std::string& name, const std::vector<std::int64_t>& shape,
                             bool required, const char* meaning) {
    const WeightView* view = weights.find(name);
    if (view == nullptr) {
        if (required) fail("{}: tensor '{}' is missing", weights.source(), name);
        return {};
    }
    check_shape(weights, name, *view, shape, meaning);
    std::int64_t count = 1;
    for (const auto dim : shape) count *= dim;
    std::vector<float> values(static_cast<std::size_t>(count));
    dequantize_row(view->type, view->data, values.data(), count);
    return values;
}

}  // namespace

MoeWeights bind_moe_weights(const Weights& weights, const ModelConfig& config, std::int64_t layer) {
    const std::string prefix = "blk." + std::to_string(layer) + ".";
    const std::int64_t experts = config.num_experts, hidden = config.hidden_size, n = config.moe_intermediate_size;
    const bool biases = config.architecture == Architecture::GptOss;
    MoeWeights moe;
    const std::string router = prefix + "ffn_gate_inp.weight";
    const WeightView& router_view = weights.get(router);
    check_shape(weights, router, router_view, {experts, hidden}, "experts x hidden");
    moe.router = {router_view.type, experts, hidden, router_view.data};
    moe.router_bias = bind_bias(weights, prefix + "ffn_gate_inp.bias", {experts}, biases, "experts");
    moe.gate = bind_stack(weights, prefix + "ffn_gate_exps.weight", experts, n, hidden);
    moe.up = bind_stack(weights, prefix + "ffn_up_exps.weight", experts, n, hidden);
    moe.down = bind_stack(weights, prefix + "ffn_down_exps.weight", experts, hidden, n);
    moe.gate_bias = bind_bias(weights, prefix + "ffn_gate_exps.bias", {experts, n}, biases, "experts x out");
    moe.up_bias = bind_bias(weights, prefix + "ffn_up_exps.bias", {experts, n}, biases, "experts x out");
    moe.down_bias = bind_bias(weights, prefix + "ffn_down_exps.bias", {experts, hidden}, biases, "experts x out");
    return moe;
}

}  // namespace kindred::model
