"""`tinygpt space SPACE_ID --model REPO_ID`: a Gradio Space running app.py, with the tinygpt package and the bundled
tiny Shakespeare beside it for the Train tab, on a pushed model (see tinygpt.space_repo)."""

from __future__ import annotations

import sys

from .browser_files import RUNTIME_DIR
from .hub import quiet_hub_logging
from .space_repo import BUNDLED_TEXT, MODEL_ID_VARIABLE, create_space


def add_arguments(parser) -> None:
    parser.add_argument("space_id", metavar="SPACE_ID", help="Hub id of the Space, USER/NAME (created if missing)")
    parser.add_argument("--model", metavar="REPO_ID", required=True,
                        help="the tinygpt model repo the Space runs (pushed with `tinygpt push`)")
    parser.add_argument("--private", action="store_true", help="make the Space private when creating it")
    parser.add_argument("--app", metavar="PATH", default=None,
                        help="the file to upload as app.py (default: the app.py of the tinygpt checkout)")
    parser.epilog = ("The hardware is yours to pick in the Space's settings on the Hub (free CPU basic is enough). "
                     "The Hub is HF_ENDPOINT; the token is HF_TOKEN or the one saved by `hf auth login`.")


def run(args) -> int:
    quiet_hub_logging()
    result = create_space(args.space_id, args.model, private=args.private, app_file=args.app)
    for message in result.warnings:
        print(f"warning: {message}", file=sys.stderr)
    top = [f for f in result.files if "/" not in f]
    package = [f for f in result.files if f.startswith("tinygpt/") and f.endswith(".py")]
    text = " and the Train tab's bundled text" if BUNDLED_TEXT in result.files else ""
    runtime = [f for f in result.files if f.startswith(RUNTIME_DIR.as_posix() + "/")]
    browser = f", and {RUNTIME_DIR.as_posix()}/ for visitors' browsers" if runtime else ""
    print(f"Space {result.space_id} runs app.py on {result.model_id} (variable {MODEL_ID_VARIABLE}): "
          f"{', '.join(top)}, and tinygpt/ ({len(package)} Python files: the training engine){text}{browser}")
    print(result.url)
    print("Its hardware is your choice, in the Space's settings on the Hub (CPU basic is enough for a tiny model).")
    return 0
