#!/usr/bin/env python3
"""Writes tests/goldens/train_kernels/*.json: torch/PEFT/transformers references for the training
kernels (kernels/loss.h, kernels/lora.h, kernels/optimizer.h) and the LR schedules (train/schedule.h).

- loss.json: LM-head cross-entropy (h, W, targets with ignore_index=-100, per-token weights) with
  the weighted NLL sum, per-token log-probs and d(sum)/dh; a small-head cross-entropy (mean
  reduction, no weights); KL(softmax(zT/t) || softmax(zS/t)) * t^2 with batchmean reduction and
  its student gradient; MSE (mean) and its gradient. Inputs are float32 values; references are
  computed by torch in float64 from them, so they are the exact answer up to double rounding and
  a C++ tolerance measures only the C++ code's own fp32 error.
- lora.json: a PEFT LoraConfig on a tiny nn.Linear (r=4, alpha=8, dropout 0; once plain, once
  use_rslora), A and B overwritten with saved random values, y = layer(x) and the gradients of
  sum(y * dy) w.r.t. A, B and x; plus torch's kaiming_uniform_(a=sqrt(5)) bound for fan_in = in.
- adamw.json: torch.optim.AdamW (foreach=False, float32) on two parameter tensors for 5 steps,
  each preceded by clip_grad_norm_ over both; saved gradients, norms and parameters after each step.
- schedules.json: lr of transformers' get_cosine_schedule_with_warmup,
  get_cosine_with_min_lr_schedule_with_warmup (min_lr_rate) and get_constant_schedule_with_warmup
  at every step (LambdaLR counts steps from 0).

Re-runnable: fixed seeds, so the files only change when the libraries' semantics change.
Usage: .venv/bin/python tools/goldens/train_kernels.py
"""
import json
import math
from pathlib import Path

import peft
import torch
import torch.nn.functional as F
import transformers
from transformers import (get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup,
                          get_cosine_with_min_lr_schedule_with_warmup)

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "goldens" / "train_kernels"


def floats(t):
    return [float(v) for v in t.detach().reshape(-1).tolist()]


def f32(*shape, gen, scale=1.0):
    return (torch.randn(*shape, generator=gen) * scale).float()


def loss_cases(gen):
    tokens, dim, vocab = 13, 24, 101  # vocab prime: no chunk size the tests use divides it
    h = f32(tokens, dim, gen=gen)
    w = f32(vocab, dim, gen=gen, scale=3.0 / math.sqrt(dim))  # logits spread of a few units
    targets = torch.randint(0, vocab, (tokens,), generator=gen)
    targets[[2, 7, 8]] = -100
    weights = (torch.rand(tokens, generator=gen) * 1.5 + 0.25).float()
    hd = h.double().requires_grad_(True)
    nll = F.cross_entropy(hd @ w.double().T, targets, ignore_index=-100, reduction="none")
    total = (nll * weights.double()).sum()
    total.backward()
    counted = targets != -100
    lm = {
        "tokens": tokens, "dim": dim, "vocab": vocab,
        "h": floats(h), "w": floats(w), "targets": targets.tolist(), "weights": floats(weights),
        "loss_sum": float(total.detach()), "weight_sum": float(weights.double()[counted].sum()),
        "target_logprob": floats(torch.where(counted, -nll, torch.zeros_like(nll))),
        "dh": floats(hd.grad),
    }

    rows, classes = 9, 7
    logits = f32(rows, classes, gen=gen, scale=2.0)
    head_targets = torch.randint(0, classes, (rows,), generator=gen)
    head_targets[4] = -100
    ld = logits.double().requires_grad_(True)
    mean = F.cross_entropy(ld, head_targets, ignore_index=-100)  # mean over counted rows
    mean.backward()
    head = {"rows": rows, "classes": classes, "logits": floats(logits), "targets": head_targets.tolist(),
            "mean_loss": float(mean.detach()), "dlogits": floats(ld.grad)}

    rows, classes, temperature = 5, 11, 2.0
    teacher = f32(rows, classes, gen=gen, scale=3.0)
    student = f32(rows, classes, gen=gen, scale=3.0)
    sd = student.double().requires_grad_(True)
    kl = F.kl_div(F.log_softmax(sd / temperature, -1), F.log_softmax(teacher.double() / temperature, -1),
                  reduction="batchmean", log_target=True) * temperature**2
    kl.backward()
    kl_case = {"rows": rows, "classes": classes, "temperature": temperature, "loss_scale": temperature**2,
               "teacher": floats(teacher), "student": floats(student), "batchmean_loss": float(kl.detach()),
               "dstudent": floats(sd.grad)}

    n = 17
    prediction, target = f32(n, gen=gen), f32(n, gen=gen)
    pd = prediction.double().requires_grad_(True)
    mse = F.mse_loss(pd, target.double())
    mse.backward()
    mse_case = {"n": n, "prediction": floats(prediction), "target": floats(target), "mean_loss": float(mse.detach()),
                "dprediction": floats(pd.grad)}
    return {"lm_head": lm, "small_head": head, "kl": kl_case, "mse": mse_case}


def lora_case(gen, rslora):
    tokens, in_features, out_features, rank, alpha = 6, 10, 7, 4, 8
    base = torch.nn.Sequential(torch.nn.Linear(in_features, out_features, bias=False))
    config = peft.LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=["0"], use_rslora=rslora)
    model = peft.get_peft_model(base, config).double()
    layer = model.base_model.model[0]
    a = f32(rank, in_features, gen=gen, scale=0.3)
    b = f32(out_features, rank, gen=gen, scale=0.3)  # nonzero so that every gradient is exercised
    w = f32(out_features, in_features, gen=gen)
    x = f32(tokens, in_features, gen=gen)
    dy = f32(tokens, out_features, gen=gen)
    with torch.no_grad():
        layer.lora_A["default"].weight.copy_(a.double())
        layer.lora_B["default"].weight.copy_(b.double())
        layer.base_layer.weight.copy_(w.double())
    xd = x.double().requires_grad_(True)
    y = layer(xd)
    (y * dy.double()).sum().backward()
    frozen = xd.detach() @ w.double().T
    return {
        "tokens": tokens, "in": in_features, "out": out_features, "rank": rank, "alpha": alpha, "rslora": rslora,
        "scaling": float(layer.scaling["default"]), "a": floats(a), "b": floats(b), "x": floats(x), "dy": floats(dy),
        "lora_y": floats(y.detach() - frozen),  # the adapter's term alone (the frozen product is not ours)
        "da": floats(layer.lora_A["default"].weight.grad), "db": floats(layer.lora_B["default"].weight.grad),
        "dx_lora": floats(xd.grad - dy.double() @ w.double()),
    }


def kaiming_bound(fan_in):
    # torch.nn.init.kaiming_uniform_: bound = sqrt(3) * gain / sqrt(fan_in), gain of leaky_relu(a).
    gain = torch.nn.init.calculate_gain("leaky_relu", math.sqrt(5))
    bound = math.sqrt(3.0) * gain / math.sqrt(fan_in)
    probe = torch.empty(4096, fan_in)
    torch.nn.init.kaiming_uniform_(probe, a=math.sqrt(5))
    assert probe.abs().max().item() <= bound and probe.abs().max().item() > 0.99 * bound
    return bound


def adamw_case(gen):
    sizes = [20, 17]
    params = [torch.nn.Parameter(f32(n, gen=gen)) for n in sizes]
    initial = [floats(p) for p in params]
    lr, betas, eps, weight_decay, max_norm = 1e-2, (0.9, 0.95), 1e-8, 0.1, 1.0
    optimizer = torch.optim.AdamW(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, foreach=False)
    steps = []
    for step in range(5):
        scale = [3.0, 0.05, 1.0, 0.2, 5.0][step]  # some steps clip, some do not
        grads = [f32(n, gen=gen, scale=scale) for n in sizes]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=False)
        clipped = [floats(p.grad) for p in params]
        optimizer.step()
        steps.append({"grads": [floats(g) for g in grads], "norm": float(norm), "clipped": clipped,
                      "params": [floats(p) for p in params],
                      "exp_avg": [floats(optimizer.state[p]["exp_avg"]) for p in params],
                      "exp_avg_sq": [floats(optimizer.state[p]["exp_avg_sq"]) for p in params]})
    return {"lr": lr, "beta1": betas[0], "beta2": betas[1], "eps": eps, "weight_decay": weight_decay,
            "max_norm": max_norm, "sizes": sizes, "initial": initial, "steps": steps}


def schedule_cases():
    def run(make, steps, peak):
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=peak)
        scheduler = make(optimizer)
        lrs = []
        for _ in range(steps):
            lrs.append(scheduler.get_last_lr()[0])
            optimizer.step()
            scheduler.step()
        return lrs

    peak = 2e-4
    return [
        {"name": "cosine", "decay": "cosine", "peak_lr": peak, "warmup_steps": 10, "total_steps": 100,
         "min_lr_ratio": 0.0, "cycles": 0.5,
         "lr": run(lambda o: get_cosine_schedule_with_warmup(o, 10, 100), 110, peak)},
        {"name": "cosine_min_lr", "decay": "cosine", "peak_lr": peak, "warmup_steps": 7, "total_steps": 50,
         "min_lr_ratio": 0.1, "cycles": 0.5,
         "lr": run(lambda o: get_cosine_with_min_lr_schedule_with_warmup(o, 7, 50, min_lr_rate=0.1), 60, peak)},
        {"name": "cosine_no_warmup", "decay": "cosine", "peak_lr": peak, "warmup_steps": 0, "total_steps": 30,
         "min_lr_ratio": 0.0, "cycles": 0.5,
         "lr": run(lambda o: get_cosine_schedule_with_warmup(o, 0, 30), 30, peak)},
        {"name": "constant", "decay": "constant", "peak_lr": peak, "warmup_steps": 5, "total_steps": 0,
         "min_lr_ratio": 0.0, "cycles": 0.5,
         "lr": run(lambda o: get_constant_schedule_with_warmup(o, 5), 20, peak)},
    ]


def write(name, payload):
    payload = {"generated_by": "tools/goldens/train_kernels.py",
               "versions": {"torch": torch.__version__, "peft": peft.__version__,
                            "transformers": transformers.__version__}, **payload}
    (OUT / name).write_text(json.dumps(payload, indent=None, separators=(",", ":")) + "\n")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(20261126)
    write("loss.json", loss_cases(gen))
    write("lora.json", {"plain": lora_case(gen, False), "rslora": lora_case(gen, True),
                        "kaiming_fan_in": 576, "kaiming_bound": kaiming_bound(576)})
    write("adamw.json", adamw_case(gen))
    write("schedules.json", {"cases": schedule_cases()})
    for path in sorted(OUT.iterdir()):
        print(f"{path.relative_to(ROOT)}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
