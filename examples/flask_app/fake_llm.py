# SPDX-License-Identifier: Apache-2.0
"""A tiny OpenAI-compatible ``POST /v1/chat/completions`` on loopback, so the example runs without an LLM account.

python fake_llm.py --port 8099        # then LLM_BASE_URL=http://127.0.0.1:8099
"""

from __future__ import annotations

import argparse
import contextlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        request: dict[str, Any] = json.loads(self.rfile.read(length) or b"{}")
        if self.path != "/v1/chat/completions":
            self.send_error(404)
            return
        question = str((request.get("messages") or [{}])[-1].get("content", ""))
        answer = f"You said: {question}"
        body = json.dumps(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "model": str(request.get("model", "gpt-4o-mini")) + "-2024-07-18",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": len(question.split()) + 8, "completion_tokens": len(answer.split())},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the example prints what matters
        pass


def start(port: int = 0) -> ThreadingHTTPServer:
    """Serve in a daemon thread; ``server.server_port`` is the port. Stop: ``shutdown()``, ``server_close()``."""
    server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
    threading.Thread(target=server.serve_forever, name="fake-llm", daemon=True).start()
    return server


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Fake OpenAI-compatible chat completions on 127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    port = parser.parse_args().port
    server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
    print(f"fake LLM: LLM_BASE_URL=http://127.0.0.1:{server.server_port}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
