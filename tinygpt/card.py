"""The model card (README.md) of a tinygpt folder: Hub metadata plus what a reader needs to use and trust the model.

`train.py` writes it after every checkpoint and `tinygpt push` refreshes it, both through `write_model_card`, so
the card always describes the weights beside it. The YAML header comes from `ModelCardData`, never from glued
strings.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from huggingface_hub import ModelCard, ModelCardData

TRAINER_STATE_NAME = "trainer_state.json"
LOSS_PLOT_NAME = "loss.png"
CARD_NAME = "README.md"
DEFAULT_LICENSE = "mit"

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

`trust_remote_code=True` runs the two small files `configuration_tinygpt.py` and `modeling_tinygpt.py` stored
in this repo (torch + transformers only); read them first if you like. The tokenizer is a plain
`tokenizer.json`: one token per character, ids = the training text's sorted characters. It knows only the
{{ vocab_size }} characters of its training text.

Or with the tinygpt command line: `tinygpt generate {{ repo_id }}{% if revision %} --revision {{ revision }}{% endif %} --prompt "{{ prompt_example }}"`.

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
{% if command %}Reproduce it with:

```bash
{{ command }}
```
{% endif %}{% endif %}{% if has_plot %}
![training and validation loss](loss.png)
{% endif %}{% if sample %}
## A sample

```text
{{ sample }}
```
{% endif %}"""


def read_trainer_state(model_dir: str | Path) -> dict | None:
    """The folder's trainer_state.json, or None for a model that was not trained by tinygpt (e.g. converted)."""
    path = Path(model_dir) / TRAINER_STATE_NAME
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err}); fix or delete it (it only feeds the model card)") from None
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a JSON object like train.py writes, got {type(state).__name__}")
    return state


def load_snippet(repo_id: str, revision: str | None = None) -> str:
    """The Python lines that load this model and its tokenizer anywhere transformers is installed (no tinygpt)."""
    extra = f", revision={json.dumps(revision)}" if revision else ""
    return (
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
        f"model = AutoModelForCausalLM.from_pretrained({json.dumps(repo_id)}{extra}, trust_remote_code=True)\n"
        f"tokenizer = AutoTokenizer.from_pretrained({json.dumps(repo_id)}{extra}, trust_remote_code=True)"
    )


def build_model_card(
    model_dir: str | Path,
    repo_id: str | None = None,
    sample: str | None = None,
    command: str | None = None,
    license: str | None = None,
    revision: str | None = None,
) -> ModelCard:
    """A card for the model in `model_dir`, reading config.json and (if present) trainer_state.json and loss.png.

    `repo_id` (and `revision`, a Hub branch) is what the load snippet shows (default: the folder's path);
    `sample` is generated text to show; `command` is the command that reproduces the training run; `license`
    an SPDX-style id for the Hub. Left out, `sample` and `command` are taken from trainer_state.json (keys
    "sample" and "command") or else from the folder's current card, and `license` from the current card (else
    MIT), so refreshing a card (as `tinygpt push` does) keeps what the training run wrote.
    """
    model_dir = Path(model_dir)
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    state = read_trainer_state(model_dir)
    previous = read_card_extras(model_dir)
    sample = sample or (state or {}).get("sample") or previous.get("sample")
    command = command or (state or {}).get("command") or previous.get("command")
    license = license or previous.get("license") or DEFAULT_LICENSE
    n_params = _count_parameters(config)

    training = {}
    summary = ""
    data_name = None
    if state:
        args = state.get("training_args", {})
        data = state.get("data", {})
        data_name = data.get("name")
        training = {key: value for key, value in args.items() if value is not None}
        best = state.get("best_val_loss")
        last = (state.get("log_history") or [{}])[-1]
        summary = f"Trained for {state.get('global_step', 0):,} steps"
        if data_name:
            summary += f" on **{data_name}**"
            if data.get("characters"):
                summary += f" ({data['characters']:,} characters, first 90 % for training, last 10 % for validation)"
        summary += "."
        if best is not None:
            summary += f" Best validation loss: **{best:.4f}**"
            if last.get("val_loss") is not None:
                summary += f" (last: {last['val_loss']:.4f}, train {last.get('train_loss', float('nan')):.4f})"
            summary += "."
        if last.get("elapsed_s") is not None:
            summary += f" Wall time: {last['elapsed_s']:.0f} s."

    card_data = ModelCardData(
        library_name="transformers",
        pipeline_tag="text-generation",
        license=license,
        tags=["tinygpt", "character-level", "custom_code", "text-generation"],
        model_name=repo_id or model_dir.name,
    )
    if data_name:
        card_data.training_data = data_name  # free-form: a local text file is not a Hub dataset id
    if state and state.get("best_val_loss") is not None:
        card_data.val_loss = round(float(state["best_val_loss"]), 4)

    shown_id = repo_id or str(model_dir)
    return ModelCard.from_template(
        card_data,
        template_str=CARD_TEMPLATE,
        title=repo_id or model_dir.name,
        repo_id=shown_id,
        revision=revision,
        load_snippet=load_snippet(shown_id, revision),
        prompt_example=_prompt_example(model_dir, sample, data_name),
        n_params=f"{n_params:,}",
        n_layer=config.get("n_layer"),
        n_head=config.get("n_head"),
        n_embd=config.get("n_embd"),
        block_size=config.get("block_size"),
        vocab_size=config.get("vocab_size"),
        dropout=config.get("dropout", 0.0),
        training=training,
        training_summary=summary,
        command=command,
        has_plot=(model_dir / LOSS_PLOT_NAME).is_file(),
        sample=sample.strip("\n") if sample else None,
    )


def write_model_card(model_dir: str | Path, **kwargs) -> ModelCard:
    """Build the card (see `build_model_card`) and save it as `model_dir/README.md`."""
    card = build_model_card(model_dir, **kwargs)
    card.save(Path(model_dir) / CARD_NAME)
    return card


# The card's own sections, as CARD_TEMPLATE writes them: how a refreshed card finds what the last one showed.
_SAMPLE_RE = re.compile(r"^## A sample\n\n```text\n(.*)\n```\s*\Z", re.S | re.M)
_COMMAND_RE = re.compile(r"^Reproduce it with:\n\n```bash\n(.*?)\n```", re.S | re.M)


def read_card_extras(model_dir: str | Path) -> dict:
    """`sample`, `command` and `license` from the folder's current README.md (those it has), else {}."""
    path = Path(model_dir) / CARD_NAME
    if not path.is_file():
        return {}
    try:
        card = ModelCard.load(path, ignore_metadata_errors=True)
    except Exception:  # a hand-written README that is not a card: nothing to keep
        return {}
    extras = {}
    if getattr(card.data, "license", None):
        extras["license"] = card.data.license
    for key, pattern in (("sample", _SAMPLE_RE), ("command", _COMMAND_RE)):
        match = pattern.search(card.text)
        if match:
            extras[key] = match.group(1)
    return extras


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
