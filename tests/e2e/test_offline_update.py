"""A new deployment while the site is cached: offline keeps working, and the service worker
never stores a file whose bytes differ from the build manifest.

Two real builds are served one after the other on one origin (a server whose root folder
the test switches): version 1 is dist/, version 2 is built (`build.py build --web --out`)
from a copy of web/ in which index.html, js/main.js, js/ui.js and worker.js changed. A
third deployment is version 2 with js/ui.js still version 1's (an upload half done).

DIGITNET_DEPLOY_RUNS (default 1) repeats the deploy-then-offline test, each run going
offline at another moment (WHEN_OFFLINE), e.g. DIGITNET_DEPLOY_RUNS=10 for ten in a row.
"""
from __future__ import annotations

import hashlib
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

from helpers import SHAPES, classify_drawing, wait_ready
from tools.devserver import SiteHandler

ROOT = Path(__file__).resolve().parents[2]
CHANGED = ("index.html", "js/main.js", "js/ui.js", "worker.js")
MARK = "deployment two"
RUNS = int(os.environ.get("DIGITNET_DEPLOY_RUNS", "1"))
# When to go offline after the update went live: the moment a new service worker takes
# control of the page, or this many seconds after the page said "ready" again.
WHEN_OFFLINE = ("takeover", 0, 2, 5, 20)
# Resolves when a service worker takes control of the page (a listener from before the
# page's own scripts ran, so the moment is not missed).
TAKEOVER_WATCH = """window.__takeover = new Promise((resolve) => navigator.serviceWorker &&
  navigator.serviceWorker.addEventListener('controllerchange', resolve));"""
# Or the reloaded page was controlled by the new version from its start (the new version
# activated before the page's document existed, so there was no change to see).
TOOK_OVER = """(version) => Promise.race([window.__takeover.then(() => true),
  new Promise((resolve) => {
    const until = Date.now() + 90000;
    (function poll() {
      if (document.documentElement.dataset.offlineVersion === version) resolve(true);
      else if (Date.now() > until) resolve(false);
      else setTimeout(poll, 100);
    })();
  })])"""
TIMEOUT = 90_000  # ms


class Build:
    """One deployment: its folder and what its build-manifest.json says."""

    def __init__(self, path: Path):
        self.path = path
        self.manifest_bytes = (path / "build-manifest.json").read_bytes()
        self.manifest = json.loads(self.manifest_bytes)
        self.version = self.manifest["version"]
        self.precache = [urllib.parse.unquote(u) for u in self.manifest["precache"]]

    def sha(self, rel: str) -> str | None:
        if rel == "build-manifest.json":
            return hashlib.sha256(self.manifest_bytes).hexdigest()
        entry = self.manifest["files"].get(rel)
        return entry and entry["sha256"]


@pytest.fixture(scope="module")
def builds(dist_dir, tmp_path_factory) -> dict[str, Build]:
    return make_deployments(dist_dir, tmp_path_factory.mktemp("deployments"))


def make_deployments(dist_dir: Path, base: Path) -> dict[str, Build]:
    """v1 (dist/), v2 (rebuilt from changed pages) and "mixed" (v2 with v1's js/ui.js),
    the last two written into `base`."""
    web2 = base / "web2"
    shutil.copytree(ROOT / "web", web2)
    index = web2 / "index.html"
    index.write_text(index.read_text().replace("</body>", f"<!-- {MARK} -->\n</body>"))
    for rel in CHANGED[1:]:
        with open(web2 / rel, "a") as f:
            f.write(f"// {MARK}\n")
    done = subprocess.run([sys.executable, str(ROOT / "build.py"), "build", "--web", str(web2),
                           "--out", str(base / "v2")], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    v1, v2 = Build(dist_dir), Build(base / "v2")
    assert v1.version != v2.version
    changed = {rel for rel in v2.manifest["files"] if v1.sha(rel) != v2.sha(rel)}
    assert set(CHANGED) <= changed <= set(CHANGED) | {"sw.js"}, changed
    mixed = base / "mixed"
    for src in v2.path.rglob("*"):
        if src.is_file():
            dst = mixed / src.relative_to(v2.path)
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.symlink_to(src)
    (mixed / "js" / "ui.js").unlink()
    shutil.copyfile(v1.path / "js" / "ui.js", mixed / "js" / "ui.js")
    return {"v1": v1, "v2": v2, "mixed": Build(mixed)}


class SwitchableSite:
    """A static server on one origin whose root folder (`root`) can be switched."""

    def __init__(self, root: Path):
        self.root = root
        site = self

        class Handler(SiteHandler):
            quiet = True

            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(site.root), **kwargs)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, name="deployments", daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"


@pytest.fixture(scope="module")
def site(builds):
    s = SwitchableSite(builds["v1"].path)
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


# ---- what the browser holds and serves -----------------------------------------------------

_HEX = "(b) => Array.from(new Uint8Array(b), (x) => x.toString(16).padStart(2, '0')).join('')"

CACHE_CONTENTS = f"""async () => {{
  const hex = {_HEX};
  const out = {{}};
  for (const name of await caches.keys()) {{
    const cache = await caches.open(name);
    const files = {{}};
    for (const request of await cache.keys()) {{
      const body = await (await cache.match(request)).arrayBuffer();
      const rel = decodeURIComponent(new URL(request.url).pathname.slice(1));
      files[rel] = hex(await crypto.subtle.digest('SHA-256', body));
    }}
    out[name] = files;
  }}
  return out;
}}"""

SERVED = f"""async (paths) => {{
  const hex = {_HEX};
  const out = {{}};
  for (const path of paths) {{
    const response = await fetch(encodeURI(path));
    out[path] = response.ok ? hex(await crypto.subtle.digest('SHA-256', await response.arrayBuffer()))
                            : `HTTP ${{response.status}}`;
  }}
  return out;
}}"""

# Settles the service worker update in progress (or starts one): "activated" (installed
# completely, then took over), "redundant" (install failed) or "none" (nothing new).
INSTALL_OUTCOME = """async () => {
  const reg = await navigator.serviceWorker.getRegistration();
  const settle = (w) => new Promise((resolve) => {
    const done = () => ['activated', 'redundant'].includes(w.state);
    if (done()) return resolve(w.state);
    w.addEventListener('statechange', () => done() && resolve(w.state));
  });
  let w = reg.installing || reg.waiting;
  if (!w) {
    await reg.update();
    w = reg.installing || reg.waiting;
  }
  return w ? await settle(w) : 'none';
}"""


def caches_hold_only_verified_files(page, builds) -> dict[str, dict[str, str]]:
    """Every digitnet cache is one version's and each file in it has that version's bytes."""
    by_version = {b.version: b for b in builds.values()}
    contents = page.evaluate(CACHE_CONTENTS)
    for name, files in contents.items():
        assert name.startswith("digitnet-"), name
        build = by_version[name.removeprefix("digitnet-")]
        wrong = [rel for rel, sha in files.items() if sha != build.sha(rel)]
        assert not wrong, f"{name} holds files that differ from its manifest: {wrong}"
    return contents


def served_version(page, builds) -> str:
    """Which deployment every precache file the page is served (by the service worker when
    offline) belongs to; fails if the files are not all one version's."""
    paths = builds["v2"].precache
    served = page.evaluate(SERVED, paths)
    for name in ("v1", "v2"):
        if all(served[p] == builds[name].sha(p) for p in paths):
            return name
    v1_only = [p for p in paths if served[p] == builds["v1"].sha(p) != builds["v2"].sha(p)]
    neither = [p for p in paths if served[p] not in (builds["v1"].sha(p), builds["v2"].sha(p))]
    raise AssertionError(f"files of two versions: version 1's {v1_only}; neither's {neither}")


def wait_offline(page, state="ready", version=None, timeout=TIMEOUT) -> None:
    page.wait_for_function(
        """([state, version]) => {
          const d = document.documentElement.dataset;
          return d.offline === state && (!version || d.offlineVersion === version);
        }""", arg=[state, version], timeout=timeout)


def complete(contents, build: Build) -> bool:
    return set(build.precache) <= set(contents.get(f"digitnet-{build.version}", {}))


# ---- the tests ------------------------------------------------------------------------------

@pytest.mark.parametrize("run", range(RUNS))
def test_offline_survives_a_new_deployment(browser, site, builds, run):
    v1, v2 = builds["v1"], builds["v2"]
    when = WHEN_OFFLINE[run % len(WHEN_OFFLINE)]
    site.root = v1.path
    context = browser.new_context()
    try:
        page = context.new_page()
        page.add_init_script(TAKEOVER_WATCH)
        page.goto(site.url)
        wait_ready(page)
        wait_offline(page, "ready")
        assert complete(caches_hold_only_verified_files(page, builds), v1)

        site.root = v2.path  # the new deployment goes live
        page.reload()
        if when == "takeover":
            assert page.evaluate(TOOK_OVER, v2.version), "the new version never took over"
        else:
            wait_ready(page)
            wait_offline(page, "ready")
            time.sleep(when)

        context.set_offline(True)
        page.reload()
        wait_ready(page)
        assert classify_drawing(page, SHAPES[7]) == "7"
        first = served_version(page, builds)  # v1 if v2 had not finished installing, else v2
        assert complete(caches_hold_only_verified_files(page, builds), builds[first])

        # Online again: the update completes (if it had not) and the next load uses it.
        context.set_offline(False)
        assert page.evaluate(INSTALL_OUTCOME) in ("activated", "none")
        page.reload()
        wait_ready(page)
        wait_offline(page, "ready", v2.version)
        assert MARK in page.content()
        context.set_offline(True)
        page.reload()
        wait_ready(page)
        assert classify_drawing(page, SHAPES[1]) == "1"
        assert served_version(page, builds) == "v2"
        contents = caches_hold_only_verified_files(page, builds)
        assert list(contents) == [f"digitnet-{v2.version}"] and complete(contents, v2)
    finally:
        context.close()


def test_an_update_with_a_stale_file_is_not_installed(browser, site, builds):
    """Version 2 arrives with js/ui.js still version 1's: the update is refused (version 1
    keeps working offline, nothing wrong is cached); once all of version 2 is live, it is
    installed and served offline."""
    v1, v2 = builds["v1"], builds["v2"]
    site.root = v1.path
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(site.url)
        wait_ready(page)
        wait_offline(page, "ready", v1.version)

        site.root = builds["mixed"].path
        page.reload()
        wait_ready(page)
        assert page.evaluate(INSTALL_OUTCOME) == "redundant"
        contents = caches_hold_only_verified_files(page, builds)
        assert "js/ui.js" not in contents.get(f"digitnet-{v2.version}", {})
        context.set_offline(True)
        page.reload()
        wait_ready(page)
        wait_offline(page, "ready", v1.version)
        assert served_version(page, builds) == "v1"
        assert classify_drawing(page, SHAPES[7]) == "7"

        context.set_offline(False)
        site.root = v2.path
        assert page.evaluate(INSTALL_OUTCOME) == "activated"
        page.reload()
        wait_ready(page)
        wait_offline(page, "ready", v2.version)
        context.set_offline(True)
        page.reload()
        wait_ready(page)
        assert served_version(page, builds) == "v2"
        assert classify_drawing(page, SHAPES[1]) == "1"
        caches_hold_only_verified_files(page, builds)
    finally:
        context.close()


def test_a_stale_file_on_a_first_visit_is_not_cached(browser, site, builds):
    """A first visit while js/ui.js is still the old one: the page works online but does
    not claim to work offline, and the stale file is not cached (neither from the page's
    own request nor by the precaching); once the deployment is complete it is."""
    v2 = builds["v2"]
    site.root = builds["mixed"].path
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(site.url)
        wait_ready(page)
        wait_offline(page, "incomplete", v2.version)
        page.reload()  # now controlled: the page's request for js/ui.js goes through the worker
        wait_ready(page)
        wait_offline(page, "incomplete", v2.version)
        contents = caches_hold_only_verified_files(page, builds)
        assert "js/ui.js" not in contents[f"digitnet-{v2.version}"]

        site.root = v2.path
        page.reload()
        wait_ready(page)
        wait_offline(page, "ready", v2.version)
        assert complete(caches_hold_only_verified_files(page, builds), v2)
        context.set_offline(True)
        page.reload()
        wait_ready(page)
        assert served_version(page, builds) == "v2"
        assert classify_drawing(page, SHAPES[7]) == "7"
    finally:
        context.close()
