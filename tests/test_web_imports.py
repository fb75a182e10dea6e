"""The web process (``wsgi.py`` under gunicorn) leaves the big libraries to the code that needs them.

numpy, Pillow and pillow-heif (skin photos, the model) and the provider SDKs (sending, in the workers) are ~40 MB
of a web process that must stay within 200 MB: they are imported where they are used, not by building the app.
A worker imports them when it starts (:func:`workers.runner.preload`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import TEST_REDIS_URL

ROOT = Path(__file__).resolve().parent.parent
LAZY = ("numpy", "PIL", "pillow_heif", "onnxruntime", "telegram", "httpx", "twilio.rest", "africastalking", "requests")

PROBE = """
import json, sys
def loaded():
    return sorted(name for name in sys.argv[1:] if name in sys.modules)
import wsgi  # builds the app as gunicorn does
web = loaded()
from workers.runner import preload
preload()
print(json.dumps({"web": web, "worker": loaded()}))
"""


def test_the_web_app_imports_no_image_library_and_no_provider_sdk_and_a_worker_imports_them(tmp_path):
    env = {key: value for key, value in os.environ.items() if not key.startswith(("TWILIO_", "AT_", "TELEGRAM_"))}
    env.update({"THUSA_ENV": "production", "SECRET_KEY": "s" * 48, "JWT_SECRET_KEY": "j" * 48,
                "INSTANCE_PATH": str(tmp_path), "REDIS_URL": TEST_REDIS_URL, "SIMULATOR_ENABLED": "false"})  # fmt: skip
    result = subprocess.run(  # noqa: S603 (this interpreter, fixed arguments)
        [sys.executable, "-c", PROBE, *LAZY], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.splitlines()[-1])
    assert loaded["web"] == []
    # onnxruntime waits for the model's first use, in the worker too (the model is optional).
    assert loaded["worker"] == sorted(set(LAZY) - {"onnxruntime"})
