"""`tinygpt push DIR REPO_ID`: share a model folder on the Hub (see tinygpt.model_repo for what is pushed and how)."""

from __future__ import annotations

import sys

from .card import load_snippet
from .hub import quiet_hub_logging
from .model_repo import push_model


def add_arguments(parser) -> None:
    parser.add_argument("model_dir", metavar="DIR", help="the model folder (train.py's --out-dir, convert-seed's --out)")
    parser.add_argument("repo_id", metavar="REPO_ID", help="Hub repo id, USER/NAME (created if it does not exist)")
    parser.add_argument("--private", action="store_true", help="make the repo private when creating it")
    parser.add_argument("--revision", metavar="BRANCH", default=None,
                        help="push to this branch (created from main if missing) instead of main")
    parser.add_argument("--commit-message", metavar="M", default=None,
                        help="commit title (default: the training step and val loss)")
    parser.add_argument("--onnx", action="store_true",
                        help="add an ONNX export under onnx/ (the folder's own, if it was exported from these weights, "
                        "else a fresh one made for the upload), and say in the card how to run it; needs the onnx "
                        "extra. Without it, a current DIR/onnx/ is pushed too")
    parser.add_argument("--license", metavar="ID", default=None,
                        help="the licence the pushed card declares: a Hub licence id such as mit, apache-2.0, "
                        "cc-by-4.0 or other (default: the one train.py --license recorded, else the card's, else "
                        "unknown)")
    parser.add_argument("--include-training-state", action="store_true",
                        help="also push the resume state (*.pt, *.pth, *.bin, *.pkl, optimizer...), left out by default")
    parser.epilog = ("The folder is not modified: README.md is regenerated as the model card for the upload (keeping "
                     "its sample, command and licence). The Hub is HF_ENDPOINT (default https://huggingface.co); "
                     "the token is HF_TOKEN or the one saved by `hf auth login`.")


def run(args) -> int:
    quiet_hub_logging()
    result = push_model(args.model_dir, args.repo_id, private=args.private, revision=args.revision,
                        commit_message=args.commit_message, include_training_state=args.include_training_state,
                        onnx=args.onnx, license=args.license)
    for message in result.warnings:
        print(f"warning: {message}", file=sys.stderr)
    if result.changed:
        print(f"Pushed {args.model_dir} to {result.repo_id}, branch {result.revision}, commit {result.commit[:8]}: "
              f"{', '.join(result.files)}")
    else:
        print(f"Nothing to push: {result.repo_id}, branch {result.revision}, already has these files "
              f"(commit {result.commit[:8]})")
    if result.left_out:
        print(f"Left out (resume state; --include-training-state pushes it): {', '.join(result.left_out)}")
    print(result.tree_url)
    print()
    print("Load it with:")
    print()
    print(load_snippet(result.repo_id, None if result.revision == "main" else result.revision))
    return 0
