"""The inspector: a page at ``/bria-mock/ui`` that shows what the fake saw and made.

Plain HTML, CSS and JavaScript under ``static/`` (shipped in the wheel, no build step, nothing
loaded from elsewhere), and the read-only routes the page reads beside the admin API's own:
exchanges in pages, one exchange with its input images, and the jobs.
"""

from __future__ import annotations

from mock_server.inspector.routes import ROUTES

__all__ = ["ROUTES"]
