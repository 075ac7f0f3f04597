"""The `tinygpt` command's front door: the list of subcommands, and `tinygpt --help` answered at once.

It is a module of its own, outside the `tinygpt` package, because importing the package registers the model with
transformers' Auto classes, which loads torch and transformers: about 5 s of CPU, 19 s on a busy machine, before
a word of help. Listing the subcommands needs none of that, so `tinygpt --help` is answered here; everything else
goes to `tinygpt.cli`, which imports only the chosen subcommand's module.

A subcommand is one line in COMMANDS: its name, the module that has its `add_arguments(parser)` and `run(args)`,
and its one-line help.
"""

from __future__ import annotations

import argparse
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


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    if len(argv) == 1 and argv[0] in HELP_FLAGS:  # the overview: nothing to import
        parser = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION)
        add_commands(parser)
        parser.print_help()
        return 0
    from tinygpt.cli import main as run_command  # a subcommand (or a mistake, said in tinygpt's one-line style)

    return run_command(argv)


if __name__ == "__main__":
    sys.exit(main())
