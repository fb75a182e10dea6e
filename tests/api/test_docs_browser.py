"""``/api/v1/docs`` in a real headless Chromium with the network closed: every request that does not go to the
app is refused, and the page must still render every operation of the document, with no request refused, no
script error and no Content-Security-Policy violation.

The app runs in a thread of this process on a free loopback port (the docs read no database). Chromium is Debian's
``chromium`` package driven by Playwright through ``executable_path``, as in tests/simulator/test_browser.py.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright
from werkzeug.serving import make_server

from app import create_app
from tests.conftest import TEST_REDIS_URL

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    app = create_app({"THUSA_ENV": "test", "DATABASE_URL": "sqlite://", "REDIS_URL": TEST_REDIS_URL,
                      "RATELIMIT_ENABLED": False})  # fmt: skip
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)


def test_docs_render_with_the_network_closed(base_url):
    executable = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(executable).exists():
        pytest.fail("Debian's chromium is not installed: `make test` installs it (apt-get install -y chromium)")
    refused: list[str] = []
    problems: list[str] = []

    def only_the_app(route) -> None:
        if route.request.url.startswith(base_url + "/"):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort("internetdisconnected")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.route("**/*", only_the_app)
            page.on("console", lambda message: message.type == "error" and problems.append(message.text))
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.goto(f"{base_url}/api/v1/docs")

            expect(page.locator(".info .title")).to_contain_text("Thusa API", timeout=20_000)
            spec = page.request.get(f"{base_url}/api/v1/openapi.json").json()
            operations = sum(1 for item in spec["paths"].values() for method in item if method != "parameters")
            expect(page.locator(".opblock")).to_have_count(operations)
            login = page.locator(".opblock-post", has=page.locator("[data-path='/api/v1/auth/login']"))
            login.locator(".opblock-summary").click()
            # the document's examples, not placeholders: the demo sign-in and a Botswana number
            expect(login.locator(".opblock-body")).to_contain_text("staff@thusa.example")
            expect(login.locator(".opblock-body")).to_contain_text("+26771000001")
        finally:
            browser.close()

    assert refused == [], refused
    assert problems == [], problems
