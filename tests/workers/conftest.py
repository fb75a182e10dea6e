"""Fixtures the send tests share: an environment that cannot steer a client away from the fakes, and fake Twilio."""

from __future__ import annotations

import os

import pytest

from tests.fakes.twilio import FakeTwilio

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "tw-auth-token-9f8e7d6c5b4a"
# Environment variables that could steer a client or a child process away from the fakes.
STEERING = ("TWILIO_", "AT_", "TELEGRAM_", "WHATSAPP_", "SMS_", "SEND_", "PUBLIC_BASE_URL", "HTTP_PROXY",
            "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")  # fmt: skip


@pytest.fixture
def clean_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith(STEERING):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
def twilio(clean_env):
    with FakeTwilio(ACCOUNT_SID, AUTH_TOKEN) as fake:
        yield fake
    assert fake.violations == []  # every request the client made is one Twilio's spec allows


@pytest.fixture
def app_for_fakes(shared_app):
    """This test's app with these settings, pointed at this test's fakes.

    The fakes listen on a new port in each test, so their URLs (the ``*_API_BASE_URL`` settings, read at each send)
    are set on the app handed out rather than built into it: one app per process serves every test with the same
    other settings, instead of an app built for each test.
    """

    def get(**settings):
        urls = {name: settings.pop(name) for name in [name for name in settings if name.endswith("_API_BASE_URL")]}
        application = shared_app(**settings)
        application.config.update(urls)
        return application

    return get
