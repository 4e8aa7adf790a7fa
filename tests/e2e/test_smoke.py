"""The browser fixtures work: dist/index.html loads from the local server in Chromium."""


def test_index_loads_with_a_title(page, base_url):
    response = page.goto(base_url)
    assert response is not None and response.ok, response and response.status
    assert page.title().strip(), "index.html has an empty <title>"
    assert page.requests and page.requests[0] == base_url
    assert page.offsite_requests() == []
