"""bria-mock: an offline fake of Bria's v2 image-editing API, with a contract-test kit."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Settings", "__version__", "create_app"]


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
