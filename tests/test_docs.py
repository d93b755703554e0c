"""The documentation site: generated pages show every setting, and CI runs what the README says."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from mock_server.config import SETTINGS

ROOT = Path(__file__).resolve().parent.parent
# The docs live in a clone, not in the package: from an unpacked sdist there is nothing to check.
pytestmark = pytest.mark.skipif(not (ROOT / "mkdocs.yml").is_file(), reason="no docs site beside the tests")


def load_hook(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"docs_hook_{name}", ROOT / "docs" / "hooks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_settings_page_shows_every_setting_its_option_variable_and_default() -> None:
    source = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")

    page = load_hook("settings").on_page_markdown(source, page=None)

    for setting in SETTINGS:
        row = next(line for line in page.splitlines() if line.startswith(f"| `{setting.name}` |"))
        assert setting.flag in row and setting.env_name in row and setting.default_text in row, row


def test_both_hooks_are_registered_in_the_site() -> None:
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")

    assert "docs/hooks/settings.py" in config and "docs/hooks/changelog.py" in config
    assert "strict: true" in config


def test_the_changelog_page_shows_the_changelog() -> None:
    source = (ROOT / "docs" / "changelog.md").read_text(encoding="utf-8")

    page = load_hook("changelog").on_page_markdown(source, page=None)

    assert "## [Unreleased]" in page and "<!--" not in page


def test_ci_runs_the_readme_test_command_word_for_word_and_builds_the_docs() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    tests_section = readme[readme.index("## Tests") :]
    command = tests_section.split("```bash\n", 1)[1].split("\n```", 1)[0]

    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()

    assert command in ci
    assert 'pip install ".[docs]" && mkdocs build --strict' in "\n".join(ci)
