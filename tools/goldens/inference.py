#!/usr/bin/env python3
"""Golden files for the decoder forward pass (tests/model/), produced by transformers on CPU in fp32.

Writes into tests/goldens/inference/:
  smollm2_logits.json    logits slices for fixed token sequences of the default GGUF model
                         (first 64 vocab entries and the top-20 ids/values at every position,
                         plus the full last-position logits of the longest sequence)
  smollm2_greedy.json    greedy continuations (up to 32 tokens, ending early at end-of-turn) of chat
                         prompts (prompt ids, generated ids)
  smollm2_perplexity.json  mean NLL and perplexity of a fixed paragraph (tokens included)
  tiny-*/                random 2-layer checkpoints (model.safetensors + config.json) and their logits
                         (tiny-gemma3: 3 layers, plus greedy tokens and logits under final soft-capping)

transformers loads the GGUF with `gguf_file=`: it dequantizes every tensor to fp32 and undoes the
q/k row permutation of arch `llama`, so it runs exactly the weights the C++ decoder reads.
Re-runnable: `.venv/bin/python tools/goldens/inference.py [path/to/model.gguf]`; `--tiny NAME` writes
only that tiny checkpoint and its goldens.
"""
import json
import math
import os
import sys

import torch
import transformers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "goldens", "inference")
DEFAULT_GGUF = os.path.expanduser("~/.cache/kindred/models/SmolLM2-135M-Instruct.Q4_1.gguf")

SEQUENCE_TEXTS = [
    "The capital of France is",
    "I feel a bit lonely today, and I don't know who to talk to.",
    # ~100 tokens: exercises longer attention spans in one prefill.
    "Empathy is the capacity to understand or feel what another person is experiencing from within "
    "their frame of reference, that is, the capacity to place oneself in another's position. "
    "Definitions of empathy encompass a broad range of social, cognitive, and emotional processes "
    "primarily concerned with understanding others. Often times, empathy is considered to be a broad "
    "term, and broken down into more specific concepts and types that include cognitive empathy, "
    "emotional empathy, somatic empathy, and spiritual empathy.",
]

CHAT_PROMPTS = [
    "What is the capital of France?",
    "I had a really rough day at work. My boss yelled at me in front of everyone.",
    "Write a haiku about autumn leaves.",
    "My dog passed away last week and I can't stop crying.",
    "Explain in one sentence what a neural network is.",
]

PERPLEXITY_TEXT = (
    "Friendship is a relationship of mutual affection between people. It is a stronger form of "
    "interpersonal bond than an association, and has been studied in academic fields such as "
    "communication, sociology, social psychology, anthropology, and philosophy. Various academic "
    "theories of friendship have been proposed, including social exchange theory, equity theory, "
    "relational dialectics, and attachment styles."
)

GREEDY_NEW_TOKENS = 32
TOP_K = 20
HEAD = 64


def rounded(values):
    # 7 significant digits keeps fp32 values exact enough for 1e-4 comparisons and the files small.
    return [float(f"{v:.7g}") for v in values]


def logits_record(ids, logits):
    positions = []
    for row in logits:
        top = torch.topk(row, TOP_K)
        positions.append({
            "head": rounded(row[:HEAD].tolist()),
            "top_ids": top.indices.tolist(),
            "top_values": rounded(top.values.tolist()),
        })
    return {"ids": ids, "positions": positions}


def chat_prompt_ids(tokenizer, prompt):
    """The ids of one user message rendered by the chat template with the generation prompt."""
    ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=True)
    if isinstance(ids, dict) or hasattr(ids, "keys"):
        ids = ids["input_ids"]
    return list(ids)


def greedy_chats(model, tokenizer, prompts, new_tokens, pad_token_id):
    """Per prompt (one user message, the template's generation prompt): prompt ids, greedy ids, text."""
    chats = []
    with torch.no_grad():
        for prompt in prompts:
            ids = chat_prompt_ids(tokenizer, prompt)
            # Stops early at end-of-turn; the C++ test generates as many tokens as stored.
            out = model.generate(torch.tensor([ids]), max_new_tokens=new_tokens, do_sample=False,
                                 pad_token_id=pad_token_id)
            generated = out[0, len(ids):].tolist()
            # The smallest top-1/top-2 logit gap along the path says how robust the greedy path is
            # to fp32 accumulation-order differences.
            full = model(out[:, :-1]).logits[0, len(ids) - 1:]
            top2 = torch.topk(full, 2).values
            chats.append({"prompt": prompt, "prompt_ids": ids, "generated_ids": generated,
                          "min_top2_gap": float(f"{(top2[:, 0] - top2[:, 1]).min().item():.6g}"),
                          "text": tokenizer.decode(generated)})
    return chats


def smollm2(gguf_path):
    directory, name = os.path.split(gguf_path)
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory, gguf_file=name)
    model = transformers.AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, dtype=torch.float32)
    model.eval()

    sequences = []
    with torch.no_grad():
        for text in SEQUENCE_TEXTS:
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            logits = model(torch.tensor([ids])).logits[0]
            sequences.append(logits_record(ids, logits))
        longest = max(range(len(sequences)), key=lambda i: len(sequences[i]["ids"]))
        logits = model(torch.tensor([sequences[longest]["ids"]])).logits[0, -1]
        sequences[longest]["last_logits"] = rounded(logits.tolist())
    write("smollm2_logits.json", {"source": name, "sequences": sequences})

    chats = greedy_chats(model, tokenizer, CHAT_PROMPTS, GREEDY_NEW_TOKENS, tokenizer.eos_token_id)
    write("smollm2_greedy.json", {"source": name, "new_tokens": GREEDY_NEW_TOKENS, "chats": chats})

    with torch.no_grad():
        ids = tokenizer(PERPLEXITY_TEXT, add_special_tokens=False)["input_ids"]
        input_ids = torch.tensor([ids])
        loss = model(input_ids, labels=input_ids).loss.item()
    write("smollm2_perplexity.json", {"source": name, "text": PERPLEXITY_TEXT, "ids": ids,
                                      "mean_nll": loss, "perplexity": math.exp(loss),
                                      "note": "mean NLL over tokens 1..n-1 given their prefixes (labels = inputs, shifted)"})


# Random tiny checkpoints for the safetensors path, one per per-family switch the decoder has:
# plain Llama; Llama 3 rope scaling with tied embeddings; Qwen3 (per-head q/k RMSNorm, attention
# biases, head_dim != hidden / heads); Gemma 3 (embedding scale, four (1 + w) norms per layer,
# GeGLU, q/k norm, a sliding layer with its own rope base and a window shorter than the sequence
# beside a full one, query_pre_attn_scalar != head_dim).
TINY_MODELS = {
    "tiny-llama": (transformers.LlamaConfig, dict(tie_word_embeddings=False)),
    "tiny-llama3": (transformers.LlamaConfig, dict(
        tie_word_embeddings=True,
        rope_parameters={"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 32})),
    "tiny-qwen3": (transformers.Qwen3Config, dict(tie_word_embeddings=False, head_dim=24, attention_bias=True)),
    "tiny-gemma3": (transformers.Gemma3TextConfig, dict(
        tie_word_embeddings=True, head_dim=24, query_pre_attn_scalar=20, num_hidden_layers=3, sliding_window=4,
        layer_types=["sliding_attention", "full_attention", "sliding_attention"], hidden_activation="gelu_pytorch_tanh",
        rope_parameters={"full_attention": {"rope_type": "default", "rope_theta": 10000.0},
                         "sliding_attention": {"rope_type": "default", "rope_theta": 100.0}})),
}
GEMMA_SOFTCAP = 3.0
GREEDY_TINY_TOKENS = 8


def tiny_model(name, config_class, overrides, seed):
    torch.manual_seed(seed)
    settings = dict(vocab_size=96, hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-5, rope_theta=10000.0,
                    initializer_range=0.2, bos_token_id=1, eos_token_id=2)
    settings.update(overrides)
    config = config_class(**settings)
    model = transformers.AutoModelForCausalLM.from_config(config).to(torch.float32)
    # Random norm weights and biases so that a missing or misplaced one shows in the logits.
    with torch.no_grad():
        for param_name, param in model.named_parameters():
            if param_name.endswith("norm.weight"):
                # Gemma multiplies by (1 + w): random around 0 there, around 1 elsewhere.
                offset = 0.0 if config.model_type == "gemma3_text" else 1.0
                param.copy_(offset + 0.3 * torch.randn_like(param))
            elif param_name.endswith(".bias"):
                param.copy_(0.2 * torch.randn_like(param))
    model.eval()
    directory = os.path.join(OUT, name)
    model.save_pretrained(directory, safe_serialization=True)
    for extra in ("generation_config.json",):
        path = os.path.join(directory, extra)
        if os.path.exists(path):
            os.remove(path)
    ids = [int(i) for i in torch.randint(0, config.vocab_size, (24,), generator=torch.Generator().manual_seed(7))]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0]
    record = {"ids": ids, "logits": [rounded(r.tolist()) for r in logits]}
    if config.model_type == "gemma3_text":
        # Greedy tokens from the first 16 ids (past the window), recomputing the whole prefix each step.
        generated, sequence = [], ids[:16]
        with torch.no_grad():
            for _ in range(GREEDY_TINY_TOKENS):
                next_id = int(model(torch.tensor([sequence])).logits[0, -1].argmax())
                generated.append(next_id)
                sequence = sequence + [next_id]
            record["greedy"] = {"prompt": ids[:16], "generated": generated}
            model.config.final_logit_softcapping = GEMMA_SOFTCAP
            capped = model(torch.tensor([ids])).logits[0]
        record["softcap"] = {"final_logit_softcapping": GEMMA_SOFTCAP, "logits": [rounded(r.tolist()) for r in capped]}
    write(os.path.join(name, "logits.json"), record)


def write(relative, data):
    path = os.path.join(OUT, relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


def main():
    torch.set_num_threads(1)
    if "--tiny" in sys.argv:
        only = sys.argv[sys.argv.index("--tiny") + 1]
        seed = list(TINY_MODELS).index(only)
        tiny_model(only, *TINY_MODELS[only], 1234 + seed)
        return
    gguf_path = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_GGUF
    for seed, (name, (config_class, overrides)) in enumerate(TINY_MODELS.items()):
        tiny_model(name, config_class, overrides, 1234 + seed)
    smollm2(gguf_path)


if __name__ == "__main__":
    main()
