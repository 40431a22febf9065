"""A real HTTP downstream on 127.0.0.1 for the security probes: records the headers of each
request it gets and answers a JSON ping, or `body_bytes` bytes when set."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class DownstreamStub:
    def __init__(self) -> None:
        self.requests: list[dict[str, str]] = []  # each request's headers, lower-case names
        self.body_bytes: int | None = None
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                with stub.lock:
                    stub.requests.append({k.lower(): v for k, v in self.headers.items()})
                    size = stub.body_bytes
                body = json.dumps({"ping": "pong"}).encode() if size is None else b"x" * size
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> DownstreamStub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
