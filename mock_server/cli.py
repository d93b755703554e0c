"""The ``bria-mock`` command (also ``python -m mock_server``)."""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from mock_server.config import ENV_PREFIX, SETTINGS, Setting, Settings
from mock_server.proxy.command import add_proxy_parser, run_proxy
from mock_server.verify import add_verify_parser, run_verify


class _Parser(argparse.ArgumentParser):
    """An argument parser that answers a mistyped option with the closest one it knows."""

    known_options: list[str]

    def error(self, message: str) -> NoReturn:
        unknown = message.removeprefix("unrecognized arguments: ").split()
        if message.startswith("unrecognized arguments: ") and unknown[0].startswith("--"):
            close = difflib.get_close_matches(unknown[0].split("=")[0], getattr(self, "known_options", []), n=1)
            if close:
                message += f" (did you mean {close[0]}?)"
        super().error(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="bria-mock", description="An offline fake of Bria's image-editing API.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve",
        help="start the fake with uvicorn",
        description=f"Start the fake. Every option can also be set as an environment variable {ENV_PREFIX}<NAME>.",
    )
    add_setting_options(serve)
    add_verify_parser(commands)
    add_proxy_parser(commands)
    # Unrecognised options are reported by the top parser: it suggests from every subcommand's.
    parser.known_options = [flag for sub in commands.choices.values() for flag in sub._option_string_actions]
    return parser


def add_setting_options(parser: argparse.ArgumentParser) -> None:
    """One option per setting, generated from the settings' definition (``mock_server.config``)."""
    for setting in SETTINGS:
        parser.add_argument(setting.flag, dest=setting.name, **_option_shape(setting))


def _option_shape(setting: Setting) -> dict[str, Any]:
    help_text = f"{setting.help} (default {setting.default_text}; {setting.env_name})".replace("%", "%%")
    if setting.choices:
        return {"choices": list(setting.choices), "help": help_text}
    shape: dict[str, Any] = {"type": _argument_type(setting), "help": help_text, "metavar": setting.metavar}
    if setting.repeatable:
        shape |= {"action": "append", "type": str, "help": help_text.replace(" (default", ", repeatable (default")}
    return shape


def _argument_type(setting: Setting) -> Callable[[str], Any]:
    def convert(raw: str) -> Any:
        try:
            return setting.parse(raw)
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"{raw!r}: expected {setting.allowed}") from None

    convert.__name__ = setting.name  # argparse names the type in some messages
    return convert


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Environment first, command-line options over it."""
    overrides = {setting.name: getattr(args, setting.name, None) for setting in SETTINGS}
    for setting in SETTINGS:
        value = overrides[setting.name]
        if setting.choices and value is not None:
            overrides[setting.name] = setting.choices[value]
        elif setting.repeatable and value is not None:
            overrides[setting.name] = tuple(value)
    return Settings.from_env(**overrides)


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.command == "verify":
        raise SystemExit(run_verify(args))
    if args.command == "proxy":
        try:
            run_proxy(args)
        except ValueError as exc:  # no target, or a refused one: say why, no traceback
            build_parser().error(str(exc))
        return
    if args.command == "serve":
        from mock_server.server import serve  # uvicorn is imported only when serving
        from mock_server.state_server import NoServerBinary, ServerDidNotStart

        try:
            serve(settings_from_args(args))
        except ValueError as exc:  # a bad setting or rules file: say which, no traceback
            build_parser().error(str(exc))
        except NoServerBinary as exc:  # --workers without --state, and nothing to start: one line says what to do
            _refuse(str(exc), status=2)
        except ServerDidNotStart as exc:  # the private state server's own error, without a traceback
            _refuse(str(exc), status=1)


def _refuse(message: str, *, status: int) -> NoReturn:
    print(f"bria-mock: error: {message}", file=sys.stderr)
    raise SystemExit(status)
