// model/moe_mlp.cpp — the mixture-of-experts MLP piece (see moe_mlp.h).
#include "model/moe_mlp.h"

#include <algorithm>

#include "core/error.h"

namespace kindred::model {
namespace {

using kernels::ExpertLoraRows;
using kernels::ExpertLoraShape;

std::size_t size(std::int64_t n) { return static_cast<std::size_t>(n); }

const float* bias_or_null(const std::vector<float>& bias) { return bias.empty() ? nullptr : bias.data(); }

bool has_gate_up_lora(const MoeLora* lora) { return lora != nullptr && lora->a_gate_up != nullptr; }
bool has_down_lora(const MoeLora* lora) { return lora != nullptr && lora->a_down != nullptr; }

ExpertLoraShape gate_up_shape(const MoeWeights& w, const MoeLora& lora) {
    return {w.gate.experts, w.gate.cols, 2 * w.gate.rows, lora.rank, lora.scale};
}
ExpertLoraShape down_shape(const MoeWeights& w, const MoeLora& lora) {
    return {w.down.experts, w.down.cols, w.down.rows, lora.rank, lora.scale};
}
// B's gate and up rows within the fused gate_up adapter.
ExpertLoraRows gate_rows(const MoeMlpSpec& spec, std::int64_t n) {
    return spec.interleaved_gate_up ? ExpertLoraRows{0, 2, n} : ExpertLoraRows{0, 1, n};
}
ExpertLoraRows up_rows(const MoeMlpSpec& spec, std::int64_t n) {
    return spec.interleaved_gate_up ? ExpertLoraRows{1, 2, n} : ExpertLoraRows{n, 1, n};
}

kernels::RouterShape router_shape(const MoeWeights& w, const MoeMlpSpec& spec, std::int64_t tokens) {
    return {tokens, w.gate.experts, spec.top_k, spec.router, spec.normalize};
}

}  // namespace

MoeMlpSpec moe_mlp_spec(const ModelConfig& config) {
    MoeMlpSpec spec;
    spec.top_k = config.num_experts_per_token;
    switch (config.architecture) {
        case Architecture::Qwen3Moe:
            spec.router = kernels::RouterKind::SoftmaxTopK;
            spec.normalize = config.norm_topk_prob;
            break;
        case Architecture::GptOss:
            spec.router = kernels::RouterKind::TopKSoftmax;
            spec.clamped = true;
            spec.swiglu = {static_cast<float>(config.swiglu_alpha), static_cast<float>(config.swiglu_limit)};
            spec.interleaved_gate_up = true;
            break;
        default: fail("{} has no mixture-of-experts MLP", architecture_name(config.architecture));
    }
    return spec;
}

void moe_mlp_forward(float* y, const float* x, std::int64_t tokens, const MoeWeights& w, const MoeMlpSpec& spec,
                     const MoeLora* lora, MoeActivations& s, kernels::Precision precision) {
    const std::int64_t experts = w.gate.experts, hidden = w.gate.cols, n = w.gate.rows, rows = tokens * spec.top_k;
    s.logits.resize(size(tokens * experts));
    kernels::matmul_forward(s.logits.data(), x, w.router, bias_or_null(w.router_bias), tokens);
    s.chosen.resize(size(rows));
    s.weights.resize(size(rows));
    kernels::moe_route_forward(s.chosen.data(), s.weights.data(), s.logits.data(), router_shape(w, spec, tokens));
    kernels::moe_group(s.groups, s.chosen.data(), tokens, spec.top_k, experts);
    s.rows_x.resize(size(rows * hidden));
    kernels::moe_gather(s.rows_x.data(), x, s.groups, hidden);
    s.gate.resize(size(rows * n));
    s.up.resize(size(rows * n));
    kernels::expert_matmul_forward(s.gate.data(), s.rows_x.data(), w.gate.matrices(), bias_or_null(w.gate_bias), s.groups,
                                   precision);
    kernels::expert_matmul_forward(s.up.data(), s.rows_x.data(), w.up.matrices(), bias_or_null(w.up_bias), s.groups,
                                   precision);
    if (has_gate_up_lora(lora)) {
        const ExpertLoraShape shape = gate_up_shape(w, *lora);
        s.xa_gate_up.resize(size(rows * lora->rank));
        kernels::expert_lora_down_forward(s.xa_gate_up.data(), s.rows_x.data(), lora->a_gate_up, s.groups, shape);
        kernels::expert_lora_up_forward(s.gate.data(), s.xa_gate_up.data(), lora->b_gate_up, gate_rows(spec, n), s.groups,
                                        shape);
        kernels::expert_lora_up_forward(s.up.data(), s.xa_gate_up.data(), lora->b_gate_up, up_rows(spec, n), s.groups,
                                        shape);
    }
    s.act.resize(size(rows * n));
    if (spec.clamped)
        kernels::clamped_swiglu_forward(s.act.data(), s.gate.data(), s.up.data(), rows * n, spec.swiglu);
    else
        kernels::gated_activation_forward(s.act.data(), s.gate.data(), s.up.data(), rows * n, kernels::GateActivation::Silu);
    s.out.resize(size(rows * hidden));
    kernels::expert_matmul_forward(s.out.data(), s.act.data(), w.down.matrices(), bias_or_null(w.down_bias), s.groups,
                                   precision);
    if (has_down_lora(lora)) {
        const ExpertLoraShape shape = down_shape(w, *lora);
        s.xa_down.resize(size(rows * lora->rank));
        kernels::expert_lora_down_forward(s.xa_down.data(), s.act.data(), lora->a_down, s.groups, shape);
        kernels::expert_lora_up_forward(s.out.data(), s.xa_down.data(), lora->b_down, {0, 1, hidden}, s.groups, shape);
    }
    kernels::moe_combine_forward(y, s.out.data(), s.weights.data(), s.groups, hidden);
}

void moe_mlp_backward(float* dx, const float* dy, std::int64_t tokens, const MoeActivations& s, const MoeWeights& w,
                      const MoeMlpSpec& spec, const MoeLora* lora, const MoeLoraGrads* grads,
                      kernels::Precision precision) {
    const std::int64_t experts = w.gate.experts, hidden = w.gate.cols, n = w.gate.rows, rows = tokens * spec.top_k;
    const MoeLoraGrads none;
    const MoeLoraGrads& g = grads != nullptr ? *grads : none;
    // Scratch reused across calls (the backward of every layer has the same shapes).
    thread_local std::vector<float> dout, dweights, dact, dgate, dup, dxa, drows, dlogits;
    dout.assign(size(rows * hidden), 0.0f);
    dweights.assign(size(rows), 0.0f);
    kernels::moe_combine_backward(dout.data(), dweights.data(), dy, s.out.data(), s.weights.data(), s.groups, hidden);
    dact.assign(size(rows * n), 0.0f);
    if (has_down_lora(lora)) {
        const ExpertLoraShape shape = down_shape(w, *lora);
        dxa.assign(size(rows * lora->rank), 0.0f);
        kernels::expert_lora_up_backward(dxa.data(), g.b_down, dout.data(), s.xa_down.data(), lora->b_down, {0, 1, hidden},
                                         s.groups, shape);
        kernels::expert_lora_down_backward(dact.data(), g.a_down, dxa.data(), s.act.data(), lora->a_down, s.groups, shape);
    }
    kernels::expert_matmul_backward_input(dact.data(), dout.data(), w.down.matrices(), s.groups, precision);
    dgate.assign(size(rows * n), 0.0f);
    dup.assign(size(rows * n), 0.0f);
    if (spec.clamped)
        kernels::clamped_swiglu_backward(dgate.data(), dup.data(), dact.data(), s.gate.data(), s.up.data(), rows * n,
                                         spec.swiglu);
    else
        kernels::gated_activation_backward(dgate.data(), dup.data(), dact.data(), s.gate.data(), s.up.data(), rows * n,
                                           kernels::GateActivation::Silu);
    drows.assign(size(rows * hidden), 0.0f);
    if (has_gate_up_lora(lora)) {
        const ExpertLoraShape shape = gate_up_shape(w, *lora);
        dxa.assign(size(rows * lora->rank), 0.0f);
        kernels::expert_lora_up_backward(dxa.data(), g.b_gate_up, dgate.data(), s.xa_gate_up.data(), lora->b_gate_up,
                                         gate_rows(spec, n), s.groups, shape);
        kernels::expert_lora_up_backward(dxa.data(), g.b_gate_up, dup.data(), s.xa_gate_up.data(), lora->b_gate_up,
                                         up_rows(spec, n), s.groups, shape);
        kernels::expert_lora_down_backward(drows.data(), g.a_gate_up, dxa.data(), s.rows_x.data(), lora->a_gate_up,
                                           s.groups, shape);
    }
    kernels::expert_matmul_backward_input(drows.data(), dgate.data(), w.gate.matrices(), s.groups, precision);
    kernels::expert_matmul_backward_input(drows.data(), dup.data(), w.up.matrices(), s.groups, precision);
    kernels::moe_gather_backward(dx, drows.data(), s.groups, hidden);
    // The frozen router's weights depend on x: dweights → dlogits → dx.
    dlogits.assign(size(tokens * experts), 0.0f);
    kernels::moe_route_backward(dlogits.data(), dweights.data(), s.logits.data(), s.chosen.data(), s.weights.data(),
                                router_shape(w, spec, tokens));
    kernels::matmul_backward_input(dx, dlogits.data(), w.router, tokens);
}

}  // namespace kindred::model
