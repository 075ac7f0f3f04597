"""The `tinygpt` command: one subcommand per module, each with `add_arguments(parser)` and `run(args)`.

It is a module of its own, outside the `tinygpt` package, because importing the package registers the model with
transformers' Auto classes, which loads torch and transformers: about 5 s of CPU, 19 s on a busy machine, before
a word of help. Listing the subcommands needs none of that, so `tinygpt --help` is answered here without it;
any other command imports the package and only the chosen subcommand's module: its arguments are added to its
parser, and it runs. `python -m tinygpt.cli` is the same command (a Space's copy of the package has no console
script, so that module imports this one only when it runs).

A subcommand is one line in COMMANDS: its name, the module that has its `add_arguments(parser)` and `run(args)`,
and its one-line help.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module, one-line help)
COMMANDS = {
    "generate": ("tinygpt.generate", "stream text from a model folder or Hub repo"),
    "evaluate": ("tinygpt.evaluate", "loss and bits per character of a model on a held-out text"),
    "convert-seed": ("tinygpt.convert", "turn a state_dict of the blog series' GPT into a tinygpt folder"),
    "push": ("tinygpt.push", "share a model folder on the Hugging Face Hub, with a fresh model card"),
    "space": ("tinygpt.space", "make a Gradio Space that runs the demo app on a Hub model"),
    "export": ("tinygpt.export", "export a model for other runtimes: `tinygpt export onnx MODEL`"),
}
PROG = "tinygpt"
DESCRIPTION = "A tiny character-level GPT for the Hugging Face ecosystem."
HELP_FLAGS = ("-h", "--help")


def add_commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Every subcommand's parser, with its help but not yet its arguments (those need its module)."""
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands = {}
    for name, (module, help_text) in COMMANDS.items():
        commands[name] = sub.add_parser(name, help=help_text, description=help_text)
        commands[name].set_defaults(module=module)
    return commands


def chosen_command(argv: list[str]) -> str | None:
    """The subcommand argv names: its first word that is not an option (the top level has only -h)."""
    return next((arg for arg in argv if not arg.startswith("-")), None)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command line, with the arguments of `command` only (default: of every subcommand)."""
    from tinygpt.common import OneLineArgumentParser  # imports the package: torch and transformers

    parser = OneLineArgumentParser(prog=PROG, description=DESCRIPTION)
    for name, sub in add_commands(parser).items():
        if command is None or name == command:
            importlib.import_module(COMMANDS[name][0]).add_arguments(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    if len(argv) == 1 and argv[0] in HELP_FLAGS:  # the overview: nothing to import
        parser = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION)
        add_commands(parser)
        parser.print_help()
        return 0
    from tinygpt.common import one_line, quiet_libraries

    quiet_libraries()  # progress bars for loading a 1 MB file would drown the text we stream
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
