"""bria-mock: an offline fake of Bria's remove_background and replace_background API."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Settings", "__version__", "create_app"]


def _checkout_layout() -> None:
    """Import a source checkout the way the wheel is laid out.

    The wheel maps the top-level folders ``fixtures/`` and ``contract_tests/`` under this
    package (see pyproject.toml). In a checkout or an editable install they sit beside it;
    adding the checkout to this package's path makes ``mock_server.fixtures`` resolve there too.
    """
    package = os.path.dirname(os.path.abspath(__file__))
    checkout = os.path.dirname(package)
    if not os.path.isdir(os.path.join(package, "fixtures")) and os.path.isfile(
        os.path.join(checkout, "fixtures", "plugin.py")
    ):
        __path__.append(checkout)


_checkout_layout()

if TYPE_CHECKING:
    from mock_server.app import create_app
    from mock_server.config import Settings


def __getattr__(name: str) -> Any:
    # Lazy: `import mock_server` stays cheap (the CLI and the pytest plugin import it early).
    if name == "create_app":
        from mock_server.app import create_app

        return create_app
    if name == "Settings":
        from mock_server.config import Settings

        return Settings
    raise AttributeError(name)
