"""The served digitnet wheel installs with micropip in Pyodide, as in a notebook.

A blank page (no site code) on a copy of dist/ loads dist's Pyodide, then micropip, then
`micropip.install("<site>/wheels/digitnet-....whl")`, imports digitnet, loads the shipped
MLP and classifies the bundled test digits, exactly as CPython does with the same file.

micropip and packaging are not part of the site: the build keeps them, verified against
pyodide-lock.json, in .cache/pyodide-packages; this test serves them from a temporary copy
of the site only, after checking their sha256 again.
"""
from __future__ import annotations

import json
import shutil
import threading
import urllib.parse

import numpy as np
import pytest

from tools.common import BuildError, sha256_file
from tools.devserver import make_server
from tools.pyodide_packages import package_closure, resolve_package

BLANK_PAGE = '<!doctype html>\n<meta charset="utf-8">\n<title>blank</title>\n' \
             '<script src="pyodide/pyodide.js"></script>\n'

# Runs in the blank page: only Pyodide's JS API (pyimport, calls on Python objects).
INSTALL_AND_CLASSIFY = """async ([wheelUrl, modelUrl]) => {
  const pyodide = await loadPyodide({indexURL: new URL("pyodide/", location.href).href});
  await pyodide.loadPackage("micropip");
  const micropip = pyodide.pyimport("micropip");
  await micropip.install(wheelUrl);
  const digitnet = pyodide.pyimport("digitnet");
  const bytes = new Uint8Array(await (await fetch(modelUrl)).arrayBuffer());
  const model = digitnet.load(pyodide.toPy(bytes));  // a Python memoryview
  const ds = pyodide.pyimport("digitnet.data").load_bundle();
  const first = model.predict_proba(ds.x_test.__getitem__(0).reshape(1, 784)).tolist().toJs()[0];
  return {
    installed: micropip.list().toJs().has("digitnet"),
    predictions: model.predict(ds.x_test).tolist().toJs(),
    firstProbabilities: first,
  };
}"""


@pytest.fixture(scope="module")
def site_with_micropip(dist_dir, tmp_path_factory):
    """A copy of dist/ (symlinks) whose pyodide/ also holds micropip and packaging."""
    lock = json.loads((dist_dir / "pyodide" / "pyodide-lock.json").read_text())
    site = tmp_path_factory.mktemp("micropip-site")
    for entry in dist_dir.iterdir():
        if entry.name != "pyodide":
            (site / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    (site / "pyodide").mkdir()
    for entry in (dist_dir / "pyodide").iterdir():
        (site / "pyodide" / entry.name).symlink_to(entry)
    served = set(json.loads((dist_dir / "build-manifest.json").read_text())["pyodide"]["packages"])
    for name in package_closure(lock, ["micropip"], exclude=served):
        pkg = lock["packages"][name]
        try:  # no sources: only the build's verified cache, never a download from a test
            cached = resolve_package(pkg["file_name"], pkg["sha256"], sources=[])
        except BuildError as e:
            pytest.fail(f"{e}\n(`python3 build.py build` keeps it in .cache/pyodide-packages)",
                        pytrace=False)
        copy = site / "pyodide" / pkg["file_name"]
        shutil.copyfile(cached, copy)
        assert sha256_file(copy) == pkg["sha256"], f"{copy.name} changed while copied"
    (site / "blank.html").write_text(BLANK_PAGE)
    return site


@pytest.fixture(scope="module")
def site_url(site_with_micropip):
    httpd = make_server(site_with_micropip, "127.0.0.1", 0, quiet=True)
    threading.Thread(target=httpd.serve_forever, name="micropip-site", daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def test_served_wheel_installs_with_micropip_and_classifies_like_cpython(browser, dist_dir,
                                                                           site_url):
    import digitnet
    from digitnet import data

    manifest = json.loads((dist_dir / "build-manifest.json").read_text())
    wheel_url = urllib.parse.urljoin(site_url, manifest["wheel"])
    model_url = urllib.parse.urljoin(site_url, manifest["models"]["mlp"])
    context = browser.new_context()
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    try:
        page.goto(site_url + "blank.html")
        got = page.evaluate(INSTALL_AND_CLASSIFY, [wheel_url, model_url])
    finally:
        context.close()

    assert got["installed"]
    model = digitnet.load(dist_dir / "models" / "mlp.npz")
    ds = data.load_bundle()
    want = model.predict(ds.x_test)
    assert np.array_equal(np.array(got["predictions"]), want)
    assert (want == ds.y_test).mean() > 0.9  # the shipped model, not an untrained one
    probs = np.array(got["firstProbabilities"])
    assert probs.shape == (10,) and abs(probs.sum() - 1) < 1e-4
    assert probs.argmax() == ds.y_test[0]
    # Everything came from the local copy of the site: micropip asked no index on the web.
    origin = urllib.parse.urlsplit(site_url)[:2]
    offsite = [u for u in requests if urllib.parse.urlsplit(u)[:2] != origin]
    assert not offsite, offsite
    assert wheel_url in requests and any(u.endswith("/micropip-0.9.0-py3-none-any.whl")
                                         for u in requests)
