"""The page's Content-Security-Policy (a <meta> tag: GitHub Pages cannot send headers).

The page does everything (draw, gallery, "Inside the network", a training run with its
charts, offline cache) without one violation; an inline script, a data: script and a request
to another origin are refused. The same policy sent as an HTTP header on every file also
covers the worker: Pyodide then runs under it (it needs 'wasm-unsafe-eval', not
'unsafe-eval').
"""
from __future__ import annotations

import functools
import http.server
import re
import threading
import time

import pytest

from helpers import SHAPES, classify_drawing, show_gallery, wait_ready
from tools.devserver import SiteHandler

# Records every violation the document sees, from before the page's own scripts run.
RECORD_VIOLATIONS = """window.__violations = [];
document.addEventListener('securitypolicyviolation',
  (e) => window.__violations.push(`${e.effectiveDirective} ${e.blockedURI}`));"""


def page_policy(dist_dir) -> str:
    html = (dist_dir / "index.html").read_text()
    found = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', html)
    assert found, "index.html has no Content-Security-Policy meta tag"
    return found.group(1)


def directives(policy: str) -> dict[str, list[str]]:
    return {d.split()[0]: d.split()[1:] for d in (p.strip() for p in policy.split(";")) if d}


def test_policy_allows_only_the_site_itself(dist_dir):
    d = directives(page_policy(dist_dir))
    assert d["default-src"] == ["'self'"]
    assert d["script-src"] == ["'self'", "'wasm-unsafe-eval'"]
    assert d["object-src"] == ["'none'"] and d["base-uri"] == ["'self'"]
    for name, sources in d.items():
        allowed = {"'self'", "'none'", "'wasm-unsafe-eval'"}
        assert set(sources) <= allowed, f"{name} allows {set(sources) - allowed}"


def violations(page) -> list[str]:
    return page.evaluate("window.__violations")


def test_page_works_without_violations_and_refuses_the_rest(browser, base_url):
    context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.add_init_script(RECORD_VIOLATIONS)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(base_url)
        wait_ready(page, enabled="[data-testid=train]")
        assert classify_drawing(page, SHAPES[7]) == "7"
        page.locator("#inside-details summary").click()
        page.wait_for_function("() => document.querySelector('[data-testid=filters]').dataset.empty === 'false'")
        show_gallery(page)
        # A short training run: Chart.js is loaded (a script element) and draws its charts.
        page.fill("#t-epochs", "1")
        page.get_by_test_id("train").click()
        page.wait_for_function(
            "() => Number(document.querySelector('[data-testid=chart-batches]').dataset.points) > 0",
            timeout=120_000)
        page.get_by_test_id("stop").click()
        page.wait_for_function("() => document.querySelector('#train').dataset.training === 'idle'",
                               timeout=120_000)
        page.wait_for_function("() => document.documentElement.dataset.offline === 'ready'", timeout=90_000)
        assert violations(page) == []
        assert not errors, errors

        # What the policy is for: none of these run or leave the site.
        assert page.evaluate("""() => {
          const s = document.createElement('script');
          s.textContent = 'window.__inlineRan = true';
          document.head.append(s);
          return Boolean(window.__inlineRan);
        }""") is False
        assert page.evaluate("""() => {
          const s = document.createElement('script');
          s.src = 'data:text/javascript,window.__dataRan = true';
          document.head.append(s);
          return new Promise((resolve) => { s.onerror = () => resolve(Boolean(window.__dataRan));
                                            s.onload = () => resolve(Boolean(window.__dataRan)); });
        }""") is False
        assert page.evaluate(
            "() => fetch('http://example.com/x').then(() => 'fetched', () => 'refused')") == "refused"
        seen = " | ".join(violations(page))
        for directive in ("script-src-elem", "script-src", "connect-src"):
            assert directive in seen, seen
        # ... and the page still works.
        assert classify_drawing(page, SHAPES[1]) == "1"
    finally:
        context.close()


def serve_with_header(dist_dir, policy: str):
    """dist/ served with `policy` as an HTTP header on every file (the worker's too)."""

    class WithPolicy(SiteHandler):
        quiet = True

        def end_headers(self):
            self.send_header("Content-Security-Policy", policy)
            super().end_headers()

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(WithPolicy, directory=str(dist_dir)))
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


@pytest.mark.parametrize("wasm", [True, False], ids=["policy", "without-wasm-unsafe-eval"])
def test_pyodide_runs_in_a_worker_under_the_policy(browser, dist_dir, wasm):
    """With the page's policy the worker runs Pyodide; without 'wasm-unsafe-eval' it cannot
    (so the header does reach the worker, and that source is what Pyodide needs)."""
    policy = page_policy(dist_dir)
    if not wasm:
        policy = policy.replace(" 'wasm-unsafe-eval'", "")
    httpd = serve_with_header(dist_dir, policy)
    context = browser.new_context(service_workers="block")
    page = context.new_page()
    page.add_init_script(RECORD_VIOLATIONS)
    worker_console = []
    page.on("worker", lambda w: w.on("console", lambda m: worker_console.append(m.text)))
    try:
        page.goto(f"http://127.0.0.1:{httpd.server_address[1]}/")
        if wasm:
            wait_ready(page)
            assert classify_drawing(page, SHAPES[7]) == "7"
            assert violations(page) == []
        else:
            # Pyodide's wasm compile is refused in the worker (Pyodide then never finishes
            # loading: the page stays "loading").
            deadline = time.monotonic() + 90
            while not any("Content Security" in m for m in worker_console):
                assert time.monotonic() < deadline, worker_console
                page.wait_for_timeout(500)
            assert "CompileError" in " ".join(worker_console)
            assert page.evaluate("document.documentElement.dataset.state") != "ready"
    finally:
        context.close()
        httpd.shutdown()
        httpd.server_close()
