"""The `tinygpt` command: one subcommand per module, each with `add_arguments(parser)` and `run(args)`.

The list of subcommands is `tinygpt_cli.COMMANDS` (the console script's front door, a module beside this package
that answers `tinygpt --help` without importing it). Only the chosen subcommand's module is imported: its
arguments are added to its parser, and it runs. (`tinygpt_cli` is imported when the command runs, not with this
module: a Space's copy of the package has no console script, and every module of it must import.)
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .common import OneLineArgumentParser, one_line, quiet_libraries


def chosen_command(argv: list[str]) -> str | None:
    """The subcommand argv names: its first word that is not an option (the top level has only -h)."""
    return next((arg for arg in argv if not arg.startswith("-")), None)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command line, with the arguments of `command` only (default: of every subcommand)."""
    from tinygpt_cli import COMMANDS, DESCRIPTION, PROG, add_commands

    parser = OneLineArgumentParser(prog=PROG, description=DESCRIPTION)
    for name, sub in add_commands(parser).items():
        if command is None or name == command:
            importlib.import_module(COMMANDS[name][0]).add_arguments(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    quiet_libraries()  # progress bars for loading a 1 MB file would drown the text we stream
    from tinygpt_cli import COMMANDS

    command = chosen_command(argv)
    # An unknown word is refused by argparse, naming the choices; no module to import for it.
    args = build_parser(command if command in COMMANDS else "").parse_args(argv)
    try:
        return importlib.import_module(args.module).run(args)
    except (ValueError, OSError) as err:  # bad input: one clear line, no traceback
        print(f"tinygpt {args.command}: error: {one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
