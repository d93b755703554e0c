"""The ``bria-mock proxy`` subcommand: its options and how it runs."""

from __future__ import annotations

import argparse
from typing import Any

from mock_server.config import parse_count, parse_port, parse_seconds
from mock_server.proxy.options import DEFAULT_MAX_CHECK_BYTES, ProxyOptions


def add_proxy_parser(commands: Any) -> None:
    """``bria-mock proxy --target URL ...``."""
    proxy = commands.add_parser(
        "proxy",
        help="forward to a Bria API (or a fake), checking and recording the traffic",
        description="Forward every API request to --target, check requests and answers against schemas/, "
        "keep a live tally at GET /bria-mock/proxy, and optionally record the exchanges.",
    )
    proxy.add_argument(
        "--target", required=True, metavar="URL", help="the service's origin, e.g. https://engine.prod.bria-api.com"
    )
    proxy.add_argument("--host", default="127.0.0.1", metavar="HOST", help="interface to listen on (default 127.0.0.1)")
    proxy.add_argument("--port", type=parse_port, default=8010, metavar="N", help="port to listen on (default 8010)")
    proxy.add_argument(
        "--allow-private-target",
        action="store_true",
        help="allow a target on a loopback, private or other non-public address (a fake on this machine)",
    )
    proxy.add_argument(
        "--strict", action="store_true", help="answer a contract violation with an error instead of passing it on"
    )
    proxy.add_argument("--record", default="", metavar="DIR", help="record the exchanges to DIR (the recording format)")
    proxy.add_argument(
        "--rewrite-image-urls",
        action="store_true",
        help="also rewrite result image_url values to go through the proxy (on the target's origin or a CDN's)",
    )
    proxy.add_argument(
        "--max-check-bytes",
        type=parse_count,
        default=DEFAULT_MAX_CHECK_BYTES,
        metavar="N",
        help="bodies up to N bytes are read whole and checked; larger ones stream unchecked "
        f"(default {DEFAULT_MAX_CHECK_BYTES})",
    )
    proxy.add_argument(
        "--timeout", type=parse_seconds, default=120.0, metavar="S", help="seconds to wait for the target (default 120)"
    )


def options_from_args(args: argparse.Namespace) -> ProxyOptions:
    return ProxyOptions(
        target=args.target,
        host=args.host,
        port=args.port,
        allow_private_target=args.allow_private_target,
        strict=args.strict,
        record=args.record,
        rewrite_image_urls=args.rewrite_image_urls,
        max_check_bytes=args.max_check_bytes,
        timeout_seconds=args.timeout,
    )


def run_proxy(args: argparse.Namespace) -> None:
    """Serve the proxy until Ctrl-C; ValueError (no target, a refused one) before listening."""
    from mock_server.proxy.server import serve_proxy  # uvicorn is imported only when serving

    serve_proxy(options_from_args(args))
