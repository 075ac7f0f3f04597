"""The model card (README.md) of a tinygpt folder: Hub metadata plus what a reader needs to use and trust the model.

`train.py` writes it after every checkpoint and `tinygpt push` refreshes it, both through `write_model_card`, so
the card always describes the weights beside it. The YAML header comes from `ModelCardData`, never from glued
strings.
"""

from __future__ import annotations

import json
from pathlib import Path

from huggingface_hub import ModelCard, ModelCardData

TRAINER_STATE_NAME = "trainer_state.json"
LOSS_PLOT_NAME = "loss.png"

CARD_TEMPLATE = """---
{{ card_data }}
---

# {{ title }}

A tiny **character-level GPT** made with tinygpt: the model of the
"From Basics to Bots" blog series (token + position embeddings, {{ n_layer }} pre-LayerNorm transformer blocks,
a final LayerNorm and a linear head), packaged as a transformers model.

## Use it

```python
from transformers import AutoModelForCausalLM, AutoTokenizer

model = AutoModelForCausalLM.from_pretrained("{{ repo_id }}", trust_remote_code=True)
tokenizer = AutoTokenizer.from_pretrained("{{ repo_id }}", trust_remote_code=True)

inputs = tokenizer("{{ prompt_example }}", return_tensors="pt")
out = model.generate(**inputs, max_new_tokens=200, do_sample=True, top_k=20)
print(tokenizer.decode(out[0]))
```

`trust_remote_code=True` runs the two small files `configuration_tinygpt.py` and `modeling_tinygpt.py` stored
in this repo (torch + transformers only); read them first if you like. The tokenizer is a plain
`tokenizer.json`: one token per character, ids = the training text's sorted characters. It knows only the
{{ vocab_size }} characters of its training text.

Or with the tinygpt command line: `tinygpt generate {{ repo_id }} --prompt "{{ prompt_example }}"`.

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
    return json.loads(path.read_text(encoding="utf-8"))


def build_model_card(
    model_dir: str | Path,
    repo_id: str | None = None,
    sample: str | None = None,
    command: str | None = None,
    license: str = "mit",
) -> ModelCard:
    """A card for the model in `model_dir`, reading config.json and (if present) trainer_state.json and loss.png.

    `repo_id` is what the load snippet shows (default: the folder's path); `sample` is generated text to show;
    `command` is the command that reproduces the training run.
    """
    model_dir = Path(model_dir)
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    state = read_trainer_state(model_dir)
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

    return ModelCard.from_template(
        card_data,
        template_str=CARD_TEMPLATE,
        title=repo_id or model_dir.name,
        repo_id=repo_id or str(model_dir),
        prompt_example="ROMEO:" if data_name and "shakespeare" in data_name.lower() else "Hello",
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
    card.save(Path(model_dir) / "README.md")
    return card


def _count_parameters(config: dict) -> int:
    """Parameters of a TinyGPT with this config, counted from the architecture (no need to load the weights)."""
    V, C, L, T = config["vocab_size"], config["n_embd"], config["n_layer"], config["block_size"]
    per_block = 3 * C * C + (C * C + C) + (C * 4 * C + 4 * C) + (4 * C * C + C) + 4 * C  # qkv, proj, ffwd, 2 LN
    return V * C + T * C + L * per_block + 2 * C + (C * V + V)
