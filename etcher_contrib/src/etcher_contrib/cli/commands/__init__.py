"""The subcommands: each module has NAME, HELP, add_arguments(parser) and run(args)."""

from __future__ import annotations

from types import ModuleType

from etcher_contrib.cli.commands import (
    check,
    demo,
    export,
    gc,
    import_,
    ls,
    namespaces,
    show,
    stats,
    tree,
)

COMMANDS: list[ModuleType] = [ls, show, tree, export, import_, check, gc, stats, namespaces, demo]
