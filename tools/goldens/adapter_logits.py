#!/usr/bin/env python3
"""Golden for LoRA at inference (tests/model/test_decoder_adapter.cpp, tests/cli/test_adapter_cli.cpp):
the default GGUF in transformers (fp32) wrapped by PEFT's PeftModel over a random adapter.

Writes into tests/goldens/adapter_logits/:
  adapter/             a PEFT LoRA directory: r=2, alpha=16 (scale 8), all seven projections of every
                       layer, random non-zero A and B stored as F16 (exact in fp32) so it stays ~1.2 MB
  logits.json          for 2 chat prompts: prompt ids, full last-position logits, and the greedy
                       continuation (16 tokens, ending early at end-of-turn)

transformers dequantizes the GGUF to fp32 and undoes the q/k row permutation, so PEFT's B·A lands on
HF-ordered rows; Kindred must permute B of q/k to match. Re-runnable:
`.venv/bin/python tools/goldens/adapter_logits.py [path/to/model.gguf]`.
"""
import json
import os
import sys

import peft
import torch
import transformers
from safetensors.torch import save_file

from inference import chat_prompt_ids

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "goldens", "adapter_logits")
DEFAULT_GGUF = os.path.expanduser("~/.cache/kindred/models/SmolLM2-135M-Instruct.Q4_1.gguf")
MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
RANK, ALPHA = 2, 16.0
PROMPTS = ["I failed my exam today and I feel awful.", "What is the capital of France?"]
NEW_TOKENS = 16


def make_adapter(model, directory):
    # A ~ N(0, 1/in) keeps x·Aᵀ at the scale of x; B ~ N(0, 0.01²) then makes scale·B·A a ~10% change
    # of each projection: large enough to move every logit and the greedy path, small enough to keep
    # the model coherent (near-tied greedy steps would make the token comparison fragile).
    g = torch.Generator().manual_seed(20261126)
    tensors = {}
    for layer_index, layer in enumerate(model.model.layers):
        for module in MODULES:
            parent = "self_attn" if module in MODULES[:4] else "mlp"
            linear = getattr(getattr(layer, parent), module)
            prefix = f"base_model.model.model.layers.{layer_index}.{parent}.{module}"
            a = torch.randn(RANK, linear.in_features, generator=g) / linear.in_features ** 0.5
            b = 0.01 * torch.randn(linear.out_features, RANK, generator=g)
            tensors[prefix + ".lora_A.weight"] = a.to(torch.float16).contiguous()
            tensors[prefix + ".lora_B.weight"] = b.to(torch.float16).contiguous()
    os.makedirs(directory, exist_ok=True)
    save_file(tensors, os.path.join(directory, "adapter_model.safetensors"), metadata={"format": "pt"})
    config = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": None, "r": RANK,
              "lora_alpha": ALPHA, "lora_dropout": 0.0, "bias": "none", "use_rslora": False, "use_dora": False,
              "fan_in_fan_out": False, "target_modules": MODULES, "inference_mode": True}
    with open(os.path.join(directory, "adapter_config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")


def main():
    gguf_path = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_GGUF
    directory, name = os.path.split(gguf_path)
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory, gguf_file=name)
    base = transformers.AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, dtype=torch.float32)
    adapter_dir = os.path.join(OUT, "adapter")
    make_adapter(base, adapter_dir)
    model = peft.PeftModel.from_pretrained(base, adapter_dir)
    model.eval()
    # The loaded adapter must be exactly the stored one (fp16 -> fp32 is exact).
    loaded = dict(model.named_parameters())
    assert any("lora_A" in k for k in loaded), "PEFT attached no adapter"

    chats = []
    with torch.no_grad():
        for prompt in PROMPTS:
            ids = chat_prompt_ids(tokenizer, prompt)
            last = model(input_ids=torch.tensor([ids])).logits[0, -1]
            base_last = None
            with model.disable_adapter():
                base_last = model(input_ids=torch.tensor([ids])).logits[0, -1]
            out = model.generate(input_ids=torch.tensor([ids]), max_new_tokens=NEW_TOKENS, do_sample=False,
                                 pad_token_id=tokenizer.eos_token_id)
            generated = out[0, len(ids):].tolist()
            full = model(input_ids=out[:, :-1]).logits[0, len(ids) - 1:]
            top2 = torch.topk(full, 2).values
            chats.append({"prompt": prompt, "prompt_ids": ids,
                          "last_logits": [float(f"{v:.7g}") for v in last.tolist()],
                          "max_abs_change_from_base": float(f"{(last - base_last).abs().max().item():.6g}"),
                          "generated_ids": generated,
                          "min_top2_gap": float(f"{(top2[:, 0] - top2[:, 1]).min().item():.6g}"),
                          "text": tokenizer.decode(generated)})
    path = os.path.join(OUT, "logits.json")
    with open(path, "w") as f:
        json.dump({"source": name, "adapter": "adapter", "rank": RANK, "alpha": ALPHA, "new_tokens": NEW_TOKENS,
                   "chats": chats}, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")
    for chat in chats:
        print(chat["prompt"], "->", repr(chat["text"]), "gap", chat["min_top2_gap"], "change",
              chat["max_abs_change_from_base"])


if __name__ == "__main__":
    main()
