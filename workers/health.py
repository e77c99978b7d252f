"""A worker process's own HTTP endpoint: `/health` from its supervisor, `/metrics` for Prometheus.

dramatiq workers serve no HTTP, so an orchestrator could only see that the process exists, not
that its subscribers are failing. `/health` answers 503 while any supervised task has been
failing for longer than SUBSCRIBER_UNHEALTHY_SECONDS (or the service is not running).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

log = logging.getLogger(__name__)
HealthReport = Callable[[], dict[str, Any]]


class HealthServer:
    """Serves `/health` and `/metrics` on `port` from a daemon thread."""

    def __init__(self, port: int, report: HealthReport, host: str = "0.0.0.0") -> None:
        self.port, self.report, self.host = port, report, host
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> bool:
        """Start serving; False (and a warning) if the port is taken."""
        report = self.report

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] == "/metrics":
                    self._send(200, generate_latest(), CONTENT_TYPE_LATEST)
                elif self.path.split("?")[0] == "/health":
                    body = report()
                    status = 200 if body.get("healthy") else 503
                    self._send(status, json.dumps(body, default=str).encode(), "application/json")
                else:
                    self._send(404, b'{"detail": "Not Found"}', "application/json")

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # scrapes are not news
                return

        try:
            self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        except OSError as exc:  # another worker process on this machine serves it already
            log.warning("health/metrics port %d unavailable: %s", self.port, exc)
            return False
        self._server.daemon_threads = True
        thread = threading.Thread(target=self._server.serve_forever, name="health", daemon=True)
        thread.start()
        return True

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
