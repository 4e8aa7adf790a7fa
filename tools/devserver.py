"""The local static server for dist/ (`build.py serve`, the browser tests, the benchmark)."""
from __future__ import annotations

import functools
import gzip
import http.server
import io
import os
import signal


class SiteHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with the MIME types a Pyodide site needs.

    Text-like files (the Pyodide wasm and JS among them: 11.4 MB -> 3.4 MB) are sent
    gzip-encoded to browsers that accept it, as GitHub Pages does; archives (.whl, .zip,
    .npz, .gz) are already compressed and go as plain bytes.
    """
    extensions_map = {
        "": "application/octet-stream",
        ".html": "text/html; charset=utf-8",
        ".js": "text/javascript; charset=utf-8",
        ".mjs": "text/javascript; charset=utf-8",
        ".css": "text/css; charset=utf-8",
        ".json": "application/json",
        ".map": "application/json",
        ".webmanifest": "application/manifest+json",
        ".wasm": "application/wasm",
        ".whl": "application/octet-stream",
        ".zip": "application/octet-stream",
        ".npz": "application/octet-stream",
        ".gz": "application/octet-stream",  # served as bytes: the page decompresses it itself
        ".svg": "image/svg+xml",
        ".png": "image/png",
        ".ico": "image/x-icon",
        ".txt": "text/plain; charset=utf-8",
    }
    quiet = False
    compressible = (".html", ".js", ".mjs", ".css", ".json", ".map", ".webmanifest", ".wasm",
                    ".svg", ".txt")
    _gzip_cache: dict = {}  # (path, mtime_ns, size) -> gzip bytes, shared by all requests

    def send_head(self):
        path = self.translate_path(self.path)
        gzip_ok = "gzip" in self.headers.get("Accept-Encoding", "")
        if (not gzip_ok or "If-Modified-Since" in self.headers or not os.path.isfile(path)
                or os.path.splitext(path)[1].lower() not in self.compressible):
            return super().send_head()
        st = os.stat(path)
        key = (path, st.st_mtime_ns, st.st_size)
        body = self._gzip_cache.get(key)
        if body is None:
            with open(path, "rb") as f:
                body = gzip.compress(f.read(), compresslevel=6, mtime=0)
            self._gzip_cache[key] = body
        self.send_response(200)
        self.send_header("Content-Type", self.guess_type(path))
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Vary", "Accept-Encoding")
        self.send_header("Last-Modified", self.date_time_string(st.st_mtime))
        self.end_headers()
        return io.BytesIO(body)

    def do_GET(self):
        self._report()
        super().do_GET()

    def do_HEAD(self):
        self._report()
        super().do_HEAD()

    def _report(self):
        # Tests set server.request_hook to see every request (the worker's too).
        hook = getattr(self.server, "request_hook", None)
        if hook is not None:
            hook(self.command, self.path)

    def guess_type(self, path):
        ext = os.path.splitext(str(path))[1].lower()
        return self.extensions_map.get(ext) or super().guess_type(path)

    def end_headers(self):
        # Always revalidate: after a rebuild the browser must not mix old and new files
        # (the service worker does the offline caching).
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def log_message(self, format, *args):
        if not self.quiet:
            super().log_message(format, *args)

    def handle(self):
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the browser went away mid-response (navigation, test teardown)


def make_server(directory, host: str = "127.0.0.1", port: int = 0,
                quiet: bool = False) -> http.server.ThreadingHTTPServer:
    """A threaded static server for `directory` (port 0 = a free port; see .server_address)."""
    handler = functools.partial(type("Handler", (SiteHandler,), {"quiet": quiet}),
                                directory=str(directory))
    server = http.server.ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def serve_forever(server: http.server.ThreadingHTTPServer, label: str) -> None:
    """Serve until Ctrl-C or SIGTERM (SIGINT may arrive ignored from a parent), then close."""
    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    host, port = server.server_address[:2]
    print(f"Serving {label} at http://{host}:{port}/  (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("\nstopped")
    finally:
        server.server_close()
