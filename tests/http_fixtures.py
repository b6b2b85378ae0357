"""A local HTTP server for the download tests (models, voices, a stand-in model hub): it serves the
bytes in `files` by path (the query string ignored), 404 otherwise, and records every path asked for."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable


class FileServer:
    def __init__(self, fallback: Callable[[str, dict[str, bytes]], bytes | None] | None = None) -> None:
        """`fallback(path, files)` may answer a path that is not in `files` (a listing made from them)."""
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        served = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                served.requests.append(path)
                data = served.files.get(path)
                if data is None and fallback is not None:
                    data = fallback(path, served.files)
                if data is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
