#!/usr/bin/env python3
"""Goldens for Kindred's tokenizer.json path with SentencePiece-style BPE (model.byte_fallback true).

Builds a small tokenizer the way SentencePiece checkpoints ship one (Gemma, Llama 2, Mistral): BPE merges
trained with the `tokenizers` package on every 4th line of tests/goldens/tokenizer/corpus.jsonl over
"▁"-spaced text, an alphabet limited to 90 characters (so CJK, emoji and control characters fall back to
<0xXX> byte pieces), all 256 byte pieces in the vocabulary, special added tokens (Gemma's turn markers)
and non-special ones ("\\n", "<b>", as Gemma's user-defined pieces).

Writes, under tests/goldens/tokenizer/byte_fallback/:
  tiny-gemma3/        a complete Hugging Face checkpoint directory for the CLI tests: a random
                      Gemma3ForCausalLM (2 layers, hidden 32) whose vocabulary is this tokenizer's,
                      config.json, model.safetensors, tokenizer.json (the Gemma variant below),
                      tokenizer_config.json (bos/eos, add_bos_token) and chat_template.jinja (a
                      Gemma 3 style template written for this fixture)
  tiny-gemma3.json    greedy tokens transformers generates from that directory for two chats (the
                      template rendered by apply_chat_template, then 8 new tokens at temperature 0),
                      with the smallest top-1/top-2 logit gap along each path
  fuzz_seed.json      the smallest valid byte_fallback tokenizer.json (the byte pieces, a few
                      characters and merges, one control token, every supported normalizer, Metaspace
                      and decoder step spelled once across its variants' fields), a seed for
                      fuzz/fuzz_tokenizer_json.cpp, checked to load in `tokenizers`
  goldens.json        per variant: the fields that replace tokenizer.json's (normalizer, pre_tokenizer,
                      decoder, model.ignore_merges) and, per text, ids = encode(text,
                      add_special_tokens=False), ids_specials_as_text with split_special_tokens when
                      they differ, and decoded = decode(ids) (special tokens kept) when it is not the text
Variants: gemma (Replace normalizer, Split ' ' pre-tokenizer that finds nothing left to split, no
Strip), llama2 (Prepend + Replace normalizer, Strip decoder), metaspace_first (Metaspace pre-tokenizer,
prepend_scheme first, no split), metaspace_split (prepend_scheme always, split, ignore_merges).

The real Gemma 3 tokenizer.json: tools/goldens/gemma3_tokenizer_json.py.
Usage: .venv/bin/python tools/goldens/byte_fallback_tokenizer.py
"""
import copy
import json
import os

import torch
import transformers
from tokenizers import AddedToken, Tokenizer, models, normalizers, pre_tokenizers, trainers

from gemma3_tokenizer import ids_both_ways
from inference import greedy_chats

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(ROOT, "tests", "goldens", "tokenizer", "corpus.jsonl")
OUT = os.path.join(ROOT, "tests", "goldens", "tokenizer", "byte_fallback")
SPACE = "\u2581"
SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]
USER_DEFINED = ["\n", "<b>"]
CORPUS_STRIDE = 4  # training lines; the goldens use every line of a different stride
GOLDEN_STRIDE = 5

CASES = [
    "Hello world",
    " leading space",
    "  two leading spaces",
    "trailing space ",
    "two  spaces, three   spaces, many" + " " * 40 + "end",
    "line one\nline two\n\nparagraph\n",
    "\ttabbed\t\tand tabs",
    "Numbers: 0 7 42 1234567890 3.14159",
    "Emoji: \U0001F600 \U0001F60A\U0001F389 \U0001F469\u200d\U0001F469\u200d\U0001F467 \u2764\ufe0f",
    "\u4e2d\u6587\u5206\u8bcd\u6d4b\u8bd5\uff0c\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8",
    "e\u0301 caf\u00e9 na\u00efve \u00c5ngstr\u00f6m",
    "control bytes \x00 \x01 \x07 \x1b[31m \x7f end",
    "rare \U0001d518\U0001d52b \U0010fffd \ufffd",
    "<start_of_turn>user\nHi there<end_of_turn>\n<start_of_turn>model\n",
    "<bos>text after bos",
    "text spelling <end_of_turn> inside, and <b>bold</b>",
    "<0x41> is not a byte token in text",
    "",
    " ",
    "  ",
    "\n",
    "    def f(x):\n        return x * 2\n",
]

GEMMA_DECODER = {"type": "Sequence", "decoders": [
    {"type": "Replace", "pattern": {"String": SPACE}, "content": " "},
    {"type": "ByteFallback"}, {"type": "Fuse"}]}
STRIP_DECODER = copy.deepcopy(GEMMA_DECODER)
STRIP_DECODER["decoders"].append({"type": "Strip", "content": " ", "start": 1, "stop": 0})
REPLACE = {"type": "Replace", "pattern": {"String": " "}, "content": SPACE}
VARIANTS = {
    "gemma": {"normalizer": REPLACE,
              "pre_tokenizer": {"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithPrevious",
                                "invert": False},
              "decoder": GEMMA_DECODER},
    "llama2": {"normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": SPACE}, REPLACE]},
               "pre_tokenizer": None, "decoder": STRIP_DECODER},
    "metaspace_first": {"normalizer": None,
                        "pre_tokenizer": {"type": "Metaspace", "replacement": SPACE, "prepend_scheme": "first",
                                          "split": False},
                        "decoder": STRIP_DECODER},
    "metaspace_split": {"normalizer": None,
                        "pre_tokenizer": {"type": "Metaspace", "replacement": SPACE, "prepend_scheme": "always",
                                          "split": True},
                        "decoder": STRIP_DECODER, "ignore_merges": True},
}

TEMPLATE = (
    "{{ bos_token }}{%- if messages[0]['role'] == 'system' -%}{%- set first_user_prefix = messages[0]['content'] | trim"
    " + '\\n\\n' -%}{%- set loop_messages = messages[1:] -%}{%- else -%}{%- set first_user_prefix = '' -%}"
    "{%- set loop_messages = messages -%}{%- endif -%}{%- for message in loop_messages -%}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{%- endif -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else '') }}"
    "{{ message['content'] | trim }}{{ '<end_of_turn>\\n' }}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\\n' }}{%- endif -%}")


def train():
    with open(CORPUS, encoding="utf-8") as f:
        lines = [json.loads(line)["text"] for line in f]
    trainee = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    trainee.normalizer = normalizers.Replace(" ", SPACE)
    trainee.pre_tokenizer = pre_tokenizers.Split("\n", "isolated")  # lines train separately
    trainee.train_from_iterator(lines[::CORPUS_STRIDE], trainers.BpeTrainer(
        vocab_size=640, limit_alphabet=90, special_tokens=[], show_progress=False))
    trained = json.loads(trainee.to_str())["model"]
    # The vocabulary as SentencePiece lays it out: control tokens, byte pieces, then the pieces.
    vocab = {}
    for token in SPECIALS + USER_DEFINED + [f"<0x{b:02X}>" for b in range(256)]:
        vocab[token] = len(vocab)
    for token, _ in sorted(trained["vocab"].items(), key=lambda item: item[1]):
        if token not in vocab:
            vocab[token] = len(vocab)
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in trained["merges"]]
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tokenizer.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in SPECIALS])
    tokenizer.add_tokens([AddedToken(t, normalized=False, special=False) for t in USER_DEFINED])
    return json.loads(tokenizer.to_str()), lines


def variant(base, fields):
    data = copy.deepcopy(base)
    for key in ("normalizer", "pre_tokenizer", "decoder"):
        data[key] = fields[key]
    data["model"]["ignore_merges"] = fields.get("ignore_merges", False)
    return Tokenizer.from_str(json.dumps(data))


def goldens(tokenizer, texts):
    cases = []
    for text in texts:
        ids, as_text = ids_both_ways(tokenizer, text)
        case = {"text": text, "ids": ids}
        decoded = tokenizer.decode(ids, skip_special_tokens=False)
        if decoded != text:
            case["decoded"] = decoded
        if as_text != ids:
            case["ids_specials_as_text"] = as_text
        cases.append(case)
    return cases


def write_model(directory, tokenizer_json, vocab_size):
    torch.manual_seed(11)
    config = transformers.Gemma3TextConfig(
        vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, head_dim=16, max_position_embeddings=128, rms_norm_eps=1e-6, sliding_window=8,
        layer_types=["sliding_attention", "full_attention"], initializer_range=0.02, pad_token_id=0, eos_token_id=1,
        bos_token_id=2, tie_word_embeddings=True, hidden_activation="gelu_pytorch_tanh")
    model = transformers.AutoModelForCausalLM.from_config(config).to(torch.float32)
    model.save_pretrained(directory, safe_serialization=True)
    extra = os.path.join(directory, "generation_config.json")
    if os.path.exists(extra):
        os.remove(extra)
    with open(os.path.join(directory, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tokenizer_json, f, ensure_ascii=False, indent=1)
        f.write("\n")
    with open(os.path.join(directory, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump({"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "unk_token": "<unk>",
                   "add_bos_token": True, "tokenizer_class": "GemmaTokenizer"}, f, indent=1)
        f.write("\n")
    with open(os.path.join(directory, "chat_template.jinja"), "w", encoding="utf-8") as f:
        f.write(TEMPLATE)


def write_fuzz_seed():
    vocab = {"<unk>": 0, "<s>": 1}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for piece in [SPACE, "a", "b", "ab", SPACE + "a", SPACE + "ab"]:
        vocab[piece] = len(vocab)
    seed = {"version": "1.0", "added_tokens": [{"id": 1, "content": "<s>", "single_word": False, "lstrip": False,
                                                 "rstrip": False, "normalized": False, "special": True}],
            "normalizer": VARIANTS["llama2"]["normalizer"], "pre_tokenizer": None, "decoder": STRIP_DECODER,
            "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "fuse_unk": True, "byte_fallback": True,
                      "ignore_merges": False, "vocab": vocab, "merges": [["a", "b"], [SPACE, "a"], [SPACE, "ab"]]}}
    text = json.dumps(seed, ensure_ascii=False, separators=(",", ":"))
    Tokenizer.from_str(text)
    with open(os.path.join(OUT, "fuzz_seed.json"), "w", encoding="utf-8") as f:
        f.write(text)


CHATS = ["Hello, how are you?", "I feel a bit \u00e9puis\u00e9 today \U0001F614 and my friend \u4e2d said hi."]
GREEDY_TOKENS = 8


def greedy(directory):
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory)
    model = transformers.AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()
    chats = greedy_chats(model, tokenizer, CHATS, GREEDY_TOKENS, tokenizer.pad_token_id)
    return {"transformers_version": transformers.__version__, "new_tokens": GREEDY_TOKENS, "chats": chats}


def main():
    write_fuzz_seed()
    base, lines = train()
    texts = CASES + lines[1::GOLDEN_STRIDE * 8][:130]
    record = {"tokenizers_version": __import__("tokenizers").__version__, "vocab_size": len(base["model"]["vocab"]),
              "merges": len(base["model"]["merges"]), "variants": {}}
    for name, fields in VARIANTS.items():
        tokenizer = variant(base, fields)
        record["variants"][name] = {"fields": fields, "cases": goldens(tokenizer, texts)}
    gemma = json.loads(variant(base, VARIANTS["gemma"]).to_str())
    directory = os.path.join(OUT, "tiny-gemma3")
    os.makedirs(directory, exist_ok=True)
    write_model(directory, gemma, record["vocab_size"])
    # The checkpoint's tokenizer, loaded back by transformers, must be the one the goldens describe.
    loaded = transformers.AutoTokenizer.from_pretrained(directory)
    for case in record["variants"]["gemma"]["cases"]:
        assert loaded.backend_tokenizer.encode(case["text"], add_special_tokens=False).ids == case["ids"], case["text"]
    with open(os.path.join(OUT, "tiny-gemma3.json"), "w", encoding="utf-8") as f:
        json.dump(greedy(directory), f, ensure_ascii=False, indent=1)
        f.write("\n")
    with open(os.path.join(OUT, "goldens.json"), "w", encoding="utf-8") as f:
        json.dump(record, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print(f"vocab {record['vocab_size']}, merges {record['merges']}, {len(texts)} texts x {len(VARIANTS)} variants")


if __name__ == "__main__":
    main()
