#!/usr/bin/env python3
"""Writes tests/corpus/request-malformed/: one hostile or broken `kindred serve` request body per
file, and EXPECTED.json naming each file's endpoint, the field the 400 must name and a phrase of
its message (tests/serve/test_protocol.cpp checks them; fuzz/fuzz_request.cpp starts from them)."""
import json
import pathlib

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "corpus" / "request-malformed"
MSG = [{"role": "user", "content": "Hi"}]

# name: (endpoint, body text, param, phrase)
CASES = {
    "empty.json": ("chat", "", "", "invalid JSON"),
    "truncated.json": ("chat", '{"model": "m", "messages": [{"role": "user", "content": "Hi"', "", "invalid JSON"),
    "not_object.json": ("chat", '["model", "m"]', "", "must be a JSON object"),
    "invalid_utf8.json": ("chat", b'{"model": "m", "messages": [{"role": "user", "content": "\xff\xfe"}]}', "", "invalid JSON"),
    "duplicate_key.json": ("chat", '{"model": "m", "model": "n", "messages": []}', "", "appears twice"),
    "deep_nesting.json": ("chat", '{"model": "m", "messages": ' + "[" * 64 + "]" * 64 + "}", "", "nested deeper"),
    "missing_model.json": ("chat", json.dumps({"messages": MSG}), "model", "is missing"),
    "missing_messages.json": ("chat", json.dumps({"model": "m"}), "messages", "is missing"),
    "messages_not_array.json": ("chat", json.dumps({"model": "m", "messages": "Hi"}), "messages", "non-empty array"),
    "role_tool.json": ("chat", json.dumps({"model": "m", "messages": [{"role": "tool", "content": "x"}]}), "messages[0].role", "expected system"),
    "content_number.json": ("chat", json.dumps({"model": "m", "messages": [{"role": "user", "content": 3}]}), "messages[0].content", "must be a string"),
    "content_image.json": ("chat", json.dumps({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}), "messages[0].content[0].type", "only text parts"),
    "tool_calls.json": ("chat", json.dumps({"model": "m", "messages": [{"role": "assistant", "content": "", "tool_calls": []}]}), "messages[0].tool_calls", "not supported"),
    "too_many_messages.json": ("chat", json.dumps({"model": "m", "messages": MSG * 300}), "messages", "at most 256"),
    "temperature_string.json": ("chat", json.dumps({"model": "m", "messages": MSG, "temperature": "0.7"}), "temperature", "must be a number"),
    "temperature_negative.json": ("chat", json.dumps({"model": "m", "messages": MSG, "temperature": -1}), "temperature", "must be in [0, 2]"),
    "top_p_zero.json": ("chat", json.dumps({"model": "m", "messages": MSG, "top_p": 0}), "top_p", "must be > 0"),
    "max_tokens_zero.json": ("chat", json.dumps({"model": "m", "messages": MSG, "max_tokens": 0}), "max_tokens", "must be in [1,"),
    "max_tokens_huge.json": ("chat", json.dumps({"model": "m", "messages": MSG, "max_tokens": 18446744073709551615}), "max_tokens", "must be in [1,"),
    "max_tokens_float.json": ("chat", json.dumps({"model": "m", "messages": MSG, "max_tokens": 1e300}), "max_tokens", "must be an integer"),
    "stop_five.json": ("chat", json.dumps({"model": "m", "messages": MSG, "stop": ["a", "b", "c", "d", "e"]}), "stop", "at most 4"),
    "stop_empty.json": ("chat", json.dumps({"model": "m", "messages": MSG, "stop": ""}), "stop", "must not be empty"),
    "n_two.json": ("chat", json.dumps({"model": "m", "messages": MSG, "n": 2}), "n", "must be in [1, 1]"),
    "logit_bias_key.json": ("chat", json.dumps({"model": "m", "messages": MSG, "logit_bias": {"hello": 5}}), "logit_bias.hello", "not a token id"),
    "logit_bias_range.json": ("chat", json.dumps({"model": "m", "messages": MSG, "logit_bias": {"5": 1000}}), "logit_bias.5", "must be in [-100, 100]"),
    "seed_string.json": ("chat", json.dumps({"model": "m", "messages": MSG, "seed": "42"}), "seed", "must be an integer"),
    "stream_options_alone.json": ("chat", json.dumps({"model": "m", "messages": MSG, "stream_options": {"include_usage": True}}), "stream_options", "only allowed when"),
    "tools.json": ("chat", json.dumps({"model": "m", "messages": MSG, "tools": [{"type": "function", "function": {"name": "f"}}]}), "tools", "tool calling"),
    "unknown_field.json": ("chat", json.dumps({"model": "m", "messages": MSG, "temprature": 0.7}), "temprature", "Unrecognized request argument"),
    "prompt_tokens.json": ("completions", json.dumps({"model": "m", "prompt": [1, 2, 3]}), "prompt", "must be a string"),
    "prompt_in_chat.json": ("chat", json.dumps({"model": "m", "prompt": "Hi"}), "prompt", "Unrecognized request argument"),
    "echo.json": ("completions", json.dumps({"model": "m", "prompt": "Hi", "echo": True}), "echo", "not supported"),
}


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    expected = {}
    for name, (endpoint, body, param, phrase) in CASES.items():
        (OUT / name).write_bytes(body if isinstance(body, bytes) else body.encode())
        expected[name] = {"endpoint": endpoint, "param": param, "phrase": phrase}
    (OUT / "EXPECTED.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
