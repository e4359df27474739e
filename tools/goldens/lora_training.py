#!/usr/bin/env python3
"""Goldens for model/trainable_decoder.h and model/lora_adapters.h: LoRA training through PEFT.

For four models — the random tiny Llama, tiny Qwen3 (per-head q/k norms, q/k/v/o biases) and tiny
Gemma 3 (sandwich norms, GeGLU, sliding and full layers with their own rope bases) of
tests/goldens/inference/ (safetensors, HF layout) and SmolLM2-135M-Instruct from the default GGUF (transformers dequantizes it to fp32 and
un-permutes q/k rows, so every tensor here is in HF layout) — the script wraps the model with
PEFT LoRA on q,k,v,o,gate,up,down (dropout 0), OVERWRITES every lora_A / lora_B with
deterministic values (B non-zero, so that the gradients of A are not trivially zero), and records:
  - the mean cross-entropy of a fixed batch of documents (each document run on its own, so the
    C++ side can pack them into one row with segment ids and restarting positions),
  - the gradient of that loss w.r.t. every LoRA tensor (tiny: all in full; SmolLM2: a few in
    full, the Frobenius norm of every one),
  - the losses of 5 torch.optim.AdamW steps (weight decay on), before each step and after the last.
For SmolLM2 the same record is also made under torch.autocast("cpu", bfloat16)
(smollm2_autocast_bf16.json): how far PyTorch's own bf16 compute lands from its fp32 golden, the
yardstick for Kindred's bf16 compute (model.compute_dtype).

Init values: element i of tensor k (k counts layers outermost, modules in the order
q,k,v,o,gate,up,down, A before B) is float32(scale * ((((i * 7919 + k * 104729 + 13) % 2001) - 1000) / 1000))
with scale = 1/sqrt(in_features) for A and 0.05 for B, computed in float64 (C++ reproduces it
exactly). The tiny goldens also store the values themselves.

Usage: .venv/bin/python tools/goldens/lora_training.py [--tiny-only | --autocast-only | --tiny NAME] [path/to/SmolLM2.gguf]
"""
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
import transformers
import peft

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "goldens", "lora_training")
DEFAULT_GGUF = os.path.expanduser("~/.cache/kindred/models/SmolLM2-135M-Instruct.Q4_1.gguf")
MODULES = ["q", "k", "v", "o", "gate", "up", "down"]
PROJ = {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj", "o": "self_attn.o_proj",
        "gate": "mlp.gate_proj", "up": "mlp.up_proj", "down": "mlp.down_proj"}
STEPS = 5


def init_values(k, count, scale):
    i = np.arange(count, dtype=np.int64)
    raw = ((i * 7919 + k * 104729 + 13) % 2001 - 1000).astype(np.float64) / 1000.0
    return (scale * raw).astype(np.float32)


def key(layer, module, which):
    return f"base_model.model.model.layers.{layer}.{PROJ[module]}.lora_{which}.weight"


def wrap(model, rank, alpha, layers):
    config = peft.LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, bias="none",
                             target_modules=[PROJ[m].split(".")[1] for m in MODULES])
    model = peft.get_peft_model(model, config)
    tensors = {}
    with torch.no_grad():
        for layer in range(layers):
            block = model.base_model.model.model.layers[layer]
            for mi, module in enumerate(MODULES):
                part, proj = PROJ[module].split(".")
                linear = getattr(getattr(block, part), proj)
                a = linear.lora_A["default"].weight
                b = linear.lora_B["default"].weight
                k = 2 * (layer * len(MODULES) + mi)
                a.copy_(torch.from_numpy(init_values(k, a.numel(), 1.0 / math.sqrt(a.shape[1]))).view_as(a))
                b.copy_(torch.from_numpy(init_values(k + 1, b.numel(), 0.05)).view_as(b))
                tensors[key(layer, module, "A")] = a
                tensors[key(layer, module, "B")] = b
    return model, tensors


def batch_loss(model, documents, autocast=False):
    total, count = None, 0
    for doc in documents:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            logits = model(input_ids=torch.tensor([doc["tokens"]])).logits[0]
        targets = torch.tensor(doc["targets"])
        loss = F.cross_entropy(logits.float(), targets, ignore_index=-100, reduction="sum")
        total = loss if total is None else total + loss
        count += int((targets != -100).sum())
    return total / count


def run(model, tensors, documents, lr, weight_decay, full_grads, autocast=False):
    model.train()  # dropout is 0, so train mode computes what eval mode does
    loss = batch_loss(model, documents, autocast)
    loss.backward()
    grads = {name: t.grad.detach().clone() for name, t in tensors.items()}
    record = {
        "loss": loss.item(),
        "grad_norms": {name: g.norm().item() for name, g in grads.items()},
        "grads": {name: grads[name].flatten().tolist() for name in (full_grads or grads.keys())},
    }
    optimizer = torch.optim.AdamW(list(tensors.values()), lr=lr, weight_decay=weight_decay)
    losses = []
    for _ in range(STEPS):
        optimizer.zero_grad()
        loss = batch_loss(model, documents, autocast)
        losses.append(loss.item())
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        losses.append(batch_loss(model, documents, autocast).item())
    record["adamw"] = {"lr": lr, "weight_decay": weight_decay, "betas": [0.9, 0.999], "eps": 1e-8, "losses": losses}
    return record


def document(tokens, ignore_first=0):
    targets = tokens[1:] + [-100]
    for i in range(ignore_first):
        targets[i] = -100
    return {"tokens": tokens, "targets": targets}


def tiny(name):
    directory = os.path.join(ROOT, "tests", "goldens", "inference", name)
    model = transformers.AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32)
    rank, alpha = 8, 16.0
    model, tensors = wrap(model, rank, alpha, model.config.num_hidden_layers)
    gen = torch.Generator().manual_seed(11)
    documents = [document([int(t) for t in torch.randint(0, 96, (12,), generator=gen)], ignore_first=3),
                 document([int(t) for t in torch.randint(0, 96, (9,), generator=gen)])]
    init = {name: t.detach().flatten().tolist() for name, t in tensors.items()}
    record = run(model, tensors, documents, lr=1e-2, weight_decay=0.1, full_grads=None)
    record.update({"rank": rank, "alpha": alpha, "documents": documents, "init": init})
    del record["grad_norms"]
    write(name.replace("-", "_") + ".json", record)


def smollm2(gguf_path, autocast=False):
    directory, name = os.path.split(gguf_path)
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory, gguf_file=name)
    model = transformers.AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, dtype=torch.float32)
    rank, alpha = 4, 8.0
    model, tensors = wrap(model, rank, alpha, model.config.num_hidden_layers)
    texts = ["I feel so alone since my friend moved away.", "That sounds really hard. Do you want to talk?"]
    documents = [document(tokenizer(t, add_special_tokens=False)["input_ids"], ignore_first=2 if i == 0 else 0)
                 for i, t in enumerate(texts)]
    full = [key(0, "q", "B"), key(0, "k", "A"), key(29, "k", "B"), key(15, "down", "A"), key(7, "o", "B")]
    record = run(model, tensors, documents, lr=1e-3, weight_decay=0.1, full_grads=full, autocast=autocast)
    record.update({"source": name, "rank": rank, "alpha": alpha, "documents": documents})
    write("smollm2_autocast_bf16.json" if autocast else "smollm2.json", record)


def write(relative, data, out=OUT):
    path = os.path.join(out, relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


def main():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    if "--tiny" in sys.argv:
        tiny(sys.argv[sys.argv.index("--tiny") + 1])
        return
    only_tiny = "--tiny-only" in sys.argv
    only_autocast = "--autocast-only" in sys.argv
    sys.argv = [a for a in sys.argv if a not in ("--tiny-only", "--autocast-only")]
    gguf = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_GGUF
    if only_autocast:
        smollm2(gguf, autocast=True)
        return
    tiny("tiny-llama")
    tiny("tiny-qwen3")
    tiny("tiny-gemma3")
    if not only_tiny:
        smollm2(gguf)
        smollm2(gguf, autocast=True)


if __name__ == "__main__":
    main()
