"""The ``bria-mock`` command (also ``python -m mock_server``)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from mock_server.config import ENV_PREFIX, Settings
from mock_server.verify import add_verify_parser, run_verify


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bria-mock", description="An offline fake of Bria's image-editing API.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve",
        help="start the fake with uvicorn",
        description=f"Start the fake. Every option can also be set as an environment variable {ENV_PREFIX}<NAME>.",
    )
    serve.add_argument("--host", help="interface to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8000)")
    serve.add_argument(
        "--public-url", help="base of the status_url and image_url handed out (default: the request's Host)"
    )
    serve.add_argument(
        "--token",
        action="append",
        dest="tokens",
        metavar="T",
        help="accept only this api_token (repeatable; default: any non-empty token)",
    )
    serve.add_argument("--progress-polls", type=int, help="status polls a job answers IN_PROGRESS (default 1)")
    serve.add_argument("--progress-seconds", type=float, help="seconds a job stays IN_PROGRESS at least (default 0)")
    serve.add_argument("--job-ttl", type=float, dest="job_ttl_seconds", help="seconds a job is kept (default 3600)")
    serve.add_argument("--max-jobs", type=int, help="jobs kept at most; the oldest expire first (default 10000)")
    serve.add_argument(
        "--rmbg-webp",
        choices=["accept", "reject"],
        help="whether remove_background accepts WEBP input (default accept)",
    )
    serve.add_argument("--rules", dest="rules_file", metavar="FILE", help="JSON file of fault rules loaded at start")
    serve.add_argument(
        "--rate-limit", help="requests per minute per token and endpoint: free, payg, enterprise, a number, or off"
    )
    serve.add_argument("--admin-token", help="require this X-Bria-Mock-Admin-Token on the /bria-mock/ controls")
    add_verify_parser(commands)
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Environment first, command-line options over it."""
    overrides = {key: value for key, value in vars(args).items() if key not in {"command", "rmbg_webp"}}
    if args.rmbg_webp is not None:
        overrides["rmbg_accept_webp"] = args.rmbg_webp == "accept"
    if overrides.get("tokens") is not None:
        overrides["tokens"] = tuple(overrides["tokens"])
    return Settings.from_env(**overrides)


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.command == "verify":
        raise SystemExit(run_verify(args))
    if args.command == "serve":
        from mock_server.server import serve  # uvicorn is imported only when serving

        try:
            serve(settings_from_args(args))
        except ValueError as exc:  # a bad setting or rules file: say which, no traceback
            build_parser().error(str(exc))
