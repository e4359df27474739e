#!/usr/bin/env python3
"""Writes tests/corpus/request-malformed/: one hostile or broken `kindred serve` request body per
file (files named completions_* go to /v1/completions, the rest to /v1/chat/completions), and
EXPECTED.json with "param <field the 400 names>: <start of its message>" for each
(tests/serve/test_protocol.cpp checks them; fuzz/fuzz_request.cpp starts from them)."""
import json
import pathlib

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "corpus" / "request-malformed"
MSG = [{"role": "user", "content": "Hi"}]

# name: (endpoint, body text, param, start of the message)
CASES = {
    "empty.json": ("chat", "", "", "request body: invalid JSON"),
    "truncated.json": ("chat", '{"model": "m", "messages": [{"role": "user", "content": "Hi"', "", "request body: invalid JSON"),
    "not_object.json": ("chat", '["model", "m"]', "", "the request body must be a JSON object"),
    "invalid_utf8.json": ("chat", b'{"model": "m", "messages": [{"role": "user", "content": "\xff\xfe"}]}', "", "request body: invalid JSON"),
    "duplicate_key.json": ("chat", '{"model": "m", "model": "n", "messages": []}', "", "request body: key 'model' appears twice"),
    "deep_nesting.json": ("chat", '{"model": "m", "messages": ' + "[" * 64 + "]" * 64 + "}", "", "request body: JSON nested deeper than 8 levels"),
    "missing_model.json": ("chat", json.dumps({"messages": MSG}), "model", "'model' is missing"),
    "missing_messages.json": ("chat", json.dumps({"model": "m"}), "messages", "'messages' is missing"),
    "messages_not_array.json": ("chat", json.dumps({"model": "m", "messages": "Hi"}), "messages", "'messages' must be a non-empty array"),
    "role_tool.json": ("chat", json.dumps({"model": "m", "messages": [{"role": "tool", "content": "x"}]}), "messages[0].role", "'messages[0].role' is 'tool'; expected system"),
    "content_number.json": ("chat", json.dumps({"model": "m", "messages": [{"role": "user", "content": 3}]}), "messages[0].content", "'messages[0].content' must be a string or an array of text parts"),
    "content_image.json": ("chat", json.dumps({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}), "messages[0].content[0].type", "'messages[0].content[0].type' is 'image_url'; only text parts"),
    "tool_calls.json": ("chat", json.dumps({"model": "m", "messages": [{"role": "assistant", "content": "", "tool_calls": []}]}), "messages[0].tool_calls", "'messages[0].tool_calls': tool calls are not supported"),
    "too_many_messages.json": ("chat", json.dumps({"model": "m", "messages": MSG * 300}), "messages", "'messages' holds 300 messages; this server accepts at most 256"),
    "temperature_string.json": ("chat", json.dumps({"model": "m", "messages": MSG, "temperature": "0.7"}), "temperature", "'temperature' must be a number"),
    "temperature_negative.json": ("chat", json.dumps({"model": "m", "messages": MSG, "temperature": -1}), "temperature", "'temperature' must be in [0, 2], got -1"),
    "top_p_zero.json": ("chat", json.dumps({"model": "m", "messages": MSG, "top_p": 0}), "top_p", "'top_p' must be > 0"),
    "max_tokens_zero.json": ("chat", json.dumps({"model": "m", "messages": MSG, "max_tokens": 0}), "max_tokens", "'max_tokens' must be in [1, 9223372036854775807], got 0"),
    "max_tokens_negative.json": ("chat", json.dumps({"model": "m", "messages": MSG, "max_tokens": -5}), "max_tokens", "'max_tokens' must be in [1, 9223372036854775807], got -5"),
    "max_tokens_float.json": ("chat", json.dumps({"model": "m", "messages": MSG, "max_tokens": 1e300}), "max_tokens", "'max_tokens' must be an integer"),
    "stop_five.json": ("chat", json.dumps({"model": "m", "messages": MSG, "stop": ["a", "b", "c", "d", "e"]}), "stop", "'stop' holds 5 sequences; at most 4"),
    "stop_empty.json": ("chat", json.dumps({"model": "m", "messages": MSG, "stop": ""}), "stop", "'stop' sequences must not be empty"),
    "n_two.json": ("chat", json.dumps({"model": "m", "messages": MSG, "n": 2}), "n", "'n' must be in [1, 1], got 2"),
    "logit_bias_key.json": ("chat", json.dumps({"model": "m", "messages": MSG, "logit_bias": {"hello": 5}}), "logit_bias.hello", "'logit_bias' key 'hello' is not a token id in [0, 49152)"),
    "logit_bias_range.json": ("chat", json.dumps({"model": "m", "messages": MSG, "logit_bias": {"5": 1000}}), "logit_bias.5", "'logit_bias.5' must be in [-100, 100], got 1000"),
    "seed_string.json": ("chat", json.dumps({"model": "m", "messages": MSG, "seed": "42"}), "seed", "'seed' must be an integer"),
    "stream_options_alone.json": ("chat", json.dumps({"model": "m", "messages": MSG, "stream_options": {"include_usage": True}}), "stream_options", "'stream_options' is only allowed when 'stream' is true"),
    "tools.json": ("chat", json.dumps({"model": "m", "messages": MSG, "tools": [{"type": "function", "function": {"name": "f"}}]}), "tools", "'tools': tool calling is not supported"),
    "unknown_field.json": ("chat", json.dumps({"model": "m", "messages": MSG, "temprature": 0.7}), "temprature", "Unrecognized request argument supplied: temprature"),
    "completions_prompt_tokens.json": ("completions", json.dumps({"model": "m", "prompt": [1, 2, 3]}), "prompt", "'prompt' must be a string (or an array of one string)"),
    "prompt_in_chat.json": ("chat", json.dumps({"model": "m", "prompt": "Hi"}), "prompt", "Unrecognized request argument supplied: prompt"),
    "completions_echo.json": ("completions", json.dumps({"model": "m", "prompt": "Hi", "echo": True}), "echo", "'echo': echo is not supported"),
    "kindred_not_object.json": ("chat", json.dumps({"model": "m", "messages": MSG, "kindred": True}), "kindred", "'kindred' must be an object"),
    "kindred_unknown_field.json": ("chat", json.dumps({"model": "m", "messages": MSG, "kindred": {"controller": True, "reflexion": False}}), "kindred.reflexion", "'kindred.reflexion': unrecognized field of the kindred extension"),
    "kindred_step_without_controller.json": ("chat", json.dumps({"model": "m", "messages": MSG, "kindred": {"repairs": 1}}), "kindred.repairs", "'kindred.repairs' is a controller setting: it needs \"controller\": true"),
    "kindred_repairs_range.json": ("chat", json.dumps({"model": "m", "messages": MSG, "kindred": {"controller": True, "repairs": 9}}), "kindred.repairs", "'kindred.repairs' must be in [0, 4], got 9"),
    "kindred_style_empty.json": ("chat", json.dumps({"model": "m", "messages": MSG, "kindred": {"style": ""}}), "kindred.style", "'kindred.style' must be 1 to 256 bytes of style tags"),
    "kindred_controller_string.json": ("chat", json.dumps({"model": "m", "messages": MSG, "kindred": {"controller": "yes"}}), "kindred.controller", "'kindred.controller' must be true or false"),
    "completions_kindred.json": ("completions", json.dumps({"model": "m", "prompt": "Hi", "kindred": {"controller": True}}), "kindred", "'kindred' (style tokens, the decoding controller) applies to /v1/chat/completions only"),
}


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    expected = {}
    for name, (endpoint, body, param, phrase) in CASES.items():
        (OUT / name).write_bytes(body if isinstance(body, bytes) else body.encode())
        assert name.startswith("completions_") == (endpoint == "completions"), name
        expected[name] = f"param {param or '-'}: {phrase}"
    (OUT / "EXPECTED.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
