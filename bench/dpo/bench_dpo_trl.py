"""The TRL side of bench/dpo: DPOTrainer + PEFT LoRA DPO step throughput on CPU torch.

bench_dpo_trl.py MODEL.gguf [--threads N] [--pairs P] [--prompt T] [--completion C] [--steps S] [--rank K]

Same step as kindred_bench_dpo: P pairs of random token ids (prompt T tokens, chosen and rejected
completions C tokens each), the sigmoid DPO loss of TRL's DPOTrainer (trl 1.16) with the reference
log-probs precomputed once before timing (precompute_ref_log_probs: the reference is the adapter
as it starts, held by TRL in its frozen "ref" adapter), forward + backward as TRL's one [2P x (T+C)]
batch, clip_grad_norm_(1.0), AdamW. LoRA r=K, alpha=2K, dropout 0, on q,k,v,o,gate,up,down; fp32;
no gradient checkpointing (Kindred's default; TRL's DPOConfig turns it on by default). The timed
step is the trainer's compute_loss + backward on a batch from its own collator, without the
Trainer loop's dataloader. transformers dequantizes the GGUF, so torch runs fp32 weights where
Kindred keeps the file's Q4_1. One untimed warm-up step, then S timed steps; prints one JSON line
like the C++ side's.
"""

import json
import os
import resource
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "training"))
from bench_training_torch import arguments, timed_steps  # noqa: E402


def main() -> None:
    parser = arguments()
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--prompt", type=int, default=192)
    parser.add_argument("--completion", type=int, default=64)
    args = parser.parse_args()

    import datasets
    import torch
    import transformers
    import trl
    from peft import LoraConfig, get_peft_model
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    datasets.disable_progress_bars()
    os.environ["TQDM_DISABLE"] = "1"
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    directory, name = os.path.split(os.path.abspath(args.model))
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory, gguf_file=name)
    model = transformers.AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, dtype=torch.float32)
    model.hf_quantizer = None  # the GGUF arrives dequantized; the Trainer refuses the leftover flag
    model.is_quantized = False
    lora = LoraConfig(r=args.rank, lora_alpha=2 * args.rank, lora_dropout=0.0,
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
                      task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)

    vocab = model.config.vocab_size
    generator = torch.Generator().manual_seed(42)
    ids = lambda n: torch.randint(0, vocab, (n,), generator=generator).tolist()  # noqa: E731
    examples = []
    for _ in range(args.pairs):
        prompt = ids(args.prompt)
        examples.append({"prompt_ids": prompt, "chosen_ids": ids(args.completion), "rejected_ids": ids(args.completion)})

    with tempfile.TemporaryDirectory() as output:
        config = trl.DPOConfig(output_dir=output, beta=0.1, loss_type=["sigmoid"], precompute_ref_log_probs=True,
                               per_device_train_batch_size=args.pairs, max_length=None, bf16=False, fp16=False,
                               gradient_checkpointing=False, use_cpu=True, report_to="none", save_strategy="no",
                               learning_rate=1e-4, max_grad_norm=1.0)
        # The trainer needs a dataset to start from; the timed batches are built from the random ids.
        text = datasets.Dataset.from_list([{"prompt": "Hi", "chosen": " a", "rejected": " b"}])
        trainer = trl.DPOTrainer(model=model, args=config, train_dataset=text, processing_class=tokenizer)
        trainer.model.train()
        batch = trainer.data_collator(examples)
        with torch.no_grad():
            ref_chosen, ref_rejected = trainer.compute_ref_log_probs(trainer.model, batch)
        batch["ref_chosen_logps"], batch["ref_rejected_logps"] = ref_chosen, ref_rejected
        params = [p for p in trainer.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=1e-4)

        def step():
            optimizer.zero_grad(set_to_none=True)
            loss = trainer.compute_loss(trainer.model, batch)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            return loss.item()

        tokens = 2 * args.pairs * (args.prompt + args.completion)
        warmup, rates, cpu_per_step, loss = timed_steps(step, tokens, args.steps)

    print(json.dumps({
        "impl": "trl", "threads": args.threads, "pairs": args.pairs, "prompt": args.prompt,
        "completion": args.completion, "steps": args.steps, "warmup_seconds": warmup,
        "tokens_per_second": statistics.mean(rates), "stddev": statistics.stdev(rates) if len(rates) > 1 else 0.0,
        "rates": rates, "cpu_seconds_per_step": cpu_per_step, "loss": loss,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "versions": {"trl": trl.__version__, "transformers": transformers.__version__, "torch": torch.__version__},
    }))


if __name__ == "__main__":
    main()
