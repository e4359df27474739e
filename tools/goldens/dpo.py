#!/usr/bin/env python3
"""Goldens for train/dpo.h and train/dpo_loss.h: DPO of a PEFT LoRA policy through TRL's DPOTrainer.

Written with trl 1.16.0, peft 0.21.2, transformers 5.25.0, torch 2.15.0 on CPU in fp32 (the script
checks these versions and records them in every golden).

For three models — the random tiny Llama and tiny Qwen3 of tests/goldens/inference/ and
SmolLM2-135M-Instruct from the default GGUF (transformers dequantizes it to fp32) — the script
wraps the model with PEFT LoRA on q,k,v,o,gate,up,down, sets every lora_A / lora_B to the
deterministic values of tools/goldens/lora_training.py (the "SFT adapter"), and hands that
PeftModel to DPOTrainer without a ref_model, so TRL copies the adapter into a frozen "ref" adapter:
the reference is the SFT adapter and the policy starts from it, as in Kindred. With
precompute_ref_log_probs=True TRL computes the reference log-probs once, in __init__. The policy
("default" adapter) is then moved off the reference by adding a second formula to every tensor
(element i of tensor k gets init_values(k + 500, n, scale / 2)), so the losses are not trivially
log 2. For each loss type (sigmoid, ipo, hinge, robust with label_smoothing 0.1) it records:
  - TRL's precomputed reference log-probs of every pair,
  - the loss of one batch holding every pair and TRL's logged metrics (rewards/chosen,
    rewards/rejected, rewards/margins, rewards/accuracies, logps/chosen, logps/rejected),
  - the gradient of that loss w.r.t. every LoRA tensor (tiny: all in full; SmolLM2: the Frobenius
    norm of every one, five in full for sigmoid and one for each other loss),
  - the losses of 5 optimizer steps of DPOTrainer.train() (AdamW, constant lr, weight decay 0.01,
    no clipping, one batch of every pair per step) and the loss after the last one.
The pairs are pre-tokenized by TRL itself: plain text over a one-token-per-word vocabulary for
the tiny models ("t5 t17 ..."; every completion ends with the EOS word, so TRL appends nothing),
conversational with SmolLM2's chat template for SmolLM2; the prompt/chosen/rejected ids TRL
trains on are stored, and the C++ test feeds exactly those.

Usage: .venv/bin/python tools/goldens/dpo.py [--tiny-only] [path/to/SmolLM2.gguf]
"""
import json
import math
import os
import sys
import tempfile

import torch

import datasets
import peft
import tokenizers
import transformers
import trl

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lora_training import DEFAULT_GGUF, init_values, key, wrap, write as write_json  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "goldens", "dpo")
VERSIONS = {"trl": "1.16.0", "peft": "0.21.2", "transformers": "5.25.0", "torch": "2.15.0"}
LOSSES = [("sigmoid", 0.0), ("ipo", 0.0), ("hinge", 0.0), ("robust", 0.1)]
STEPS = 5


def check_versions():
    found = {"trl": trl.__version__, "peft": peft.__version__, "transformers": transformers.__version__,
             "torch": torch.__version__.split("+")[0]}
    if found != VERSIONS:
        sys.exit(f"these goldens were written with {VERSIONS}; found {found}")
    return found


class RecordingDPOTrainer(trl.DPOTrainer):
    """DPOTrainer whose training-step losses are kept unrounded (the Trainer's logs round them)."""

    def __init__(self, *args, **kwargs):
        self.step_losses = []
        super().__init__(*args, **kwargs)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        if model.training and torch.is_grad_enabled():
            self.step_losses.append(loss.item())
        return loss


def word_tokenizer(vocab_size):
    """t0 .. t{vocab-1}, one token per whitespace-separated word; t2 is EOS, t0 padding."""
    vocab = {f"t{i}": i for i in range(vocab_size)}
    model = tokenizers.models.WordLevel(vocab, unk_token="t1")
    tok = tokenizers.Tokenizer(model)
    tok.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="t2", pad_token="t0", unk_token="t1")


def float32_list(tensor):
    """A float32 tensor's values with the 9 significant digits that give each back exactly."""
    return [float(f"{v:.9g}") for v in tensor.detach().flatten().tolist()]


def perturb(tensors):
    with torch.no_grad():
        for k, (name, t) in enumerate(tensors.items()):
            scale = (1.0 / math.sqrt(t.shape[1])) if ".lora_A." in name else 0.05
            t.add_(torch.from_numpy(init_values(k + 500, t.numel(), scale / 2)).view_as(t))


def dpo_config(directory, loss_type, label_smoothing, pairs, lr):
    return trl.DPOConfig(
        output_dir=directory, loss_type=[loss_type], beta=0.1, label_smoothing=label_smoothing,
        precompute_ref_log_probs=True, per_device_train_batch_size=pairs, gradient_accumulation_steps=1,
        max_steps=STEPS, learning_rate=lr, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.01,
        adam_beta1=0.9, adam_beta2=0.999, adam_epsilon=1e-8, optim="adamw_torch", max_grad_norm=0.0,
        bf16=False, fp16=False, gradient_checkpointing=False, use_cpu=True, report_to="none", save_strategy="no",
        logging_steps=1, max_length=None, seed=0, dataloader_num_workers=0, disable_dropout=True)


def run(make_model, tokenizer, dataset, rank, alpha, lr, full_grads):
    """One record per loss type (see the module docstring)."""
    records = {}
    pair_ids = None
    for loss_type, label_smoothing in LOSSES:
        model = make_model()
        model, tensors = wrap(model, rank, alpha, model.config.num_hidden_layers)
        with tempfile.TemporaryDirectory() as directory:
            datasets.disable_caching()
            trainer = RecordingDPOTrainer(model=model, args=dpo_config(directory, loss_type, label_smoothing,
                                                                       len(dataset), lr),
                                          train_dataset=datasets.Dataset.from_list(dataset), processing_class=tokenizer)
            prepared = trainer.train_dataset
            ids = [{"prompt_ids": r["prompt_ids"], "chosen_ids": r["chosen_ids"], "rejected_ids": r["rejected_ids"]}
                   for r in prepared]
            if pair_ids is None:
                pair_ids = ids
            assert ids == pair_ids, "TRL tokenized the pairs differently between loss types"
            reference = {"chosen": [float(r["ref_chosen_logps"]) for r in prepared],
                         "rejected": [float(r["ref_rejected_logps"]) for r in prepared]}
            perturb(tensors)

            trainer.model.train()
            batch = trainer.data_collator([prepared[i] for i in range(len(prepared))])
            batch = {k: v.to(trainer.accelerator.device) if torch.is_tensor(v) else v for k, v in batch.items()}
            trainer._metrics["train"].clear()
            for t in tensors.values():
                t.grad = None
            loss = trainer.compute_loss(trainer.model, batch)
            loss.backward()
            metrics = {name: values[0] for name, values in trainer._metrics["train"].items()
                       if name.startswith(("rewards/", "logps/"))}
            grads = {name: t.grad.detach().clone() for name, t in tensors.items()}
            record = {
                "reference_logps": reference,
                "loss": loss.item(),
                "metrics": metrics,
                "grad_norms": {name: g.norm().item() for name, g in grads.items()},
                "grads": {name: float32_list(grads[name])
                          for name in (full_grads[loss_type] if full_grads else grads.keys())},
            }
            for t in tensors.values():
                t.grad = None
            trainer._metrics["train"].clear()
            trainer.step_losses = []
            trainer.train()
            losses = list(trainer.step_losses)
            assert len(losses) == STEPS, losses
            with torch.no_grad():
                losses.append(trainer.compute_loss(trainer.model, batch).item())
            record["adamw"] = {"lr": lr, "weight_decay": 0.01, "betas": [0.9, 0.999], "eps": 1e-8, "losses": losses}
            record["label_smoothing"] = label_smoothing
            records[loss_type] = record
    return pair_ids, records


def tiny(name):
    directory = os.path.join(ROOT, "tests", "goldens", "inference", name)
    make_model = lambda: transformers.AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32)  # noqa: E731
    vocab = make_model().config.vocab_size
    gen = torch.Generator().manual_seed(21)
    words = lambda n: " ".join(f"t{int(t)}" for t in torch.randint(3, vocab, (n,), generator=gen))  # noqa: E731
    dataset = []
    for p in range(4):
        dataset.append({"prompt": words(3 + p % 3), "chosen": " " + words(4 + p % 2) + " t2",
                        "rejected": " " + words(3 + (p + 1) % 3) + " t2"})
    rank, alpha = 8, 16.0
    pairs, records = run(make_model, word_tokenizer(vocab), dataset, rank, alpha, lr=1e-2, full_grads=None)
    write(name.replace("-", "_") + ".json", {"rank": rank, "alpha": alpha, "beta": 0.1, "pairs": pairs,
                                             "losses": records})


def smollm2(gguf_path):
    directory, name = os.path.split(gguf_path)
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory, gguf_file=name)

    def make_model():
        model = transformers.AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, dtype=torch.float32)
        # The GGUF's tensors arrive dequantized to fp32, but the model stays flagged as GGUF-quantized,
        # which the Trainer refuses to train; the flag describes nothing about these weights.
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        return model
    system = {"role": "system", "content": "You are Kindred, a warm and caring friend."}
    conversations = [
        ("I failed my driving test again today.",
         "Oh no, I'm sorry. That's really frustrating after all your practice. How are you feeling?",
         "You should practice more."),
        ("My best friend moved to another country.",
         "That's a big loss, even if you still talk. What will you miss most?",
         "People move. Make new friends."),
        ("I finally finished my first marathon!",
         "That's amazing, congratulations! How did it feel crossing the finish line?",
         "Okay."),
    ]
    dataset = [{"prompt": [system, {"role": "user", "content": u}], "chosen": [{"role": "assistant", "content": c}],
                "rejected": [{"role": "assistant", "content": r}]} for u, c, r in conversations]
    rank, alpha = 4, 8.0
    # Every norm; in full, five tensors for the sigmoid loss and one for each other loss (size).
    five = [key(0, "q", "B"), key(0, "k", "A"), key(29, "k", "B"), key(15, "down", "A"), key(7, "o", "B")]
    full = {loss_type: five if loss_type == "sigmoid" else five[:1] for loss_type, _ in LOSSES}
    pairs, records = run(make_model, tokenizer, dataset, rank, alpha, lr=1e-3, full_grads=full)
    write("smollm2.json", {"source": name, "rank": rank, "alpha": alpha, "beta": 0.1, "pairs": pairs,
                           "losses": records})


def write(relative, data):
    data["versions"] = VERSIONS
    write_json(relative, data, OUT)


def main():
    check_versions()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    only_tiny = "--tiny-only" in sys.argv
    sys.argv = [a for a in sys.argv if a != "--tiny-only"]
    gguf = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_GGUF
    tiny("tiny-llama")
    tiny("tiny-qwen3")
    if not only_tiny:
        smollm2(gguf)


if __name__ == "__main__":
    main()
