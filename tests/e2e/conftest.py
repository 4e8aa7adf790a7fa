"""Browser fixtures: dist/ on a local server, Debian's Chromium driven by Playwright.

`python3 build.py test` installs the requirements, builds dist/ and runs these tests; the
fixtures build nothing themselves.

Fixtures
    dist_dir    dist/ (fails clearly if it was not built)
    server      tools.devserver.make_server(dist/, "127.0.0.1", 0) in a thread (session)
    base_url    "http://127.0.0.1:PORT/" (session)
    browser     Chromium, headless, fresh profile per context (session)
    context     browser.new_context(base_url=...) per test (service workers work in it)
    page        context.new_page(), plus:
                  page.requests        every request URL seen during the test: the page's,
                                       its workers' and service worker's (from the server's
                                       log) and any that tried to leave 127.0.0.1
                  page.offsite_requests  those of page.requests not on base_url's origin
                  page.console_errors  console.error messages and uncaught page errors

helpers.py holds the browser flags, the drawing helpers and wait_ready(page), which the
tests import directly.

Requests that leave the origin are caught by a recording proxy the browser is pointed at
(Chromium sends loopback traffic directly, everything else through it, and the proxy
answers 403): Playwright's own request events miss worker and service-worker traffic with
this Chromium. Chromium's own housekeeping hosts (BROWSER_HOSTS) are not counted.
"""
from __future__ import annotations

import http.server
import os
import threading
import urllib.parse
from pathlib import Path

import pytest

from helpers import CHROMIUM, CHROMIUM_ARGS
from tools.devserver import make_server

ROOT = Path(__file__).resolve().parents[2]
DIST = ROOT / "dist"
# Contacted by Chromium itself (updates, clock, sign-in), never by the page.
BROWSER_HOSTS = {
    "update.googleapis.com", "clients2.google.com", "accounts.google.com",
    "clientservices.googleapis.com", "optimizationguide-pa.googleapis.com",
    "safebrowsingohttpgateway.googleapis.com", "content-autofill.googleapis.com",
    "redirector.gvt1.com", "edgedl.me.gvt1.com", "android.clients.google.com",
}


class _Recorder:
    """Fans request URLs out to the lists of the tests currently running."""

    def __init__(self):
        self.lock = threading.Lock()
        self.sinks: list[list[str]] = []

    def record(self, url: str) -> None:
        with self.lock:
            for sink in self.sinks:
                sink.append(url)


@pytest.fixture(scope="session")
def recorder():
    return _Recorder()


@pytest.fixture(scope="session")
def dist_dir() -> Path:
    if not (DIST / "index.html").exists():
        pytest.fail(f"{DIST / 'index.html'} does not exist: build the site first "
                    "(`python3 build.py build`; `python3 build.py test` does it)", pytrace=False)
    return DIST


@pytest.fixture(scope="session")
def server(dist_dir, recorder):
    httpd = make_server(dist_dir, "127.0.0.1", 0, quiet=True)
    host, port = httpd.server_address[:2]
    origin = f"http://{host}:{port}"
    httpd.request_hook = lambda method, path: recorder.record(origin + path)
    thread = threading.Thread(target=httpd.serve_forever, name="dist-server", daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="session")
def base_url(server) -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}/"


@pytest.fixture(scope="session")
def egress_proxy(recorder):
    """A proxy that records and refuses every request that is not to loopback."""

    class Refuse(http.server.BaseHTTPRequestHandler):
        def _refuse(self):
            if self.command == "CONNECT":
                url = f"https://{self.path}/"
            else:
                url = self.path
            host = urllib.parse.urlsplit(url).hostname or ""
            if host not in BROWSER_HOSTS:
                recorder.record(url)
            self.send_response(403)
            self.send_header("Content-Length", "0")
            self.send_header("Connection", "close")
            self.end_headers()

        do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = do_OPTIONS = do_PATCH = _refuse
        do_CONNECT = _refuse

        def log_message(self, format, *args):
            pass

    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    proxy.daemon_threads = True
    threading.Thread(target=proxy.serve_forever, name="egress-proxy", daemon=True).start()
    yield f"http://127.0.0.1:{proxy.server_address[1]}"
    proxy.shutdown()
    proxy.server_close()


@pytest.fixture(scope="session")
def playwright():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the playwright package is not installed in this Python; run the tests "
                    "with `python3 build.py test` (it installs requirements-dev.txt into .venv)",
                    pytrace=False)
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright, egress_proxy):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: apt-get install -y chromium "
                    "(`python3 build.py test` does it)", pytrace=False)
    # The proxy is passed as a flag, not Playwright's proxy option: that one would also
    # route loopback (our server) through it.
    b = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                   args=[*CHROMIUM_ARGS, f"--proxy-server={egress_proxy}"])
    yield b
    b.close()


@pytest.fixture
def context(browser, base_url):
    ctx = browser.new_context(base_url=base_url)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context, base_url, recorder):
    page = context.new_page()
    requests: list[str] = []
    errors: list[str] = []
    page.requests = requests
    page.console_errors = errors
    origin = urllib.parse.urlsplit(base_url)[:2]
    page.offsite_requests = lambda: [u for u in list(requests)
                                     if urllib.parse.urlsplit(u).scheme in ("http", "https", "ws", "wss")
                                     and urllib.parse.urlsplit(u)[:2] != origin]
    page.on("request", lambda r: requests.append(r.url))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
    with recorder.lock:
        recorder.sinks.append(requests)
    yield page
    with recorder.lock:
        recorder.sinks.remove(requests)
