#!/usr/bin/env python3
"""A stand-in judge for running the official EQ-Bench 3 harness against `kindred serve` where no
judge API is reachable. It speaks just enough of /v1/chat/completions for the harness's APIClient:
to a rubric prompt it answers a JSON object giving every criterion the prompt's output format lists
a fixed middling score (10 of 20), so the harness's parsing and scoring code runs end to end. The
scores mean nothing; the point is that the tested model's side (kindred serve) is exercised by the
harness's own code, unchanged.

    python3 tools/serve/eqbench3_standin_judge.py --port 8099
"""
import argparse
import json
import re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SCORE = 10


def rubric_reply(prompt: str) -> str:
    # The harness's output format is a JSON object whose criteria read `"name": 0-20`.
    criteria = re.findall(r'"([^"\n]+)":\s*0-20', prompt)
    scores = {"chain_of_thought_reasoning": "stand-in judge: fixed scores, not a judgement"}
    scores.update({name: SCORE for name in criteria})
    return json.dumps(scores)


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        prompt = body["messages"][-1]["content"]
        reply = {
            "id": "judge-standin", "object": "chat.completion", "created": 0, "model": body.get("model", "judge"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": rubric_reply(prompt)},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        }
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8099)
    args = parser.parse_args()
    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
