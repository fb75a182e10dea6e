"""The import contracts: imports go one way (``workers → bots → app``), services stay free of provider SDKs and of
the HTTP request, and nothing below the entry points imports the REST API.

The contracts themselves are in pyproject.toml (``[tool.importlinter]``); ``make lint`` runs them too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Code that works in any caller's context (a request, a job, the CLI) and so must not read Flask's request.
NO_REQUEST = ("app/services", "app/messaging", "app/models", "app/jobs.py")


def test_the_import_contracts_hold():
    # In a process of its own, as `make lint` runs it: in-process, import-linter's CLI reconfigures logging and
    # disables every logger that exists, which would silence the log assertions of the tests that follow.
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(  # noqa: S603 (the virtualenv's own script, fixed arguments)
        [str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_services_do_not_read_the_http_request():
    offenders = []
    for place in NO_REQUEST:
        path = ROOT / place
        for file in [path] if path.is_file() else sorted(path.rglob("*.py")):
            for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
                imported = (
                    isinstance(node, ast.ImportFrom)
                    and node.module == "flask"
                    and any(alias.name == "request" for alias in node.names)
                )
                read = isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.attr == "request"
                if imported or (read and node.value.id == "flask"):
                    offenders.append(file.relative_to(ROOT).as_posix())
    assert offenders == []
