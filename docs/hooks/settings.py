"""MkDocs hook: the settings page's table, rendered at build time from ``mock_server.config``."""

from __future__ import annotations

from typing import Any

from mock_server.settings_table import PLACEHOLDER, markdown_table


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    """Put the generated table where the settings page has its placeholder."""
    if PLACEHOLDER not in markdown:
        return markdown
    return markdown.replace(PLACEHOLDER, markdown_table())
