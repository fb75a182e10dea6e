"""The integrator's kit (docs/integrating.md), run by clients we did not write.

- ``make mock``: Prism serves the API document and answers with its examples, with no database or Redis.
- ``make postman``: docs/thusa.postman_collection.json is what the converter and tools/postman.py make from the
  document today, and newman runs it against ``make run`` (the launcher on the embedded default, with its demo data):
  every operation of the document is called at least once and gets the answer the collection expects.

The Node tools come from tools/node/package-lock.json (``make test`` installs them with ``npm ci``); nothing is
downloaded here. Each server starts once for the module.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from app import create_app
from tests.conftest import TEST_REDIS_URL

ROOT = Path(__file__).resolve().parents[1]
NODE_BIN = ROOT / "tools" / "node" / "node_modules" / ".bin"
START_SECONDS = 90
CONVERTER_OPTIONS = (
    "folderStrategy=Paths,parametersResolution=Example,enableOptionalParameters=false"  # as make postman
)


def _free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _call(url: str, method: str = "GET", body: dict | None = None, token: str | None = None) -> tuple[int, object]:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310 (loopback)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 (our own loopback server)
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def _tool(name: str) -> str:
    path = NODE_BIN / name
    if not path.exists():
        pytest.fail(f"{path} is missing: `make node-tools` installs the pinned Node tools (`make test` does it too)")
    return str(path)


def _stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> tuple[dict, Path]:
    """The API document (as ``make openapi`` writes it) and its file."""
    app = create_app({"THUSA_ENV": "test", "DATABASE_URL": "sqlite://", "REDIS_URL": TEST_REDIS_URL})
    document = app.test_client().get("/api/v1/openapi.json").get_json()
    path = tmp_path_factory.mktemp("kit") / "openapi.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return document, path


@pytest.fixture(scope="module")
def mock(spec, tmp_path_factory) -> Iterator[str]:
    """``make mock`` on a free port: Prism serving the document."""
    port = _free_port()
    log_path = tmp_path_factory.mktemp("mock") / "prism.log"
    log = log_path.open("wb")
    process = subprocess.Popen([_tool("prism"), "mock", "--host", "127.0.0.1", "--port", str(port), str(spec[1])],  # noqa: S603
                               cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                               env={**os.environ, "SCARF_ANALYTICS": "false"})  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                _call(f"{base}/api/v1/triage/questions")
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the mock server did not start:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.3)
        yield base
    finally:
        _stop(process)
        log.close()


def test_mock_server_answers_with_the_documents_examples(mock, spec):
    schemas = spec[0]["components"]["schemas"]

    assert _call(f"{mock}/api/v1/clinics", token="any") == (200, schemas["ClinicPage"]["example"])
    login = schemas["Login"]["example"]
    assert _call(f"{mock}/api/v1/auth/login", "POST", login) == (200, schemas["TokenPair"]["example"])
    status, body = _call(f"{mock}/api/v1/appointments", "POST", schemas["AppointmentCreate"]["example"], token="any")
    assert (status, body) == (201, schemas["Appointment"]["example"])
    assert body["patient_phone"].startswith("+267") and body["local_datetime"].endswith("+02:00")
    # a protected operation without a token answers like the API: 401
    assert _call(f"{mock}/api/v1/stock/low")[0] == 401


@pytest.fixture(scope="module")
def collection(spec, tmp_path_factory) -> Path:
    """``make postman`` into a temporary folder: the converter, then tools/postman.py."""
    out = tmp_path_factory.mktemp("postman")
    converted = out / "converted.json"
    subprocess.run([_tool("openapi2postmanv2"), "-s", str(spec[1]), "-o", str(converted), "-p",  # noqa: S603
                    "-O", CONVERTER_OPTIONS], cwd=ROOT, check=True, capture_output=True)  # fmt: skip
    subprocess.run([sys.executable, "tools/postman.py", str(converted), str(spec[1]), str(out)], cwd=ROOT,  # noqa: S603
                   check=True, capture_output=True)  # fmt: skip
    return out


def test_the_collection_in_docs_is_up_to_date(collection):
    for name in ("thusa.postman_collection.json", "thusa.postman_environment.json"):
        fresh = json.loads((collection / name).read_text(encoding="utf-8"))
        kept = json.loads((ROOT / "docs" / name).read_text(encoding="utf-8"))
        assert kept == fresh, f"docs/{name} is stale: run `make postman`"


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    """``make run`` in development mode on a fresh instance (SQLite, its own embedded Redis, the demo data)."""
    instance = tmp_path_factory.mktemp("kit-instance")
    port = _free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("TWILIO_", "AT_", "TELEGRAM_",
                                                                                  "WHATSAPP_", "SIMULATOR_"))}  # fmt: skip
    env.update(THUSA_ENV="development", INSTANCE_PATH=str(instance), DATABASE_URL=f"sqlite:///{instance / 'thusa.db'}",
               PORT=str(port), HOST="127.0.0.1", WEB_CONCURRENCY="1", PUBLIC_BASE_URL="")  # fmt: skip
    env.pop("REDIS_URL", None)
    log = (instance / "launcher.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "app.launcher"], cwd=ROOT, env=env, stdout=log,  # noqa: S603
                               stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                if _call(f"{base}/readyz")[0] == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the server did not start:\n{(instance / 'launcher.log').read_text()[-4000:]}")
            time.sleep(0.3)
        yield base
    finally:
        _stop(process)
        log.close()


def test_newman_runs_every_operation_of_the_collection_against_make_run(server, spec, collection, tmp_path):
    report = tmp_path / "newman.json"
    result = subprocess.run(  # noqa: S603
        [_tool("newman"), "run", str(collection / "thusa.postman_collection.json"),
         "-e", str(collection / "thusa.postman_environment.json"), "--env-var", f"baseUrl={server}",
         "--reporters", "cli,json", "--reporter-json-export", str(report), "--reporter-cli-no-banner",
         "--timeout-request", "20000"],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    run = json.loads(report.read_text(encoding="utf-8"))["run"]

    failures = [f"{failure['source']['name']}: {failure['error']['message']}" for failure in run["failures"]]
    assert failures == [], "\n".join(failures) + "\n" + result.stdout[-3000:]
    assert result.returncode == 0, result.stdout[-3000:]
    operations = {f"{method.upper()} {path}" for path, item in spec[0]["paths"].items() for method in item
                  if method != "parameters"}  # fmt: skip
    called = {execution["item"]["name"] for execution in run["executions"]}
    assert operations - called == set(), "operations the collection never calls"
    assert run["stats"]["assertions"]["total"] >= len(operations)
