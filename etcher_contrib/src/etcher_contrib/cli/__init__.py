"""The ``etcher`` command line tool: look inside a store, move JSON in and out, repair it.

``main()`` is the console script (``etcher``) and ``python -m etcher_contrib``.
Every failure is one line on stderr and a non-zero exit code; ``--debug``
shows the traceback instead. Exit codes: 0 success, 1 problems found (check)
or declined, 2 error, 130 interrupted, 141 the reader of stdout went away.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from etcher_contrib.cli.errors import BROKEN_PIPE, FAILED, INTERRUPTED, CLIError

__all__ = ["build_parser", "main"]


def _global_options(parser: argparse.ArgumentParser, *, inherit: bool) -> None:
    # Given on the subcommand too (``etcher export URL --debug``); there the default is
    # SUPPRESS so an option given before the subcommand is not overwritten by a default.
    default = argparse.SUPPRESS if inherit else None
    parser.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS if inherit else False,
        help="show the full traceback of an error",
    )
    progress = parser.add_mutually_exclusive_group()
    progress.add_argument(
        "--progress",
        dest="progress",
        action="store_const",
        const=True,
        default=default,
        help="always show progress bars (default: only on a terminal)",
    )
    progress.add_argument(
        "--no-progress",
        dest="progress",
        action="store_const",
        const=False,
        default=default,
        help="never show progress bars",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``etcher`` command."""
    return _build()[0]


def _build() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    from etcher import __version__
    from etcher_contrib.cli.commands import COMMANDS

    parser = argparse.ArgumentParser(
        prog="etcher",
        description="Look inside an etcher store, export and import JSON, check and repair it.",
        epilog=(
            "PATH is keys joined by '/': person/tags/0. 'etcher COMMAND --help' lists a "
            "command's options. The user guide is at https://pypi.org/project/etcher/ and, "
            "for the Python API, in 'python -m pydoc etcher.DB'."
        ),
    )
    parser.add_argument("--version", action="version", version=f"etcher {__version__}")
    _global_options(parser, inherit=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    commands = {}
    for module in COMMANDS:
        cmd = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(cmd)
        _global_options(cmd, inherit=True)
        cmd.set_defaults(run=module.run, command=module.NAME)
        commands[module.NAME] = cmd
    return parser, commands


def _parse(argv: list[str]) -> argparse.Namespace:
    """Parse the command line, options and positionals in any order.

    Plain argparse binds an optional positional (``ls URL [PATH]``) before it
    sees later options, so ``etcher ls URL --json person`` would fail; each
    subcommand is therefore parsed with ``parse_intermixed_args``.
    """
    parser, commands = _build()
    index = next((i for i, arg in enumerate(argv) if not arg.startswith("-")), None)
    leading = argv[:index] if index is not None else argv
    if index is None or argv[index] not in commands or {"-h", "--help", "--version"} & set(leading):
        return parser.parse_args(argv)  # help, version, or a usage error
    top = argparse.Namespace(debug=False, progress=None)
    pre = argparse.ArgumentParser(prog="etcher", add_help=False)
    _global_options(pre, inherit=False)
    pre.parse_args(leading, namespace=top)
    return commands[argv[index]].parse_intermixed_args(argv[index + 1 :], namespace=top)


def _message(exc: BaseException) -> str:
    # KeyError's str() is the repr of its argument; the text itself reads better.
    if isinstance(exc, KeyError) and len(exc.args) == 1 and isinstance(exc.args[0], str):
        return exc.args[0]
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``etcher`` command line; return the exit code."""
    args = _parse(list(sys.argv[1:] if argv is None else argv))
    if (sys.stdout.encoding or "").lower().replace("-", "") != "utf8":
        # A listing must not die on a key the terminal cannot show: escape it instead.
        sys.stdout.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
    try:
        code: int = args.run(args)
        sys.stdout.flush()
        return code
    except KeyboardInterrupt:
        if args.debug:
            raise
        # Every write is one atomic unit, so an interrupted command left either the old
        # state or the new one behind, never a mix.
        print(
            "etcher: interrupted; the store holds either the old or the new state", file=sys.stderr
        )
        return INTERRUPTED
    except BrokenPipeError:
        # The reader went away (``etcher export URL | head``): stop quietly, and keep
        # Python from complaining again while it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return BROKEN_PIPE
    except CLIError as exc:
        if args.debug:
            raise
        print(f"etcher: error: {exc}", file=sys.stderr)
        return exc.code
    except Exception as exc:
        if args.debug:
            raise
        from etcher.errors import EtcherError

        known = isinstance(exc, (EtcherError, OSError, LookupError, TypeError, ValueError))
        hint = "" if known else f" ({type(exc).__name__}; run with --debug for the traceback)"
        print(f"etcher: error: {_message(exc)}{hint}", file=sys.stderr)
        return FAILED
