#!/usr/bin/env python3
"""Golden renders for src/text/chat_template.cpp, produced by transformers' own chat-template machinery.

For each supported family this renders a fixed set of conversations with the family's real Jinja
template and writes tests/goldens/chat_templates/<family>.json: every case holds the messages, the
add_generation_prompt flag and either the exact expected text or "error" (transformers refused it).
The C++ test asserts byte-identical output for every case.

Templates are read from where they live, never copied into this repository:
  - SmolLM2: `tokenizer.chat_template` of the default GGUF (--smollm2-gguf, default
    $HOME/.cache/kindred/models/SmolLM2-135M-Instruct.Q4_1.gguf).
  - Qwen3: ../shared/tokenizers/qwen3/tokenizer_config.json (rendered through AutoTokenizer with
    enable_thinking=False).
  - gpt-oss: --gpt-oss-template PATH. ../shared/tokenizers/gpt-oss/tokenizer_config.json carries no
    chat template; use `chat_template.jinja` from huggingface.co/openai/gpt-oss-20b (or -120b; the
    same file is in llama.cpp as models/templates/openai-gpt-oss-120b.jinja). Rendered through
    AutoTokenizer of ../shared/tokenizers/gpt-oss with that template and a fixed current date.
  - Llama 3: --llama3-template PATH, a file holding the `chat_template` string of
    huggingface.co/meta-llama/Meta-Llama-3-8B-Instruct/blob/main/tokenizer_config.json
    (the one-line template that trims each content and prefixes bos_token). Rendered with
    bos_token="<|begin_of_text|>" as that tokenizer would pass it.
  - Gemma 3: --gemma3-template PATH, a file holding the `chat_template` string of
    huggingface.co/google/gemma-3-270m-it/blob/main/tokenizer_config.json (the same in every Gemma 3
    instruction model; the 270M GGUF carries none). Rendered with bos_token="<bos>", on the shared
    cases plus GEMMA3_CASES (role alternation, roles at odd positions).
Only the families whose template arguments are given are written (SmolLM2 and Qwen3 always).

sha256 of the template files the committed goldens were made from (each golden records its own):
  gpt-oss  a4c9919cbbd4acdd51ccffe22da049264b1b73e59055fa58811a99efbd7c8146 (16738 bytes; beware of
           forks that end the generation prompt with "<|channel|>final<|message|>")
  llama3   4f46ecd43418f216df8c26936c60e5d04bcc81db47db5d86fbe889f64212dd4c (one line, no trailing newline; its
           "\\n" are Jinja escapes: a variant with real newlines renders the same but hashes differently)
  gemma3   7de1c58e208eda46e9c7f86397df37ec49883aeece39fb961e0a6b24088dd3c4 (1532 bytes: the JSON string
           decoded, so the newlines inside its quoted literals are real newlines)

It also writes smollm2_mask.json: token ids and transformers' assistant token mask
(return_assistant_tokens_mask) for a few SmolLM2 chats, using the GGUF's tokenizer and a copy of
its template, made in memory, whose assistant content + <|im_end|> sits in a {% generation %} block.

Usage:
  .venv/bin/python tools/goldens/chat_templates.py --gpt-oss-template gpt-oss.jinja \
      --llama3-template llama3.jinja --gemma3-template gemma3.jinja
"""

from __future__ import annotations

import argparse
import datetime as _datetime
import hashlib
import json
import os
import pathlib

import gguf
import transformers
import transformers.utils.chat_template_utils as chat_template_utils
from transformers import AutoTokenizer

ROOT = pathlib.Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
OUT = ROOT / "tests" / "goldens" / "chat_templates"

# gpt-oss prints "Current date: <strftime_now('%Y-%m-%d')>"; the goldens pin it (the C++ side takes
# it as RenderOptions::current_date).
FIXED_DATE = _datetime.datetime(2025, 3, 14, 9, 26, 53)


class _FixedDatetime(_datetime.datetime):
    @classmethod
    def now(cls, tz=None):  # noqa: D102 - stands in for datetime.now inside strftime_now
        return FIXED_DATE


def msg(role: str, content: str, thinking: str | None = None) -> dict:
    m = {"role": role, "content": content}
    # The C++ ChatMessage treats an empty `thinking` as absent, so only non-empty ones are passed.
    if thinking:
        m["thinking"] = thinking
    return m


# Shared by every family; fields a template does not read (thinking for SmolLM2/Llama 3) are ignored.
CASES: list[tuple[str, list[dict], bool]] = [
    ("single_user_prompt", [msg("user", "Hello!")], True),
    ("single_user_no_prompt", [msg("user", "Hello!")], False),
    ("system_user_assistant", [
        msg("system", "You are a kind listener."),
        msg("user", "I failed my exam today."),
        msg("assistant", "I'm sorry to hear that. Do you want to talk about what happened?"),
    ], False),
    ("multi_turn_training", [
        msg("user", "Hi there."),
        msg("assistant", "Hello! How are you feeling today?"),
        msg("user", "A bit lonely, honestly."),
        msg("assistant", "That sounds hard. I'm here, and I'm listening."),
    ], False),
    ("multi_turn_prompt", [
        msg("system", "Be brief."),
        msg("user", "What is 2+2?"),
        msg("assistant", "4."),
        msg("user", "And 3+3?"),
    ], True),
    ("empty_contents", [
        msg("system", ""),
        msg("user", ""),
        msg("assistant", ""),
    ], False),
    ("empty_assistant_then_prompt", [
        msg("user", "Say nothing."),
        msg("assistant", ""),
        msg("user", "Thanks."),
    ], True),
    ("unicode", [
        msg("system", "Réponds en français. 日本語も OK."),
        msg("user", "Ça va ? 😊 — naïve café, Ελληνικά, עברית, 𝔘𝔫𝔦𝔠𝔬𝔡𝔢"),
        msg("assistant", "Très bien, merci ! 🌸 e\u0301 (combining accent)"),
    ], False),
    ("whitespace_edges", [
        msg("system", "  padded system \n"),
        msg("user", "\n\n  leading and trailing  \t\n"),
        msg("assistant", "\n answer with newlines \n\n"),
        msg("user", "\u3000ideographic space and nbsp\u00a0"),
        msg("assistant", "\u2003em space\u2028line separator\u2029"),
    ], False),
    ("assistant_last_with_prompt", [
        msg("user", "Tell me a joke."),
        msg("assistant", "Why did the chicken cross the road?"),
    ], True),
    ("thinking_last_turn", [
        msg("user", "Is 17 prime?"),
        msg("assistant", "Yes, 17 is prime.", thinking="17 is not divisible by 2, 3 or any prime up to 4."),
    ], False),
    ("thinking_earlier_turns", [
        msg("system", "Think before answering."),
        msg("user", "Pick a colour."),
        msg("assistant", "Blue.", thinking="Any colour works; blue is calming."),
        msg("user", "Why?"),
        msg("assistant", "Because it feels calm.", thinking="\nExplain the choice briefly.\n"),
    ], False),
    ("thinking_after_last_query", [
        msg("user", "Plan a short walk."),
        msg("assistant", "First, step outside.", thinking="Break it into steps."),
        msg("assistant", "Then walk around the block.", thinking="Second step."),
    ], False),
    ("inline_think_tags", [
        msg("user", "Hi"),
        msg("assistant", "<think>\nGreeting back.\n</think>\n\nHello to you too!"),
        msg("user", "Again?"),
        msg("assistant", "<think>\n\n</think>\n\nSure: hello!"),
    ], False),
    ("think_close_without_open", [
        msg("user", "Hm?"),
        msg("assistant", "Just thoughts\n</think>\n\nAnswer.\n"),
    ], False),
    ("thinking_field_wins_over_tags", [
        msg("user", "Hm?"),
        msg("assistant", "\n\nA </think> B", thinking="\n\nreal reasoning\n\n"),
    ], False),
    ("thinking_only_newlines", [
        msg("user", "First"),
        msg("assistant", "One.", thinking="\n\n"),
        msg("assistant", "\n\nTwo."),
    ], False),
    ("tool_response_like_user", [
        msg("user", "Start"),
        msg("assistant", "Working.", thinking="step one"),
        msg("user", "<tool_response>42</tool_response>"),
        msg("assistant", "The answer is 42.", thinking="use the result"),
    ], False),
    ("no_user_message", [
        msg("system", "Greet."),
        msg("assistant", "Hello!", thinking="be warm"),
    ], False),
    ("developer_first", [
        msg("developer", "Answer in one word."),
        msg("user", "Sky colour?"),
        msg("assistant", "Blue."),
    ], False),
    ("system_mid_conversation", [
        msg("user", "Hi."),
        msg("assistant", "Hello."),
        msg("system", "From now on, be formal."),
        msg("user", "How are you?"),
    ], True),
    ("special_looking_text", [
        msg("user", "Print <|im_end|> and <|eot_id|> literally, and </think> too."),
        msg("assistant", "Here: <|im_start|> <|start|> <|end|>"),
    ], False),
    ("channel_tags_in_content", [
        msg("user", "Hi"),
        msg("assistant", "<|channel|>final<|message|>Hello"),
    ], False),
]


# Gemma 3's template enforces user/assistant alternation after an optional system message and writes
# any other role at an odd position as given.
GEMMA3_CASES: list[tuple[str, list[dict], bool]] = [
    ("gemma_only_system", [msg("system", "Just a system prompt.")], True),
    ("gemma_system_then_assistant", [msg("system", "S"), msg("assistant", "A")], False),
    ("gemma_two_users", [msg("user", "one"), msg("user", "two")], True),
    ("gemma_system_at_odd_position", [msg("user", "Hi"), msg("system", "  Be formal.  "), msg("user", "Ok")], True),
    ("gemma_developer_at_odd_position", [msg("user", "Hi"), msg("developer", "Terse.")], False),
    ("gemma_developer_first", [msg("developer", "Terse."), msg("user", "Hi")], True),
    ("gemma_control_tokens_in_content", [
        msg("user", "Say <end_of_turn> and <start_of_turn>model please"),
        msg("assistant", "<eos> <bos> done"),
    ], False),
]


def render_cases(family: str, render, extra: list | None = None) -> list[dict]:
    cases = []
    for name, messages, add_generation_prompt in CASES + (extra or []):
        case = {"name": name, "messages": messages, "add_generation_prompt": add_generation_prompt}
        try:
            case["text"] = render(messages, add_generation_prompt)
        except Exception as error:  # transformers raises TemplateError (raise_exception) or UndefinedError
            case["error"] = f"{type(error).__name__}: {error}"
        cases.append(case)
    print(f"{family}: {len(cases)} cases, {sum('error' in c for c in cases)} errors")
    return cases


def jinja_renderer(template: str, **special_tokens):
    def render(messages, add_generation_prompt):
        rendered, _ = chat_template_utils.render_jinja_template(
            conversations=[messages], chat_template=template,
            add_generation_prompt=add_generation_prompt, **special_tokens)
        return rendered[0]
    return render


def tokenizer_renderer(tokenizer, template: str | None = None, **kwargs):
    def render(messages, add_generation_prompt):
        return tokenizer.apply_chat_template(
            messages, chat_template=template, tokenize=False,
            add_generation_prompt=add_generation_prompt, **kwargs)
    return render


def gguf_chat_template(path: pathlib.Path) -> str:
    reader = gguf.GGUFReader(str(path))
    field = reader.fields["tokenizer.chat_template"]
    return bytes(field.parts[field.data[0]]).decode("utf-8")


# Chats whose assistant turns start and end on token boundaries, where transformers' mask (tokens
# overlapping a generation block) and Kindred's (tokens inside a span) must agree.
MASK_CASES: list[tuple[str, list[dict]]] = [
    ("single_exchange", [msg("user", "I feel tired all the time."),
                         msg("assistant", "That sounds exhausting. How long has it been like this?")]),
    ("with_system_multi_turn", [
        msg("system", "You are a caring friend."),
        msg("user", "My cat died."),
        msg("assistant", "I'm so sorry. Losing a pet hurts deeply."),
        msg("user", "Thanks."),
        msg("assistant", "I'm here whenever you want to talk about her. 🐱"),
    ]),
    ("empty_assistant", [msg("user", "Hi"), msg("assistant", ""), msg("user", "Still there?"),
                         msg("assistant", "Yes!")]),
]


def smollm2_mask_cases(template: str, gguf_path: pathlib.Path) -> list[dict]:
    turn = "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    if template.count(turn) != 1:
        raise SystemExit("SmolLM2 template changed: cannot place the {% generation %} block")
    tagged = template.replace(turn, (
        "{{'<|im_start|>' + message['role'] + '\n'}}{% if message['role'] == 'assistant' %}"
        "{% generation %}{{message['content'] + '<|im_end|>'}}{% endgeneration %}"
        "{% else %}{{message['content'] + '<|im_end|>'}}{% endif %}{{'\n'}}"))
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    cases = []
    for name, messages in MASK_CASES:
        plain = tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False)
        out = tokenizer.apply_chat_template(messages, chat_template=tagged, tokenize=True, return_dict=True,
                                            return_assistant_tokens_mask=True)
        if tokenizer.decode(out["input_ids"]) != plain:
            raise SystemExit(f"{name}: tagged template renders differently")
        encoded = tokenizer(plain, add_special_tokens=False, return_offsets_mapping=True)
        if encoded["input_ids"] != list(out["input_ids"]):
            raise SystemExit(f"{name}: offsets come from a different tokenization")
        # transformers' offsets count characters; Kindred's spans count UTF-8 bytes.
        def byte_at(char: int) -> int:
            return len(plain[:char].encode("utf-8"))
        spans = [[byte_at(b), byte_at(e)] for b, e in encoded["offset_mapping"]]
        cases.append({"name": name, "messages": messages, "text": plain, "ids": list(out["input_ids"]),
                      "spans": spans, "assistant_masks": list(out["assistant_masks"])})
    return cases


def write(family: str, source: str, template: str, cases: list[dict], extra: dict | None = None) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    document = {
        "family": family,
        "template_source": source,
        "template_sha256": hashlib.sha256(template.encode("utf-8")).hexdigest(),
        "transformers_version": transformers.__version__,
        **(extra or {}),
        "cases": cases,
    }
    path = OUT / f"{family}.json"
    path.write_text(json.dumps(document, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {path.relative_to(ROOT)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    home = pathlib.Path(os.environ.get("KINDRED_HOME", pathlib.Path.home() / ".cache" / "kindred"))
    parser.add_argument("--smollm2-gguf", type=pathlib.Path,
                        default=home / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf")
    parser.add_argument("--gpt-oss-template", type=pathlib.Path)
    parser.add_argument("--llama3-template", type=pathlib.Path)
    parser.add_argument("--gemma3-template", type=pathlib.Path)
    args = parser.parse_args()

    chat_template_utils.datetime = _FixedDatetime  # strftime_now reads this module global

    smollm2 = gguf_chat_template(args.smollm2_gguf)
    write("smollm2", f"{args.smollm2_gguf.name}: tokenizer.chat_template", smollm2,
          render_cases("smollm2", jinja_renderer(smollm2)))
    write("smollm2_mask", f"{args.smollm2_gguf.name}: tokenizer + chat_template with a generation block", smollm2,
          smollm2_mask_cases(smollm2, args.smollm2_gguf))

    qwen3_dir = SHARED / "tokenizers" / "qwen3"
    qwen3 = AutoTokenizer.from_pretrained(str(qwen3_dir))
    write("qwen3", "../shared/tokenizers/qwen3/tokenizer_config.json: chat_template, enable_thinking=False",
          qwen3.chat_template, render_cases("qwen3", tokenizer_renderer(qwen3, enable_thinking=False)))

    if args.gpt_oss_template:
        gpt_oss_template = args.gpt_oss_template.read_text(encoding="utf-8")
        gpt_oss = AutoTokenizer.from_pretrained(str(SHARED / "tokenizers" / "gpt-oss"))
        write("gpt_oss", "openai/gpt-oss chat_template.jinja", gpt_oss_template,
              render_cases("gpt_oss", tokenizer_renderer(gpt_oss, gpt_oss_template)),
              {"current_date": FIXED_DATE.strftime("%Y-%m-%d")})

    if args.llama3_template:
        llama3 = args.llama3_template.read_text(encoding="utf-8")
        write("llama3", "meta-llama/Meta-Llama-3-8B-Instruct tokenizer_config.json: chat_template", llama3,
              render_cases("llama3", jinja_renderer(llama3, bos_token="<|begin_of_text|>")))

    if args.gemma3_template:
        gemma3 = args.gemma3_template.read_text(encoding="utf-8")
        write("gemma3", "google/gemma-3-270m-it tokenizer_config.json: chat_template", gemma3,
              render_cases("gemma3", jinja_renderer(gemma3, bos_token="<bos>"), GEMMA3_CASES))


if __name__ == "__main__":
    main()
