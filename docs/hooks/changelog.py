"""MkDocs hook: the changelog page shows ``CHANGELOG.md`` from the repository's root, kept in one place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

PLACEHOLDER = "<!-- changelog -->"
CHANGELOG = Path(__file__).resolve().parents[2] / "CHANGELOG.md"


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    """Put the changelog's entries (everything below its title) where the page has its placeholder."""
    if PLACEHOLDER not in markdown:
        return markdown
    entries = CHANGELOG.read_text(encoding="utf-8").split("\n", 1)[1]
    return markdown.replace(PLACEHOLDER, entries)
