#!/usr/bin/env python3
"""Tokenizer goldens: a deterministic, varied corpus and SmolLM2's ids for it.

Builds ~1.3 MB of text from our own word lists and templates (seeded random; no copied
text): English prose in several registers, dialogue, code, numbers, whitespace runs,
tabs/CRLF, accents (precomposed and combining), CJK, emoji with ZWJ sequences, RTL
scripts, unusual-but-valid UTF-8, control bytes SmolLM2's vocabulary lacks, and
special-token strings inside text. The reference ids come from the Python `tokenizers`
object that transformers builds from the default GGUF (AutoTokenizer with gguf_file), with
one repair: transformers' GGUF converter gives every "gpt2" model a bare ByteLevel
pre-tokenizer and so drops the Digits(individual_digits) step of SmolLM2's own
tokenizer.json (and of llama.cpp's tokenizer.ggml.pre = "smollm"); we put it back, so the
goldens are the tokenizer the model was trained with. The script reports how many lines the
unrepaired converter would tokenize differently (only whitespace runs before digits).

Writes tests/goldens/tokenizer/:
  corpus.jsonl  one JSON object per line: {"kind": ..., "text": ..., "special": bool}
  ids.bin       per corpus line, little-endian int32: count, then the ids of
                encode(text, add_special_tokens=False); for lines with "special": true a
                second record follows with special tokens treated as text
                (encode_special_tokens=True, i.e. Kindred's parse_special=false)

Usage: .venv/bin/python tools/goldens/tokenizer.py [--model PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import struct
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "goldens" / "tokenizer"
DEFAULT_MODEL = Path(os.environ.get("KINDRED_HOME", Path.home() / ".cache" / "kindred")) / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
SEED = 20261125
TARGET_BYTES = 1_300_000

# ---- word lists (ours) ----
SUBJECTS = ["the old lighthouse keeper", "my neighbour", "a tired nurse", "the committee", "our team", "she", "he",
            "they", "the small robot", "every student", "the river", "a stranger on the train", "the city council",
            "your grandmother", "the night shift", "this recipe", "the quiet kid in the back row", "nobody", "I", "we"]
VERBS = ["noticed", "remembered", "built", "questioned", "painted", "carried", "forgot", "repaired", "celebrated",
         "described", "ignored", "measured", "borrowed", "explained", "watched", "followed", "abandoned", "shared"]
OBJECTS = ["a broken umbrella", "the letter", "an unexpected answer", "three paper cranes", "the long way home",
           "the budget report", "a song nobody knew", "the missing key", "their first apartment", "a cup of tea",
           "the results", "an old photograph", "the garden fence", "a second chance", "the map", "her courage"]
ADJECTIVES = ["quiet", "bright", "stubborn", "gentle", "enormous", "fragile", "careful", "restless", "ordinary",
              "remarkable", "anxious", "hopeful", "weathered", "curious", "tangled", "honest", "brave"]
ADVERBS = ["slowly", "carefully", "without a word", "at dawn", "again and again", "almost by accident",
           "with great patience", "before anyone noticed", "reluctantly", "all afternoon", "in the rain"]
CONNECTORS = ["because", "although", "while", "until", "so that", "even though", "after", "before", "since"]
FEELINGS = ["lonely", "overwhelmed", "anxious", "grateful", "exhausted", "hurt", "proud", "confused", "hopeful",
            "frustrated", "heartbroken", "relieved", "nervous", "ashamed", "calm", "stuck"]
EVENTS = ["my dog passed away", "I lost my job", "we moved to a new city", "my exam went badly",
          "my best friend stopped talking to me", "I finally finished the marathon", "my mom is in the hospital",
          "I got the promotion", "the wedding got cancelled", "I can't sleep anymore", "my startup failed"]
REPLIES = ["That sounds really hard.", "I'm so sorry you're going through this.", "It makes sense that you'd feel {f}.",
           "What's been the hardest part?", "You don't have to figure it all out tonight.",
           "I'm here, and I'm listening.", "That's wonderful news, congratulations!", "Would it help to talk it through?",
           "It's okay to feel {f} about it.", "You've handled a lot already."]
NAMES = ["Ana", "Ben", "Chloé", "Dmitri", "Eun-ji", "Farah", "Gus", "Hiro", "Ines", "José", "Kai", "Léa", "Mateo",
         "Noor", "Olek", "Priya", "Quinn", "Rafael", "Søren", "Tomás", "Uma", "Zoë"]
CONTRACTIONS = ["don't", "won't", "can't", "I'm", "you're", "we've", "they'd", "she'll", "it's", "IT'S", "HE'LL",
                "We'Re", "o'clock", "rock'n'roll", "'tis", "y'all", "shouldn't've", "ma'am", "it''s"]
IDENTIFIERS = ["count", "total_sum", "userName", "parse_header", "MAX_RETRIES", "buffer", "i", "j", "idx", "node",
               "left", "right", "tmp", "config", "HttpClient", "__init__", "value_", "kEpsilon", "std", "self"]

CJK_ZH = "我们今天的天气很好但是心情不太好因为工作压力大朋友说没关系慢慢来学习中文需要时间和耐心谢谢你的帮助"
CJK_JA_HIRA = "あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわをん"
CJK_JA_KATA = "アイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワヲンー"
CJK_KO = "안녕하세요오늘기분이어때요저는괜찮아요감사합니다천천히해도돼요"
ARABIC = ["مرحبا", "كيف", "حالك", "اليوم", "أنا", "بخير", "شكرا", "جزيلا", "صديقي", "القلب", "السلام", "عليكم"]
HEBREW = ["שלום", "מה", "שלומך", "היום", "תודה", "רבה", "חבר", "לב", "בוקר", "טוב"]
GREEK = ["καλημέρα", "ευχαριστώ", "φίλε", "ΑΘΗΝΑ", "ψυχή", "ἀγάπη"]
CYRILLIC = ["привет", "спасибо", "мне грустно", "Москва", "ЁЖИК", "Україна", "ґанок", "Беларусь"]
ACCENTED = ["café", "naïve", "résumé", "façade", "jalapeño", "Zürich", "smörgåsbord", "Łódź", "İstanbul", "ılık",
            "Ðakovo", "Þórr", "ÆØÅ", "straße", "Việt Nam", "Nguyễn", "crème brûlée", "São Paulo", "Kraków", "fiancée"]
COMBINING = ["e\u0301", "a\u0308", "n\u0303", "o\u0302\u0323", "A\u030a", "i\u0307\u0301", "u\u0308\u0304",
             "\u0301leading mark", "x\u0336y\u0336", "Z\u0351\u0352\u0353\u0354", "\u1100\u1161\u11a8"]
EMOJI = ["😀", "😢", "😭", "❤️", "👍", "👍🏽", "🎉", "🙏🏿", "🔥", "✨", "🤔", "🇺🇸", "🇯🇵", "🇧🇷", "1️⃣", "#️⃣",
         "👨‍👩‍👧‍👦", "🧑🏽‍💻", "👩‍❤️‍👨", "🏳️‍🌈", "🐻‍❄️", "❤️‍🔥", "😶‍🌫️", "🫶", "🪐", "©️", "™", "☕"]
ODD_VALID = ["\ufffd", "\ufeff", "\u200b", "\u200c", "\u200d", "\u2060", "\ue000", "\U0010ffff", "\U000e0001",
             "\u00ad", "\u0080", "\u009f", "\ufffe", "\uffff", "\U0001d54f", "\u2028", "\u2029", "\u0085",
             "\u00a0", "\u3000", "\u202f", "\u2007", "\u200e", "\u200f", "\u202e", "\u0338", "\u180e"]
UNICODE_DIGITS = ["٣", "۴", "१२३", "１２３", "²", "³", "½", "¾", "Ⅻ", "ⅷ", "①", "𝟘𝟙", "๒๕", "፫"]
SPECIALS = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<repo_name>", "<file_sep>", "<jupyter_code>",
            "<empty_output>", "<|im_start", "im_end|>", "<|im_end|>>", "<<|im_start|>", "< |im_end| >"]
MISSING_BYTES = ["\x04", "\x06", "\x13", "\x14", "\x16", "\x1d"]  # bytes SmolLM2's vocabulary lacks


def sentence(r: random.Random) -> str:
    s = f"{r.choice(SUBJECTS)} {r.choice(VERBS)} {r.choice(OBJECTS)}"
    if r.random() < 0.5:
        s += f" {r.choice(ADVERBS)}"
    if r.random() < 0.4:
        s += f" {r.choice(CONNECTORS)} {r.choice(SUBJECTS)} felt {r.choice(ADJECTIVES)}"
    s = s[0].upper() + s[1:]
    return s + r.choice([".", ".", ".", "!", "?", "...", ";", " —", ":"])


def prose(r: random.Random) -> str:
    style = r.randrange(6)
    n = r.randint(3, 12)
    if style == 0:  # plain paragraph
        return " ".join(sentence(r) for _ in range(n))
    if style == 1:  # formal
        return " ".join(f"Furthermore, {sentence(r).lower()}" if i else f"In {r.randint(1850, 2030)}, {sentence(r).lower()}"
                        for i in range(n))
    if style == 2:  # casual, contractions, shouting
        parts = [f"{r.choice(CONTRACTIONS)} {sentence(r).lower()}" for _ in range(n)]
        if r.random() < 0.5:
            parts.append(sentence(r).upper())
        return " ".join(parts)
    if style == 3:  # markdown list
        head = "#" * r.randint(1, 3) + " " + r.choice(ADJECTIVES).title() + " notes"
        items = [f"{r.choice(['-', '*', '1.', '2)'])} {sentence(r)}" for _ in range(n)]
        return head + "\n\n" + "\n".join(items)
    if style == 4:  # quotes and parentheses
        return " ".join(f'"{sentence(r)}" ({r.choice(NAMES)}, {r.choice(ADVERBS)})' for _ in range(n))
    return " ".join(f"{r.choice(ADJECTIVES)}-{r.choice(ADJECTIVES)} {w}" for w in r.sample(OBJECTS, min(n, len(OBJECTS))))


def dialogue(r: random.Random) -> str:
    lines = []
    for _ in range(r.randint(2, 8)):
        f = r.choice(FEELINGS)
        user = r.choice([f"I feel {f} because {r.choice(EVENTS)}.", f"Honestly? {r.choice(EVENTS).capitalize()}...",
                         f"{r.choice(NAMES)} said I'm overreacting. Am I?", f"idk. i'm just {f} lol"])
        bot = " ".join(r.choice(REPLIES).format(f=f) for _ in range(r.randint(1, 3)))
        lines.append(f"{r.choice(['User', 'user', 'Q', r.choice(NAMES)])}: {user}")
        lines.append(f"{r.choice(['Assistant', 'assistant', 'A', 'Bot'])}: {bot}")
    return "\n".join(lines)


def code(r: random.Random) -> str:
    ind = r.choice(["    ", "  ", "\t"])
    name, a, b = r.sample(IDENTIFIERS, 3)
    kind = r.randrange(4)
    if kind == 0:
        return (f"def {name}({a}, {b}=None):\n{ind}\"\"\"Return the {r.choice(ADJECTIVES)} value.\"\"\"\n"
                f"{ind}if {b} is None:\n{ind}{ind}{b} = {r.randint(0, 999)}\n{ind}return {a} * {b} + {r.random():.4f}\n")
    if kind == 1:
        return (f"int {name}(const std::vector<int>& {a}) {{\n{ind}int {b} = 0;\n"
                f"{ind}for (size_t i = 0; i < {a}.size(); ++i) {{ {b} += {a}[i] << {r.randint(1, 8)}; }}\n"
                f"{ind}return {b} != 0 ? {b} : -1; // {sentence(r)}\n}}\n")
    if kind == 2:
        return (f"const {name} = async ({a}) => {{\r\n{ind}const res = await fetch(`/api/{a}?id=${{{b}}}&n={r.randint(1, 99)}`);\r\n"
                f"{ind}return res.ok ? res.json() : {{ error: '{r.choice(ADJECTIVES)}' }};\r\n}};\r\n")
    return (f"SELECT {a}, COUNT(*) AS n FROM {name} WHERE {b} >= {r.randint(0, 10000)} AND {a} <> '' "
            f"GROUP BY {a} HAVING n > {r.randint(1, 9)} ORDER BY n DESC; -- {r.choice(ADVERBS)}\n")


def numbers(r: random.Random) -> str:
    parts = []
    for _ in range(r.randint(5, 20)):
        k = r.randrange(9)
        parts.append([
            lambda: str(r.randint(0, 10 ** r.randint(1, 15))),
            lambda: f"{r.uniform(-1e4, 1e4):.{r.randint(1, 6)}f}",
            lambda: f"{r.randint(1900, 2100)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}",
            lambda: f"+1 ({r.randint(200, 999)}) {r.randint(100, 999)}-{r.randint(1000, 9999)}",
            lambda: f"${r.randint(0, 99999):,}.{r.randint(0, 99):02d}",
            lambda: f"{r.randint(0, 100)}%",
            lambda: f"v{r.randint(0, 9)}.{r.randint(0, 20)}.{r.randint(0, 99)}",
            lambda: r.choice(UNICODE_DIGITS),
            lambda: f"{r.randint(1, 9)}e-{r.randint(1, 30)}",
        ][k]())
    return " ".join(parts) + r.choice(["", ".", "\n"])


def whitespace(r: random.Random) -> str:
    pieces = []
    for _ in range(r.randint(4, 14)):
        ws = r.choice([" " * r.randint(2, 12), "\t" * r.randint(1, 4), "\r\n", "\n" * r.randint(1, 4), "\r",
                       " \t \n", "\u00a0", "\u3000", "\u2028", "\u0085", " \r\n\r\n ", "\x0b", "\x0c"])
        pieces.append(r.choice([r.choice(ADJECTIVES), r.choice(CONTRACTIONS), str(r.randint(0, 999)), "!?", "—"]) + ws)
    return "".join(pieces)


def multilingual(r: random.Random) -> str:
    k = r.randrange(7)
    if k == 0:
        return "".join(r.choice(CJK_ZH) for _ in range(r.randint(10, 80))) + r.choice(["。", "！", "？", "，"])
    if k == 1:
        return "".join(r.choice(CJK_JA_HIRA + CJK_JA_KATA) for _ in range(r.randint(10, 60))) + "。「テスト」"
    if k == 2:
        return " ".join("".join(r.choice(CJK_KO) for _ in range(r.randint(2, 6))) for _ in range(r.randint(3, 12))) + "."
    if k == 3:  # RTL mixed with LTR and numbers, with direction marks
        words = [r.choice(ARABIC + HEBREW) for _ in range(r.randint(4, 14))]
        words.insert(r.randrange(len(words)), f"\u200f{r.randint(0, 9999)}\u200e")
        words.insert(r.randrange(len(words)), r.choice(NAMES))
        return " ".join(words) + r.choice(["؟", "،", ".", "!"])
    if k == 4:
        return " ".join(r.choice(GREEK + CYRILLIC + ACCENTED) for _ in range(r.randint(5, 15)))
    if k == 5:
        return " ".join(r.choice(COMBINING) + r.choice(ACCENTED) for _ in range(r.randint(3, 10)))
    return f"{r.choice(CJK_ZH)}{r.choice(NAMES)}{r.choice(CJK_KO)}{r.randint(0, 99)}{r.choice(ARABIC)}{r.choice(ACCENTED)}"


def emoji(r: random.Random) -> str:
    out = []
    for _ in range(r.randint(3, 15)):
        out.append(r.choice([r.choice(EMOJI), r.choice(EMOJI) * r.randint(2, 4), f" {r.choice(EMOJI)} ",
                             f"{r.choice(FEELINGS)}{r.choice(EMOJI)}", sentence(r)]))
    return "".join(out)


def odd(r: random.Random) -> str:
    out = []
    for _ in range(r.randint(4, 16)):
        out.append(r.choice([r.choice(ODD_VALID), r.choice(ODD_VALID) + r.choice(ADJECTIVES),
                             r.choice(ADJECTIVES) + r.choice(ODD_VALID) + r.choice(ADJECTIVES),
                             chr(r.randint(0x20, 0x7e)) * r.randint(1, 5), r.choice(MISSING_BYTES) + "x" + r.choice(MISSING_BYTES),
                             "\x00", "\x7f", "\x1b[31m", chr(r.randint(0x80, 0x10ffff)) if r.random() < 0.3 else " "]))
    # Keep it encodable: drop lone surrogates that chr() may produce.
    return "".join(ch for ch in "".join(out) if not 0xD800 <= ord(ch) <= 0xDFFF)


def special(r: random.Random) -> str:
    out = []
    for _ in range(r.randint(2, 8)):
        out.append(r.choice([r.choice(SPECIALS), sentence(r), f"{r.choice(SPECIALS)}{r.choice(['user', 'assistant', 'system'])}\n",
                             f" {r.choice(SPECIALS)} ", r.choice(SPECIALS) + r.choice(SPECIALS)]))
    return "".join(out)


GENERATORS = [("prose", prose, 6), ("dialogue", dialogue, 4), ("code", code, 4), ("numbers", numbers, 3),
              ("whitespace", whitespace, 3), ("multilingual", multilingual, 6), ("emoji", emoji, 3),
              ("odd", odd, 3), ("special", special, 3)]


def build_corpus() -> list[dict]:
    r = random.Random(SEED)
    kinds = [g for g in GENERATORS for _ in range(g[2])]
    lines, total = [], 0
    while total < TARGET_BYTES:
        kind, make, _ = r.choice(kinds)
        text = make(r)
        lines.append({"kind": kind, "text": text, "special": any(s in text for s in SPECIALS)})
        total += len(text.encode("utf-8"))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="SmolLM2 GGUF file")
    args = parser.parse_args()

    from transformers import AutoTokenizer

    from tokenizers import pre_tokenizers

    backend = AutoTokenizer.from_pretrained(str(args.model.parent), gguf_file=args.model.name).backend_tokenizer
    converted = backend.pre_tokenizer
    smollm = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                      pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)])
    lines = build_corpus()
    backend.pre_tokenizer = converted
    unrepaired = [backend.encode(line["text"], add_special_tokens=False).ids for line in lines]
    backend.pre_tokenizer = smollm
    OUT.mkdir(parents=True, exist_ok=True)
    ids = bytearray()

    def record(values: list[int]) -> None:
        ids.extend(struct.pack(f"<i{len(values)}i", len(values), *values))

    differing = 0
    for line, before in zip(lines, unrepaired):
        backend.encode_special_tokens = False
        encoded = backend.encode(line["text"], add_special_tokens=False).ids
        differing += encoded != before
        record(encoded)
        if line["special"]:
            backend.encode_special_tokens = True
            record(backend.encode(line["text"], add_special_tokens=False).ids)
    backend.encode_special_tokens = False
    with open(OUT / "corpus.jsonl", "w", encoding="utf-8", newline="\n") as f:
        for line in lines:
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
    (OUT / "ids.bin").write_bytes(bytes(ids))
    size = sum(len(line["text"].encode("utf-8")) for line in lines)
    print(f"{len(lines)} lines, {size} bytes of text, {len(ids) // 4} int32 written to {OUT}; "
          f"{differing} lines tokenize differently without the Digits step")


if __name__ == "__main__":
    main()
