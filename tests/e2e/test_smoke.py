"""The browser fixtures work: dist/index.html loads from the local server in Chromium."""


def test_index_loads_with_a_title(page, base_url):
    response = page.goto(base_url)
    assert response is not None and response.ok, response and response.status
    assert page.title().strip(), "index.html has an empty <title>"
    assert page.requests and page.requests[0] == base_url
    assert page.offsite_requests() == []


def test_offsite_requests_are_seen_even_from_a_worker(page, base_url):
    """Negative control for the 'no request leaves the origin' checks: a worker's fetch to
    another host must show up in page.offsite_requests() (and is refused by the proxy)."""
    # A page of the site's origin without the site's Content-Security-Policy, which would
    # refuse both the blob: worker and the off-site fetch before any request is made.
    page.route("**/csp-free-probe.html", lambda route: route.fulfill(
        body="<!doctype html><title>probe</title>", content_type="text/html"))
    page.goto(base_url + "csp-free-probe.html")
    page.evaluate("""() => new Promise((resolve, reject) => {
        setTimeout(() => reject(new Error("the worker did not answer")), 30000);
        const src = 'fetch("http://offsite.invalid/probe.js").catch(() => 0)' +
                    '.finally(() => postMessage("done"));';
        const w = new Worker(URL.createObjectURL(new Blob([src], {type: "text/javascript"})));
        w.onmessage = () => resolve();
    })""")
    page.wait_for_timeout(200)
    assert "http://offsite.invalid/probe.js" in page.offsite_requests()
