"""Where a forwarded request goes (:class:`Upstream`), and result images on another host than the target.

Bria hands out result ``image_url``\\ s on its CDN, not on the API's origin. With
``--rewrite-image-urls`` the proxy rewrites such a URL to ``/bria-mock/proxy/images/<key>``, a key
standing for that URL only (:class:`ForeignImages`: the latest 10,000 are remembered), so the proxy
never fetches a URL a caller chose. A download there is checked under the same safe-fetch rules
as the target (the host resolved, every address public unless ``--allow-private-target``, the
connection pinned to the checked address), carries none of the caller's headers (its
``api_token`` stays with the API), and is streamed, checked, tallied and recorded like a download
from the target.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx
from starlette.concurrency import run_in_threadpool

from mock_server.errors import ImageNotFound, ServerError
from mock_server.proxy.target import check_target, pinned_client
from mock_server.verify_report import RESULT_IMAGE

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

    from mock_server.proxy.forward import ProxyApp

IMAGES_PATH = "/bria-mock/proxy/images/"
MAX_FOREIGN_IMAGES = 10_000


@dataclasses.dataclass(frozen=True)
class Upstream:
    """Where one request is forwarded: the client, the full URL, the endpoint it is checked as, and
    whether the caller's headers go along (never to a host other than the target)."""

    client: httpx.AsyncClient
    url: str
    endpoint: str
    caller_headers: bool = True


class ForeignImages:
    """Image URLs on other hosts that the target handed out, each under a key of the proxy's."""

    def __init__(self, keep: int = MAX_FOREIGN_IMAGES) -> None:
        self._urls: collections.OrderedDict[str, str] = collections.OrderedDict()
        self._keep = keep

    def register(self, url: str) -> str:
        """The proxy path that stands for ``url``."""
        key = hashlib.sha256(url.encode()).hexdigest()[:32]
        self._urls.pop(key, None)
        self._urls[key] = url
        while len(self._urls) > self._keep:
            self._urls.popitem(last=False)
        return IMAGES_PATH + key

    def url_of(self, path: str) -> str | None:
        return self._urls.get(path.removeprefix(IMAGES_PATH))


async def serve_foreign_image(proxy: ProxyApp, scope: Scope, receive: Receive, send: Send) -> None:
    """Forward a download of a registered image URL to its own host, checked like the target."""
    from mock_server.proxy.forward import Forwarding  # (forward imports this module)

    url = proxy.images.url_of(scope["path"])
    if url is None or scope["method"] not in {"GET", "HEAD"}:
        error = ImageNotFound(f"no image the target handed out is at {scope['path']} (unknown or forgotten)")
        await proxy.error_answer(error, scope)(scope, receive, send)
        return
    parts = urlsplit(url)
    try:
        host = await run_in_threadpool(
            check_target, f"{parts.scheme}://{parts.netloc}", allow_private=proxy.options.allow_private_target
        )
    except ValueError as exc:
        refused = ServerError(f"bria-mock proxy: the image URL is refused: {exc}", status_code=502)
        await proxy.error_answer(refused, scope)(scope, receive, send)
        return
    async with pinned_client(host, timeout=proxy.options.timeout_seconds) as client:
        upstream = Upstream(client, url, RESULT_IMAGE, caller_headers=False)
        await Forwarding(proxy, scope, upstream).run(receive, send)
