"""`python -m tinygpt.cli ...`: the `tinygpt` command, whose code is `tinygpt_cli` beside this package (it answers
`tinygpt --help` without importing the package). It is imported when the command runs, not with this module: a
Space's copy of the package has no `tinygpt_cli`, and every module of the package must import there."""

from __future__ import annotations

import argparse
import sys


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command line, with the arguments of `command` only (default: of every subcommand)."""
    from tinygpt_cli import build_parser as command_line

    return command_line(command)


def main(argv: list[str] | None = None) -> int:
    from tinygpt_cli import main as tinygpt_command

    return tinygpt_command(argv)


if __name__ == "__main__":
    sys.exit(main())
