"""End to end in a real headless Chromium: the simulator page on the real server, as ``make run`` starts it.

The server is ``python -m app.launcher`` (gunicorn + an RQ worker with its scheduler) in development mode on a
fresh instance folder, a SQLite database in it and the test Redis, on a free port. Chromium is Debian's
``chromium`` package driven by Playwright's Python package through ``executable_path``; no browser is ever
downloaded (``make test`` installs the package when it is missing).

The staff stock menu's screens are checked by their shapes (docs/interfaces.md), not words: the demo staff
member reads Setswana.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import closing, suppress
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

import app as app_package
from app.i18n import t
from app.models.consultation import LEVELS

ROOT = Path(app_package.__file__).resolve().parents[1]
START_SECONDS = 90
WAIT_MS = 20_000  # a reply crosses webhook → worker → outbox → worker → console → the page's poll
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
PATIENT = "+26772000002"  # Lesego Tau, English
STAFF = "+26771000001"
STAFF_PIN = "2580"
expect.set_options(timeout=WAIT_MS)  # assertions wait as long as actions do (a loaded CI machine is slow)
# The reply opens with its level's headline (app/i18n/skin_triage.py), whichever level the answers reach.
TRIAGE_LEVELS = re.compile("|".join(re.escape(t(f"skin_result_level_{level}", "en")) for level in LEVELS))


def _free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _up(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 (our own loopback server)
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    """``make run`` in development mode on a fresh instance (its SQLite file and its own embedded Redis, as on a fresh
    machine) and a free port; its base URL. Not the shared test Redis: other tests running meanwhile empty that."""
    instance = tmp_path_factory.mktemp("simulator-instance")
    port = _free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("TWILIO_", "AT_", "TELEGRAM_",
                                                                                  "WHATSAPP_", "SIMULATOR_"))}  # fmt: skip
    env.update(THUSA_ENV="development", INSTANCE_PATH=str(instance), DATABASE_URL=f"sqlite:///{instance / 'thusa.db'}",
               PORT=str(port), HOST="127.0.0.1", WEB_CONCURRENCY="1",
               PUBLIC_BASE_URL="")  # fmt: skip
    env.pop("REDIS_URL", None)
    log = (instance / "launcher.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "app.launcher"], cwd=ROOT, env=env, stdout=log,  # noqa: S603
                               stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_SECONDS
        while not _up(f"{base}/readyz"):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the server did not start:\n{(instance / 'launcher.log').read_text()[-4000:]}")
            time.sleep(0.3)
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator:
    executable = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(executable).exists():
        pytest.fail("Debian's chromium is not installed: `make test` installs it (apt-get install -y chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(server, browser):
    """The simulator page on a desktop-sized screen, after "Reset demo data" (every test starts from the seed)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto(f"{server}/simulator")
    page.get_by_role("button", name="Reset demo data").click()
    expect(page.locator("#notice")).to_contain_text("back to where it started")
    yield page
    context.close()


def _last_from_service(thread):
    return thread.locator("li.bubble.theirs").last


def test_the_patient_replies_to_a_reminder_by_sms_and_sees_the_answer(page, tmp_path):
    page.get_by_label("Patient", exact=True).select_option(PATIENT)
    expect(page.locator("#sms-number")).to_have_text(PATIENT)
    page.get_by_role("button", name="Send due reminders now").click()
    expect(page.locator("#notice")).to_contain_text("Reminder for Lesego Tau")
    thread = page.locator("#sms-thread")
    expect(_last_from_service(thread)).to_contain_text("Reply 1 to confirm")

    page.locator("#sms-text").fill("1")
    page.locator("#sms-form").get_by_role("button", name="Send").click()
    expect(thread.locator("li.bubble.mine").last).to_have_text("1")
    expect(_last_from_service(thread)).to_contain_text("is confirmed")
    expect(thread.locator("li.bubble")).to_have_count(3)
    page.screenshot(path=str(tmp_path / "simulator.png"), full_page=True)


def test_the_patient_walks_the_ussd_menu_and_sees_each_screen(page):
    option = page.get_by_label("Patient", exact=True).locator(f"option[value='{PATIENT}']")
    booked = option.text_content()
    page.get_by_label("Phone number", exact=True).select_option(PATIENT)
    page.get_by_role("button", name=re.compile(r"^Dial ")).click()
    screen = page.locator("#ussd-screen")
    expect(screen).to_contain_text("1 Confirm")
    expect(screen).to_contain_text("3 I cannot come")

    answer = page.locator("#ussd-input")
    answer.fill("2")
    page.locator("#ussd-answer").click()
    expect(screen).to_contain_text("Choose a new time")
    expect(screen).to_contain_text("0 Back")

    answer.fill("1")
    page.locator("#ussd-answer").click()
    expect(screen).to_contain_text("is now on")
    expect(screen).to_contain_text("The session has ended")
    expect(page.locator("#ussd-input")).to_be_disabled()
    # The visit really moved: the patient picker shows another date once the page is read again.
    page.reload()
    expect(page.get_by_label("Patient", exact=True).locator(f"option[value='{PATIENT}']")).not_to_have_text(booked)


def test_the_language_switch_shows_the_page_in_setswana(page):
    page.get_by_role("link", name="Setswana").click()
    expect(page.locator("html")).to_have_attribute("lang", "tn")
    expect(page.get_by_role("button", name="Romela dikgakololo jaanong")).to_be_visible()
    expect(page.get_by_label("Molwetse", exact=True)).to_be_visible()


def test_the_page_fits_a_phone_screen_and_labels_every_control(server, browser):
    context = browser.new_context(viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.goto(f"{server}/simulator")
    expect(page.locator("#sms-thread li")).to_have_count(1)  # the script ran: "No messages yet."
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    unlabelled = page.evaluate(
        "[...document.querySelectorAll('input, select')].filter(e => !e.labels.length).map(e => e.id)"
    )
    assert unlabelled == []
    for phone in ("#sms-phone", "#ussd-phone", "#chat-phone"):
        box = page.locator(phone).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 360, phone
    context.close()


def test_staff_walk_the_stock_menu(page):
    # The demo staff member's language is Setswana: the checks read the screens' shapes (INTERFACES.md), not words.
    # Playwright hands the pattern to JavaScript, which knows the m/s flags but not Python's inline (?ms) groups.
    main_menu = re.compile(r"^1 \S.*^5 \S.*^7 \S", re.M | re.S)
    page.get_by_label("Phone number", exact=True).select_option(STAFF)
    page.get_by_role("button", name=re.compile(r"^Dial ")).click()
    screen = page.locator("#ussd-screen")
    expect(screen).to_contain_text("PIN", timeout=5_000)
    answer = page.locator("#ussd-input")

    def send(text: str) -> None:
        answer.fill(text)
        page.locator("#ussd-answer").click()

    send(STAFF_PIN)
    expect(screen).to_have_text(main_menu, timeout=5_000)
    send("1")  # check stock: "N. <name> <level> <unit>" lines
    expect(screen).to_have_text(re.compile(r"^1\. .+ \d+ \S+$", re.M), timeout=5_000)
    send("00")  # back to the main menu
    expect(screen).to_have_text(main_menu, timeout=5_000)
    send("2")  # receive: choose an item
    expect(screen).to_have_text(re.compile(r"^1\. .+", re.M), timeout=5_000)
    send("1")
    expect(screen).to_have_text(re.compile(r"\d+ \S+"), timeout=5_000)  # "Now <level> <unit>. How many?"
    send("20")
    expect(screen).to_have_text(re.compile(r"1 Ee 2 Nnyaa$"), timeout=5_000)  # the confirmation (Setswana)
    send("1")
    expect(screen).to_contain_text("SMS", timeout=5_000)  # saved, with an SMS receipt on its way
    expect(screen).to_contain_text("The session has ended.")  # an END screen: the page's own note under it


def _jpeg(page, path: Path) -> Path:
    """A real JPEG photo, drawn by the browser itself (no image library is needed for it)."""
    data_url = page.evaluate(
        """() => {
            const canvas = document.createElement("canvas");
            canvas.width = 800; canvas.height = 600;
            const g = canvas.getContext("2d");
            g.fillStyle = "#c68e6c"; g.fillRect(0, 0, 800, 600);
            for (let i = 0; i < 400; i++) {
                g.fillStyle = `rgba(${150 + (i * 37) % 90}, ${60 + (i * 13) % 60}, ${50 + (i * 7) % 40}, 0.6)`;
                g.beginPath(); g.arc((i * 97) % 800, (i * 61) % 600, 4 + (i % 9), 0, 2 * Math.PI); g.fill();
            }
            return canvas.toDataURL("image/jpeg", 0.9);
        }"""
    )
    path.write_bytes(base64.b64decode(data_url.split(",", 1)[1]))
    return path


def test_the_pharmacist_sends_a_photo_and_gets_a_triage_reply(page, tmp_path):
    page.get_by_label("Chat app", exact=True).select_option("whatsapp")
    page.locator("#chat-photo").set_input_files(str(_jpeg(page, tmp_path / "rash.jpg")))
    page.get_by_role("button", name="Send photo").click()
    thread = page.locator("#chat-thread")
    expect(thread.locator("li.bubble.mine .media").last).to_be_visible()
    # Answer every question with its first button until a reply comes without buttons: the triage.
    for _ in range(20):
        last = _last_from_service(thread)
        expect(last).to_be_visible(timeout=WAIT_MS)
        buttons = last.locator("button.quick")
        with suppress(Exception):
            buttons.first.wait_for(timeout=3_000)
        if buttons.count() == 0:
            break
        count = thread.locator("li.bubble").count()
        buttons.first.click()
        expect(thread.locator("li.bubble")).not_to_have_count(count)
        page.wait_for_function(
            "n => document.querySelectorAll('#chat-thread li.bubble').length > n + 1", arg=count, timeout=WAIT_MS
        )
    expect(thread).to_contain_text(TRIAGE_LEVELS, timeout=WAIT_MS)
    expect(thread).to_contain_text(re.compile(r"not a diagnosis|pharmacist", re.IGNORECASE))
    # A second opinion: ask a clinician (unless the loop above already pressed it), and the demo clinician's answer
    # arrives on the phone.
    asked = re.compile(r"will review this consultation|was sent to a clinician")  # asked, or queued on its own
    expect(thread).to_contain_text(re.compile(f"{asked.pattern}|second opinion"), timeout=WAIT_MS)
    if not asked.search(thread.inner_text()):
        # Typed, as on a phone with no buttons left on the offer: the title of the latest choice button answers.
        page.locator("#chat-text").fill("Ask a clinician")
        page.locator("#chat-form").get_by_role("button", name="Send").click()
        expect(thread).to_contain_text("will review this consultation", timeout=WAIT_MS)
    page.get_by_role("button", name="Answer as the clinician").click()
    expect(thread).to_contain_text("a clinician answered", timeout=WAIT_MS)
