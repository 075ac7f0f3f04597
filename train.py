"""Train a character-level GPT on any text: `python train.py --help`.

With no arguments this is the blog series' training run (its hyper-parameters, tiny Shakespeare, 3000 steps)
and writes a Hugging Face model folder to `out/`. Several processes: `torchrun --nproc-per-node N train.py ...`
or `accelerate launch train.py ...`. The logic lives in `tinygpt.training`.
"""

import time

START = time.perf_counter()  # before the heavy imports: reported times include start-up

import os  # noqa: E402
import sys  # noqa: E402

if __name__ == "__main__" and os.environ.get("RANK", "0") == "0" and not {"-h", "--help"} & set(sys.argv[1:]):
    # A first line at once, even when the output is piped: the imports below take seconds (more on a busy machine).
    print("train.py: starting (loading PyTorch and transformers takes a few seconds)", flush=True)

from tinygpt.training import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(start_time=START))
