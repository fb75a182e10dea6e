"""The phone simulator at ``/simulator``: every Thusa conversation in a browser, on the embedded default.

Three phones side by side (a patient's SMS phone, a USSD dialer, a pharmacist's chat) speak for the demo numbers
only. What they send goes through the real webhooks in each provider's own signed payload, and what they show is
what the console sender sent, read from the message log. On by default in development (``SIMULATOR_ENABLED``
empty); off in test and production unless ``SIMULATOR_ENABLED=true``. When off, the blueprint is not registered
and every ``/simulator`` URL is a 404.
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the simulator's blueprint when ``SIMULATOR_ENABLED`` is on."""
    if not app.config.get("SIMULATOR_ENABLED"):
        return
    from bots.simulator.views import bp  # it loads httpx and the twilio SDK: not in a process that has no simulator

    app.register_blueprint(bp)
