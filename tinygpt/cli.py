"""The `tinygpt` command: one subcommand per module, each with `add_arguments(parser)` and `run(args)`."""

from __future__ import annotations

import argparse
import importlib
import sys

from .common import OneLineArgumentParser, one_line, quiet_libraries

# subcommand -> (module, one-line help)
COMMANDS = {
    "generate": ("tinygpt.generate", "stream text from a model folder or Hub repo"),
    "evaluate": ("tinygpt.evaluate", "loss and bits per character of a model on a held-out text"),
    "convert-seed": ("tinygpt.convert", "turn a state_dict of the blog series' GPT into a tinygpt folder"),
    "push": ("tinygpt.push", "share a model folder on the Hugging Face Hub, with a fresh model card"),
    "space": ("tinygpt.space", "make a Gradio Space that runs the demo app on a Hub model"),
    "export": ("tinygpt.export", "export a model for other runtimes: `tinygpt export onnx MODEL`"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(prog="tinygpt", description="A tiny character-level GPT for the Hugging Face ecosystem.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        importlib.import_module(module).add_arguments(command)
        command.set_defaults(module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    quiet_libraries()  # progress bars for loading a 1 MB file would drown the text we stream
    args = build_parser().parse_args(argv)
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
