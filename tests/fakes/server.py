"""A tiny HTTP server on 127.0.0.1 that records every request and answers from a script.

Outbound tests point the real twilio / africastalking / python-telegram-bot / requests clients at it (through the
``*_API_BASE_URL`` settings) and then check the exact requests the clients sent.

    with FakeProvider() as fake:
        fake.respond(200, {"sid": "SM1"})               # next answer (a queue; the last one repeats)
        fake.respond(lambda req: (500, {"err": 1}))      # or a function of the request
        ... app code sends ...
        assert fake.requests[0].path == "/2010-04-01/Accounts/AC1/Messages.json"
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    @property
    def form(self) -> dict[str, list[str]]:
        """The body parsed as application/x-www-form-urlencoded."""
        return parse_qs(self.body.decode(), keep_blank_values=True)

    def json(self):
        return json.loads(self.body)


class SilentPort:
    """A port on 127.0.0.1 that never completes a TCP handshake: its listen backlog is full and nothing accepts, so
    the kernel drops new connection attempts and a client's *connect* times out (nothing is ever sent to it).

        with SilentPort() as silent:
            ... a client pointed at silent.base_url raises its connect-timeout error ...
    """

    def __enter__(self) -> SilentPort:
        self._server = socket.socket()
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(0)
        self.port = self._server.getsockname()[1]
        self._fillers = []
        for _ in range(3):  # more than the backlog holds
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", self.port))
            self._fillers.append(filler)
        time.sleep(0.05)  # let the kernel settle the handshakes that fit
        return self

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc) -> None:
        for filler in self._fillers:
            filler.close()
        self._server.close()


Answer = tuple[int, object] | tuple[int, object, dict]


@dataclass
class FakeProvider:
    """Records requests; answers with queued responses (the last one repeats)."""

    requests: list[RecordedRequest] = field(default_factory=list)
    answers: list[Answer | Callable[[RecordedRequest], Answer]] = field(default_factory=list)
    delay_seconds: float = 0.0
    # Set when the fake stops: a delayed answer still waiting is dropped (its client gave up long ago), so neither
    # the test nor the server waits for it, and no answer is written to a connection the client has closed.
    _closing: threading.Event = field(default_factory=threading.Event, repr=False)

    def respond(self, status_or_fn, body: object = None, headers: dict | None = None) -> FakeProvider:
        """Queue an answer: ``(status, body[, headers])`` or a function of the request returning that tuple.

        A dict or list body is sent as ``application/json`` (exactly that, no charset: the africastalking SDK
        parses nothing else); bytes and str are sent as they are.
        """
        self.answers.append(status_or_fn if callable(status_or_fn) else (status_or_fn, body, headers or {}))
        return self

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeProvider:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                request = RecordedRequest(self.command, parts.path, parse_qs(parts.query), dict(self.headers), body)
                fake.requests.append(request)
                if fake.delay_seconds and fake._closing.wait(fake.delay_seconds):
                    return
                answer = fake._next_answer(request)
                status, payload = answer[0], answer[1]
                headers = answer[2] if len(answer) > 2 else {}
                if isinstance(payload, dict | list):
                    data, content_type = json.dumps(payload).encode(), "application/json"
                elif isinstance(payload, str):
                    data, content_type = payload.encode(), "text/plain"
                else:
                    data, content_type = payload or b"", "application/octet-stream"
                self.send_response(status)
                self.send_header("Content-Type", headers.pop("Content-Type", content_type))
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _handle  # noqa: N815

            def log_message(self, *args):  # keep test output clean
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()

    def _next_answer(self, request: RecordedRequest) -> tuple:
        if not self.answers:
            return (200, {})
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return answer(request) if callable(answer) else answer
