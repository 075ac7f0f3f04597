"""Train a character-level GPT on any text: `python train.py --help`.

With no arguments this is the blog series' training run (its hyper-parameters, tiny Shakespeare, 3000 steps)
and writes a Hugging Face model folder to `out/`. Several processes: `torchrun --nproc-per-node N train.py ...`
or `accelerate launch train.py ...`. The logic lives in `tinygpt.training`.
"""

import time

START = time.perf_counter()  # before the heavy imports: reported times include start-up

import sys  # noqa: E402

from tinygpt.training import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(start_time=START))
