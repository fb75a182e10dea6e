"""The docs stay true to the code: the generated settings page is current, and local links lead somewhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app import config_docs
from app.config import PROJECT_ROOT, SETTINGS

PAGES = sorted([PROJECT_ROOT / "README.md", *(PROJECT_ROOT / "docs").glob("*.md")])
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_configuration_page_is_generated_from_the_settings_table():
    assert not config_docs.is_stale(), "docs/configuration.md is stale: run `make docs`"


def test_configuration_page_names_every_setting_with_its_default():
    page = config_docs.render()
    for setting in SETTINGS:
        default = f"`{setting.default}`" if setting.default else "empty"
        assert f"| `{setting.name}` | {default} |" in page


def test_check_exits_non_zero_on_a_stale_page(tmp_path, monkeypatch):
    stale = tmp_path / "configuration.md"
    stale.write_text("# Configuration\n", encoding="utf-8")
    monkeypatch.setattr(config_docs, "DOCS_PATH", stale)
    monkeypatch.setattr(config_docs, "PROJECT_ROOT", tmp_path)
    assert config_docs.main(["--check"]) == 1
    assert config_docs.main([]) == 0 and config_docs.main(["--check"]) == 0


def test_readme_stays_short_and_keeps_the_two_commands():
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 150
    assert "make run" in readme and "make test" in readme


def _anchors(page: Path) -> set[str]:
    """The anchors a Markdown viewer makes of a page's headings (lower case, punctuation dropped, spaces to -)."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(encoding="utf-8"), flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(PROJECT_ROOT).as_posix())
def test_local_links_lead_to_files_and_headings_that_exist(page):
    missing = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):
            continue  # web addresses
        path, _, anchor = target.partition("#")
        linked = page.parent / path if path else page
        if not linked.exists() or (anchor and linked.suffix == ".md" and anchor not in _anchors(linked)):
            missing.append(target)
    assert missing == []
