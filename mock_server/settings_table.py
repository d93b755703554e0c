"""The settings as a Markdown table, rendered from their single definition (``mock_server.config``).

The documentation's settings page is built from this at build time (``docs/hooks/settings.py``),
so names, defaults, options and variables there never drift from the code.
"""

from __future__ import annotations

from mock_server.config import SETTINGS, Setting

PLACEHOLDER = "<!-- settings-table -->"


def markdown_table() -> str:
    """One row per setting: name, ``bria-mock serve`` option, variable, default, allowed form, meaning."""
    rows = ["| setting | option | variable | default | allowed | meaning |", "|---|---|---|---|---|---|"]
    rows += [_row(setting) for setting in SETTINGS]
    return "\n".join(rows) + "\n"


def _row(setting: Setting) -> str:
    option = (
        f"`{setting.flag} {setting.metavar}`"
        if not setting.choices
        else f"`{setting.flag} {'|'.join(setting.choices)}`"
    )
    if setting.repeatable:
        option += " (repeatable)"
    default = setting.default_text if " " in setting.default_text else f"`{setting.default_text}`"
    cells = [f"`{setting.name}`", option, f"`{setting.env_name}`", default]
    cells += [setting.allowed, setting.help]
    return "| " + " | ".join(_cell(cell) for cell in cells) + " |"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")
