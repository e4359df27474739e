"""The PyTorch side of bench/training: transformers + PEFT LoRA training throughput on CPU torch.

bench_training_torch.py MODEL.gguf [--threads N] [--rows R] [--seq T] [--steps S] [--rank K]
                        [--compute fp32|bf16]

Same step as kindred_bench_training: R rows of T random token ids (each position trained on the
next id), forward + backward as one [R x T] batch, clip_grad_norm_(1.0), AdamW. LoRA r=K,
alpha=2K, dropout 0, on q,k,v,o,gate,up,down. transformers dequantizes the GGUF, so torch runs
fp32 weights where Kindred keeps the file's Q4_1. --compute bf16 runs forward and backward under
torch.autocast("cpu", dtype=torch.bfloat16) (products in bf16 through oneDNN, on AMX where the
CPU has it; weights, LoRA parameters and optimizer stay fp32), the counterpart of Kindred's
bf16 compute; the loss is taken in fp32. One untimed warm-up step, then S timed steps.
Prints one JSON line like the C++ side's (including the process's CPU seconds per step).
"""

import argparse
import json
import os
import resource
import statistics
import time


def arguments() -> argparse.ArgumentParser:
    """The options every side-by-side training benchmark's Python side takes (bench/dpo's too)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--rank", type=int, default=16)
    return parser


def timed_steps(step, tokens_per_step, steps):
    """One untimed warm-up call of step(), then `steps` timed ones: (warm-up seconds, tokens/s of
    each, CPU seconds per step of every thread like the C++ side's, the last loss)."""
    start = time.perf_counter()
    loss = step()
    warmup = time.perf_counter() - start
    rates = []
    cpu_start = time.process_time()
    for _ in range(steps):
        start = time.perf_counter()
        loss = step()
        rates.append(tokens_per_step / (time.perf_counter() - start))
    return warmup, rates, (time.process_time() - cpu_start) / steps, loss


def main() -> None:
    parser = arguments()
    parser.add_argument("--rows", type=int, default=4)
    parser.add_argument("--seq", type=int, default=512)
    parser.add_argument("--compute", choices=["fp32", "bf16"], default="fp32")
    args = parser.parse_args()

    import torch
    import torch.nn.functional as F
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    model = AutoModelForCausalLM.from_pretrained(
        os.path.dirname(os.path.abspath(args.model)),
        gguf_file=os.path.basename(args.model),
        torch_dtype=torch.float32,
    )
    lora = LoraConfig(
        r=args.rank,
        lora_alpha=2 * args.rank,
        lora_dropout=0.0,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, lora)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)

    generator = torch.Generator().manual_seed(42)
    ids = torch.randint(0, model.config.vocab_size, (args.rows, args.seq + 1), generator=generator)
    inputs, targets = ids[:, :-1].contiguous(), ids[:, 1:].contiguous()

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.compute == "bf16"):
            logits = model(input_ids=inputs).logits
        loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        return loss.item()

    warmup, rates, cpu_per_step, loss = timed_steps(step, args.rows * args.seq, args.steps)

    print(json.dumps({
        "impl": "torch",
        "threads": args.threads,
        "rows": args.rows,
        "seq": args.seq,
        "steps": args.steps,
        "attn_implementation": model.config._attn_implementation,
        "compute": args.compute,
        "torch": torch.__version__,
        "warmup_seconds": warmup,
        "tokens_per_second": statistics.mean(rates),
        "stddev": statistics.stdev(rates) if len(rates) > 1 else 0.0,
        "rates": rates,
        "cpu_seconds_per_step": cpu_per_step,
        "loss": loss,
        "trainable_params": sum(p.numel() for p in params),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }), flush=True)


if __name__ == "__main__":
    main()
