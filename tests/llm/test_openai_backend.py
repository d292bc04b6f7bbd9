"""The OpenAI-compatible backend against a local HTTP server started here (127.0.0.1)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from phase1b_kedro.llm import GenerationConfig, make_client


class _ChatHandler(BaseHTTPRequestHandler):
    """A minimal OpenAI-compatible /v1/chat/completions endpoint; fails the first call with 429."""

    calls = 0
    bodies: list[dict] = []

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).calls += 1
        type(self).bodies.append({"body": body, "auth": self.headers.get("Authorization")})
        if type(self).calls == 1:
            self.send_response(429)
            self.send_header("Retry-After", "0")
            self.end_headers()
            return
        text = "echo: " + body["messages"][-1]["content"]
        payload = {"id": "x", "object": "chat.completion", "created": 0, "model": body.get("model", "m"),
                   "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
                   "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_openai_compatible_backend_against_local_http_server(monkeypatch, allow_local_http):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ChatHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = make_client("openai_compatible", "tiny", {"base_url": f"http://127.0.0.1:{server.server_port}/v1",
                                                           "concurrency": 1, "max_retries": 2, "timeout_s": 10},
                             api_key="secret-marker")
        res = client.generate([[{"role": "user", "content": "hello"}], [{"role": "user", "content": ""}]],
                              GenerationConfig(max_new_tokens=8))
    finally:
        server.shutdown()
        server.server_close()
    assert res[0].status == "ok", res[0].error
    assert res[0].text == "echo: hello" and res[0].tokens_out == 2
    assert res[1].status == "error" and res[1].error == "empty prompt"
    assert client.retries == 1 and client.requests_sent == 2  # the 429 was retried once
    sent = _ChatHandler.bodies[-1]
    assert sent["body"]["model"] == "tiny" and sent["body"]["max_tokens"] == 8
    assert sent["auth"] == "Bearer secret-marker"
