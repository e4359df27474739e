#!/usr/bin/env python3
"""Dev-time check of `kindred serve` with the official `openai` Python client (the git-ignored
.venv has it): chat, chat streaming with usage, completions (plain and streamed), the model list,
and how the client maps the server's 400/401/404 errors. Prints one line per check; exits 1 on the
first failure.

    kindred serve --api-key sesame --port 8090 &
    .venv/bin/python tools/serve/openai_client_check.py --port 8090 --api-key sesame
"""
import argparse
import sys

import openai


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--api-key", default="sesame")
    args = parser.parse_args()
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{args.port}/v1", api_key=args.api_key, max_retries=0)

    models = [m.id for m in client.models.list().data]
    print("models:", models)
    model = models[0]
    messages = [{"role": "user", "content": "Give me one word for happy."}]

    reply = client.chat.completions.create(model=model, messages=messages, max_tokens=12, temperature=0.7, seed=5,
                                           extra_body={"min_p": 0.1})
    text = reply.choices[0].message.content
    print(f"chat: {text!r} finish={reply.choices[0].finish_reason} usage={reply.usage}")
    assert reply.usage.completion_tokens >= 1 and reply.choices[0].finish_reason in ("stop", "length")

    stream = client.chat.completions.create(model=model, messages=messages, max_tokens=12, temperature=0.7, seed=5,
                                            extra_body={"min_p": 0.1}, stream=True,
                                            stream_options={"include_usage": True})
    pieces, finish, usage = [], None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
            finish = choice.finish_reason or finish
    streamed = "".join(pieces)
    print(f"chat stream: {streamed!r} finish={finish} usage={usage}")
    assert streamed == text, "the stream differs from the same request unstreamed"
    assert usage is not None and usage.completion_tokens == reply.usage.completion_tokens

    completion = client.completions.create(model=model, prompt="The sky is", max_tokens=8, temperature=0)
    print(f"completion: {completion.choices[0].text!r} usage={completion.usage}")
    streamed = "".join(c.choices[0].text for c in
                       client.completions.create(model=model, prompt="The sky is", max_tokens=8, temperature=0,
                                                 stream=True))
    assert streamed == completion.choices[0].text
    print("completion stream: equal")

    for expected, call in [
        (openai.NotFoundError, lambda: client.chat.completions.create(model="no-such-model", messages=messages)),
        (openai.BadRequestError, lambda: client.chat.completions.create(model=model, messages=messages, temperature=5)),
        (openai.AuthenticationError,
         lambda: openai.OpenAI(base_url=f"http://127.0.0.1:{args.port}/v1", api_key="wrong", max_retries=0)
         .chat.completions.create(model=model, messages=messages)),
    ]:
        try:
            call()
        except expected as error:
            print(f"{expected.__name__}: status {error.status_code}, {error.message}")
            continue
        print(f"FAILED: no {expected.__name__}")
        return 1
    print("all openai client checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
