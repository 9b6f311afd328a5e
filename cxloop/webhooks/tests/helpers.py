"""A real HTTP receiver on loopback, and a maker of endpoints."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cxloop.accounts.models import Workspace
from cxloop.webhooks.models import Endpoint

SECRET = "whsec_test-secret"


class Receiver:
    """Notes each POST (headers, raw body) and answers the next planned status (200 after)."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.paths: list[str] = []
        self.plan: list[int] = []
        self.default = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers.items()), body))
                receiver.paths.append(self.path)
                self.send_response(receiver.plan.pop(0) if receiver.plan else receiver.default)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/cxloop"

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def hook(workspace: Workspace, url: str, *types: str, **fields: Any) -> Endpoint:
    return Endpoint.objects.create(
        workspace=workspace, url=url, event_types=list(types), secret=SECRET, **fields
    )
