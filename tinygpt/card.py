"""The model card (README.md) of a tinygpt folder: Hub metadata plus what a reader needs to use and trust the model.

`train.py` writes it into every checkpoint (`tinygpt.publish`) and `tinygpt push` refreshes it, so the card always
describes the weights beside it. Everything it says about training comes from the folder's trainer_state.json
(`RunState.load`: losses, settings, the command, the sample of each evaluation, the warnings), never from an
earlier card. The YAML header comes
from `ModelCardData`, with a `model-index` entry for the validation loss, never from glued strings.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .common import code_fence, is_local_path
from .paths import is_local_source  # a recorded path is relative to the project, whatever the working directory
from .run_state import RunState, bits_per_character
LOSS_PLOT_NAME = "loss.png"
CARD_NAME = "README.md"
# The licence is the user's choice (train.py --license, tinygpt push --license): tinygpt cannot know what the
# training text allows. Until one is chosen the card says "unknown", one of the Hub's licence ids
# (https://huggingface.co/docs/hub/repositories-licenses), like "other" (then name it in the card) or "mit".
DEFAULT_LICENSE = "unknown"
LICENSE_ID = re.compile(r"[a-z0-9][a-z0-9.+-]*")  # the shape of the Hub's ids: apache-2.0, cc-by-nc-sa-4.0, openrail++
HISTORY_SHOWN = 8  # evaluations in "How it learned" (spread over the run, the first and the last included)
# Corpora the Hub knows as datasets: trainer_state's data name and size -> (dataset id, pretty name).
KNOWN_DATASETS = {("tinyshakespeare.txt", 1_115_394): ("karpathy/tiny_shakespeare", "tiny_shakespeare")}

CARD_TEMPLATE = """---
{{ card_data }}
---

# {{ title }}

A tiny **character-level GPT** made with tinygpt: the model of the
"From Basics to Bots" blog series (token + position embeddings, {{ n_layer }} pre-LayerNorm transformer blocks,
a final LayerNorm and a linear head), packaged as a transformers model.

## Use it

```python
{{ load_snippet }}

inputs = tokenizer("{{ prompt_example }}", return_tensors="pt")
out = model.generate(**inputs, max_new_tokens=200, do_sample=True, top_k=20)
print(tokenizer.decode(out[0]))
```

`trust_remote_code=True` runs the three small files `configuration_tinygpt.py`, `modeling_tinygpt.py` and
`tokenization_tinygpt.py` stored in this repo (torch + transformers only); read them first if you like. The
tokenizer (`tokenizer.json`) has one token per character, ids = the training text's sorted characters. It knows
only the {{ vocab_size }} characters of its training text: any other character is an error that names it.

Or with the tinygpt command line: `tinygpt generate {{ repo_id }}{% if revision %} --revision {{ revision }}{% endif %} --prompt "{{ prompt_example }}"`.
{% if onnx_snippet %}
## Run it without PyTorch (ONNX)

`onnx/model.onnx` is this model as an ONNX decoder with its key/value cache, in the layout of Optimum and
transformers.js: inputs `input_ids`, `attention_mask`, `position_ids` and `past_key_values.{i}.key` /
`.value` (`[batch, {{ n_head }}, past length, {{ head_dim }}]`, length 0 at the start), outputs `logits` and
`present.{i}.key` / `.value`. The model has {{ block_size }} learned positions: while the text fits, each step runs
only the new character against the cache; past {{ block_size }}, the window slides, so each step runs the last
{{ block_size }} characters again, at positions 0 to {{ block_size - 1 }}, with an empty cache (the series'
`idx[:, -block_size:]`). This loop's greedy text is PyTorch's `generate(do_sample=False)`:

```python
{{ onnx_snippet }}
```

In a browser, the same file runs on [onnxruntime-web](https://www.npmjs.com/package/onnxruntime-web) (WASM) with the
same inputs and loop (`ort.InferenceSession.create(url)`, `new ort.Tensor("int64", BigInt64Array.from(...), [1, n])`,
empty past tensors of shape `[1, {{ n_head }}, 0, {{ head_dim }}]`); the characters are `tokenizer.json`'s
`model.vocab`. tinygpt's demo runs Generate in the visitor's browser this way.
{% endif %}
## Model

| | |
|---|---|
| parameters | {{ n_params }} |
| layers (`n_layer`) | {{ n_layer }} |
| heads (`n_head`) | {{ n_head }} |
| width (`n_embd`) | {{ n_embd }} |
| context (`block_size`) | {{ block_size }} characters |
| vocabulary | {{ vocab_size }} characters |
| dropout | {{ dropout }} |
{% if training %}
## Training

{{ training_summary }}

| setting | value |
|---|---|
{% for key, value in training.items() %}| {{ key }} | {{ value }} |
{% endfor %}
{% if command %}Reproduce it from the root of a tinygpt checkout{% if text_file %} (`{{ text_file }}`, saved beside
the model, is the text it was trained on: put this folder there under that name){% endif %}:

```bash
{{ command }}
```
{% endif %}{% endif %}{% if meaning %}
### What the numbers mean

{{ meaning }}
{% endif %}{% if warnings %}
### Read this before trusting the numbers

{% for warning in warnings %}- {{ warning }}
{% endfor %}{% endif %}{% if has_plot %}
![training and validation loss](loss.png)
{% endif %}{% if history %}
## How it learned

The text it wrote as it trained, from a newline with the same seed: random characters first, then the
corpus's letters and spaces, then words.
{% for record in history %}
**step {{ record.step }}**, val loss {{ record.val_loss }}

{{ record.text }}
{% endfor %}{% endif %}{% if sample %}
## A sample

{{ sample }}
{% endif %}"""


def load_snippet(repo_id: str, revision: str | None = None) -> str:
    """The Python lines that load this model and its tokenizer anywhere transformers is installed (no tinygpt)."""
    extra = f", revision={json.dumps(revision)}" if revision else ""
    return (
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
        f"model = AutoModelForCausalLM.from_pretrained({json.dumps(repo_id)}{extra}, trust_remote_code=True)\n"
        f"tokenizer = AutoTokenizer.from_pretrained({json.dumps(repo_id)}{extra}, trust_remote_code=True)"
    )


def onnx_snippet(repo_id: str, revision: str | None = None, prompt: str = "") -> str:
    """Python that downloads the repo's ONNX export and writes greedily with onnxruntime alone (no torch, no
    transformers): the decoding loop of tinygpt.onnx_runtime, unrolled. A local folder is used as it is."""
    if is_local_path(repo_id):
        hub_import, fetch = "", f"folder = {json.dumps(repo_id)}"
    else:
        extra = f", revision={json.dumps(revision)}" if revision else ""
        hub_import = "from huggingface_hub import snapshot_download\n"
        fetch = f"folder = snapshot_download({json.dumps(repo_id)}{extra}, allow_patterns=[\"*.json\", \"onnx/*\"])"
    return f"""# pip install onnxruntime tokenizers huggingface_hub
import json

import numpy as np
import onnxruntime as ort
{hub_import}from tokenizers import Tokenizer

{fetch}
config = json.load(open(f"{{folder}}/config.json"))
session = ort.InferenceSession(f"{{folder}}/onnx/model.onnx")
tokenizer = Tokenizer.from_file(f"{{folder}}/tokenizer.json")
block_size, n_head = config["block_size"], config["n_head"]
names = [f"past_key_values.{{i}}.{{kv}}" for i in range(config["n_layer"]) for kv in ("key", "value")]
empty = {{name: np.zeros((1, n_head, 0, config["n_embd"] // n_head), np.float32) for name in names}}

ids = tokenizer.encode({json.dumps(prompt)}).ids or [0]  # an empty prompt starts from id 0
past = empty
for _ in range(200):
    window = ids[-block_size:]
    # within block_size the cache is valid: run only the characters it has not seen; past it, the window
    # slides and every character moves to a new position: run the whole window again with an empty cache
    start = past[names[0]].shape[2] if len(ids) <= block_size else 0
    feed = {{"input_ids": np.array([window[start:]], np.int64), "attention_mask": np.ones((1, len(window)), np.int64),
            "position_ids": np.arange(start, len(window), dtype=np.int64)[None], **(past if start else empty)}}
    logits, *present = session.run(None, feed)
    past = dict(zip(names, present))
    ids.append(int(logits[0, -1].argmax()))  # greedy; sample from softmax(logits / temperature) for variety
print(tokenizer.decode(ids))"""


def build_model_card(
    model_dir: str | Path,
    repo_id: str | None = None,
    sample: str | None = None,
    command: str | None = None,
    license: str | None = None,
    revision: str | None = None,
    onnx: bool = False,
) -> ModelCard:
    """A card for the model in `model_dir`, from its config.json, trainer_state.json (if any) and loss.png.

    `onnx`: the repo has the ONNX export (`onnx/model.onnx`), and the card says how to run it.

    `repo_id` (and `revision`, a Hub branch) is what the load snippet shows (default: the folder's path). Left
    out, `sample` (generated text) is the last evaluation's in trainer_state.json, `command` (what reproduces
    the run) is trainer_state.json's, and `license` (a Hub licence id) is the one the run chose (train.py
    --license, in trainer_state.json), else the one in the current card's YAML (written there by hand), else
    "unknown", so refreshing a card (as `tinygpt push` does) keeps what the training run recorded.
    """
    model_dir = Path(model_dir)
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    run = RunState.load(model_dir)
    state = run.to_dict() if run is not None else {}
    log = run.log_history if run is not None else []
    samples = [entry for entry in log if entry.get("sample")]
    kept = run.model_eval if run is not None else None  # the evaluation of the weights in this folder
    sample = sample or (kept or {}).get("sample") or (samples[-1]["sample"] if samples else None)
    command = command or state.get("command")
    recorded = (state.get("training_args") or {}).get("license")
    license = license or recorded or _current_license(model_dir) or DEFAULT_LICENSE
    data = state.get("data") or {}
    data_name = data.get("name")
    training = {key: value for key, value in (state.get("training_args") or {}).items() if value is not None}
    best = kept["val_loss"] if kept and _finite(kept.get("val_loss")) else state.get("best_val_loss")
    name = Path(repo_id).name if repo_id else (run.run_name if run and run.run_name else model_dir.name)
    name = Path(name).name or model_dir.resolve().name  # a title, never a path

    card_data = ModelCardData(
        library_name="transformers",
        pipeline_tag="text-generation",
        license=license,
        tags=["tinygpt", "character-level", "custom_code", "text-generation"],
        model_name=name,
    )
    if data_name:
        card_data.training_data = data_name  # free-form: a local text file is not a Hub dataset id
    args = state.get("training_args") or {}
    if args.get("init_from") and not is_local_source(args["init_from"]):
        card_data.base_model = args["init_from"]  # the Hub links a fine-tune to the model it started from
    if args.get("dataset") and not is_local_source(args["dataset"]):
        card_data.datasets = [args["dataset"]]
    if best is not None:
        card_data.val_loss = round(float(best), 4)  # a flat key that readers such as app.py use
        dataset_id, dataset_name = KNOWN_DATASETS.get((data_name, data.get("characters")), (data_name, data_name))
        card_data.eval_results = [EvalResult(
            task_type="text-generation", task_name="Character-level language modelling",
            dataset_type=dataset_id or "text", dataset_name=dataset_name or "text",
            dataset_split="validation (last 10 %)", metric_type="loss", metric_name="validation loss (cross-entropy "
            "per character)", metric_value=round(float(best), 4),
        )]

    shown_id = repo_id or str(model_dir)
    return ModelCard.from_template(
        card_data,
        template_str=CARD_TEMPLATE,
        title=name,
        repo_id=shown_id,
        revision=revision,
        load_snippet=load_snippet(shown_id, revision),
        onnx_snippet=onnx_snippet(shown_id, revision, _prompt_example(model_dir, sample, data_name)) if onnx else None,
        head_dim=config.get("n_embd", 0) // max(1, config.get("n_head", 1)),
        prompt_example=_prompt_example(model_dir, sample, data_name),
        n_params=f"{state.get('n_params') or _count_parameters(config):,}",
        n_layer=config.get("n_layer"),
        n_head=config.get("n_head"),
        n_embd=config.get("n_embd"),
        block_size=config.get("block_size"),
        vocab_size=config.get("vocab_size"),
        dropout=config.get("dropout", 0.0),
        training=training,
        training_summary=_training_summary(run, kept, data) if run is not None else "",
        command=command,
        text_file=_text_file(command),
        meaning=_meaning(best, config.get("vocab_size")) if best is not None else "",
        warnings=run.warnings if run is not None else [],
        has_plot=(model_dir / LOSS_PLOT_NAME).is_file(),
        history=[{"step": e["step"], "val_loss": f"{e['val_loss']:.4f}", "text": fenced(e["sample"])}
                 for e in _spread(samples, HISTORY_SHOWN)],
        sample=fenced(sample) if sample else None,
    )


def _training_summary(run: RunState, kept: dict | None, data: dict) -> str:
    ended = {"stopped": "Stopped by request after", "time_limit": "Trained (until its time budget ran out) for",
             "diverged": "Diverged (the loss became infinite or NaN) after"}.get(run.status, "Trained for")
    summary = f"{ended} {run.global_step:,} steps"
    if data.get("name"):
        summary += f" on **{data['name']}**"
        if data.get("characters"):
            summary += f" ({data['characters']:,} characters, first 90 % for training, last 10 % for validation)"
    summary += "."
    base = run.training_args.get("init_from")
    if base:
        added = data.get("vocab_size", 0) - data.get("base_vocab_size", data.get("vocab_size", 0))
        summary += (f" Fine-tuned from **{base}** (its weights, dimensions and vocabulary"
                    + (f", plus {added} new character(s)" if added > 0 else "") + ").")
    last = run.last_eval or {}
    if kept is not None and kept.get("step") == run.best_step:
        where = "the last one" if kept["step"] == run.global_step else "the weights kept in this folder"
        summary += (f" Best validation loss: **{kept['val_loss']:.4f}** (train {kept.get('train_loss', math.nan):.4f})"
                    f" at step {kept['step']:,}, {where}.")
        if kept["step"] != run.global_step and last:
            summary += f" At the last step, {last['step']:,}, val was {last['val_loss']:.4f}."
    elif kept is not None:
        summary += (f" Validation loss of these weights (step {kept['step']:,}): **{kept['val_loss']:.4f}** (train "
                    f"{kept.get('train_loss', math.nan):.4f}); the best was {run.best_val_loss:.4f} at step "
                    f"{run.best_step:,} (`--keep best` keeps that one).")
    elif run.best_val_loss is not None:
        summary += f" Best validation loss: **{run.best_val_loss:.4f}**."
    if last.get("elapsed_s") is not None:
        summary += f" Wall time: {last['elapsed_s']:.0f} s."
    return summary


def _meaning(val_loss: float, vocab_size: int | None) -> str:
    """What a val loss says, in words a newcomer can use."""
    text = (f"*Validation loss* is how surprised the model is, on average, by each next character of the last 10 % "
            f"of the text, which it never trains on (cross-entropy in nats; **lower is better**). "
            f"{val_loss:.4f} is {bits_per_character(val_loss):.2f} bits per character (loss / ln 2)")
    if vocab_size:
        text += (f"; a model that guessed uniformly among the {vocab_size} characters would score "
                 f"{math.log(vocab_size):.2f} ({math.log2(vocab_size):.2f} bits)")
    return text + "."


def _text_file(command: str | None) -> str | None:
    """The folder's copy of the training text when the reproduce command trains on it (a text given in memory)."""
    if not command:
        return None
    import shlex

    parts = shlex.split(command)
    data = parts[parts.index("--data") + 1] if "--data" in parts[:-1] else ""
    return data if data.endswith("/train.txt") else None


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _spread(records: list, n: int) -> list:
    """At most `n` of `records`, evenly spaced, the first and the last included."""
    if len(records) <= n:
        return records
    return [records[round(i * (len(records) - 1) / (n - 1))] for i in range(n)]


def fenced(text: str) -> str:
    """`text` as a markdown code block whose fence is longer than any run of backticks inside it."""
    fence = code_fence(text)
    body = text.strip("\n")
    return f"{fence}text\n{body}\n{fence}"


def write_model_card(model_dir: str | Path, **kwargs) -> ModelCard:
    """Build the card (see `build_model_card`) and save it as `model_dir/README.md`."""
    card = build_model_card(model_dir, **kwargs)
    card.save(Path(model_dir) / CARD_NAME)
    return card


def check_license(value: str, flag: str = "--license") -> str:
    """`value` if it has the shape of a Hub licence id, else a ValueError naming the flag."""
    if not isinstance(value, str) or not LICENSE_ID.fullmatch(value):
        raise ValueError(f"{flag} must be a Hub licence id such as mit, apache-2.0, cc-by-4.0, other or unknown "
                         f"(lower case; the list: https://huggingface.co/docs/hub/repositories-licenses), got "
                         f"{value!r}")
    return value


def _current_license(model_dir: Path) -> str | None:
    """The license in the YAML header of the folder's current README.md (a license chosen by hand stays)."""
    path = Path(model_dir) / CARD_NAME
    try:
        return getattr(ModelCard.load(path, ignore_metadata_errors=True).data, "license", None)
    except Exception:  # no card, or a hand-written README that is not one
        return None


def _prompt_example(model_dir: Path, sample: str | None, data_name: str | None) -> str:
    """A prompt the tokenizer can encode: every example in the card must run (it knows only its training text's
    characters, so "Hello" fails on a model without "H")."""
    vocab = _vocabulary(model_dir)
    candidates = []
    if data_name and "shakespeare" in data_name.lower():
        candidates.append("ROMEO:")
    if sample:
        first_word = sample.strip().split()[0] if sample.strip() else ""
        candidates.append(first_word[:20])
    candidates += ["Hello", "hello", "The", "the"]
    safe = [c for c in candidates if c and all(ch.isalnum() or ch in " :,.!?-" for ch in c)]
    for candidate in safe:
        if vocab is None or set(candidate) <= vocab:
            return candidate
    letters = sorted(ch for ch in (vocab or ()) if ch.isalpha())
    return letters[0] if letters else ""


def _vocabulary(model_dir: Path) -> set[str] | None:
    path = model_dir / "tokenizer.json"
    try:
        return set(json.loads(path.read_text(encoding="utf-8"))["model"]["vocab"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _count_parameters(config: dict) -> int:
    """Parameters of a TinyGPT with this config, counted from the architecture (no need to load the weights)."""
    V, C, L, T = config["vocab_size"], config["n_embd"], config["n_layer"], config["block_size"]
    per_block = 3 * C * C + (C * C + C) + (C * 4 * C + 4 * C) + (4 * C * C + C) + 4 * C  # qkv, proj, ffwd, 2 LN
    return V * C + T * C + L * per_block + 2 * C + (C * V + V)
