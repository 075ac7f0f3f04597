"""What the page shows of a training: the progress line in words, the loss chart, the samples and the loss help.

Each function reads a `Job` (its engine `RunState`, its place in line, its request's words) and returns what one
component displays: Markdown, HTML or the chart's Vega-Lite spec. Nothing here keeps any state of its own.
"""

from __future__ import annotations

import html
import json
import math

import gradio as gr

from ..run_state import bits_per_character
from .job import Job

# The loss chart's series, in plain words, and their colours (distinct, and readable on white).
HELD_OUT = "held-out text (last 10 %)"
TRAINING = "training text (each evaluation)"
RUNNING = "training text, last second"
SERIES = {HELD_OUT: "#e6550d", TRAINING: "#2171b5", RUNNING: "#9e9e9e"}


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


# ---------------------------------------------------------------------------------------------- the progress line


def progress_line(job: Job, error: str | None = None) -> str:
    """The progress in words: the place in line, the step and the time, the verdict; the warnings below."""
    status, text = job.status, job.request.text
    if status == "waiting":
        return (f"### Waiting: {ordinal(job.place)} in line, about {job.wait_s:.0f} s\n"
                f"One training at a time runs on this server; yours ({text.name}, {text.characters:,} characters) "
                "starts when a slot frees up. **Stop** gives your place up.")
    if status == "cancelled":
        return "Stopped before it started: your place in line is given up. Press **Train** to line up again."
    state = job.state
    if error:
        head = f"**{error}**"
    elif job.done:
        head = {"finished": f"**Finished: all {job.max_steps:,} steps done.**",
                "stopped": f"**Stopped at step {job.step:,}: kept what it learnt.**",
                "time_limit": f"**Time budget used up ({job.seconds:g} s) at step {job.step:,}.**"}[status]
    elif state is None:
        head = "**Starting…** (reading the text, building the model)"
    elif job.elapsed_s >= job.seconds and status == "training":
        head = f"**Time budget used up ({job.seconds:g} s) at step {job.step:,}**: evaluating and saving the model…"
    else:
        head = (f"**Training**: step {job.step:,} / {job.max_steps:,} · {job.elapsed_s:.0f} s of {job.seconds:g} s · "
                f"about {job.time_left():.0f} s left" + (" · stopping…" if status == "stopping" else ""))
    lines = [head, started_from(job)]
    if state is not None and state.last_eval:
        last = state.last_eval
        lines.append(f"Val loss **{last['val_loss']:.3f}** at step {last['step']:,} "
                     f"({bits_per_character(last['val_loss']):.2f} bits per character).")
    if job.done and not error and state is not None and state.best_step is not None:
        lines.append(f"The model you now use, download and push is the one from **step {state.best_step:,}**, "
                     f"where the val loss was lowest ({state.best_val_loss:.3f}). This tab's Generate and See inside "
                     "use it (**Model** at the top switches back).")
    lines += [f"⚠️ {w}" for w in (state.warnings if state else [])]
    return "  \n".join(lines)


def started_from(job: Job) -> str:
    name, base = job.request.text.name, job.request.base
    if base:
        return (f"Fine-tuning the served model **{base.label}** on {name}: it starts from its weights, size and "
                "characters.")
    return f"From scratch on {name}: random weights to begin with."


# ------------------------------------------------------------------------------------------ samples and loss help


def samples_html(job: Job) -> str:
    """The newest sample in full, the older ones folded (a click opens each): the page stays short. Samples come
    with every other evaluation (`job.evaluation_settings`); the chart has them all."""
    sampled = [e for e in job.state.log_history if "sample" in e] if job.state else []
    if not sampled:
        return '<p class="samples-note">A sample of what the model writes appears here as it trains.</p>'
    parts = []
    for i, e in enumerate(reversed(sampled)):
        title = f"step {e['step']:,} · val {e['val_loss']:.3f}"
        text = html.escape(e["sample"])
        if i == 0:
            parts.append(f'<div class="sample newest"><p><strong>Newest sample: {title}</strong></p><pre>{text}</pre>'
                         "</div>")
        else:
            parts.append(f'<details class="sample"><summary>{title}</summary><pre>{text}</pre></details>')
    return "".join(parts)


LOSS_HELP = ("**Loss** says how surprised the model is by each next character: lower is better. The orange line is "
             "measured on the **held-out text**, the last 10 % of your text, which the model never trains on: that "
             "is the honest score. If it rises while the blue (training text) keeps falling, the model is memorising "
             "instead of learning. A loss divided by ln 2 (0.69) is in **bits per character**.")


def loss_help(job: Job | None = None) -> str:
    """LOSS_HELP, then what the numbers mean for this run's text: its number of different characters V and the
    loss of a blind guess among them, ln V (where an untrained model starts)."""
    vocab = job.state.data.get("vocab_size") if job is not None and job.state is not None else None
    if not vocab:
        return (f"{LOSS_HELP} A model that knows nothing guesses blindly among the different characters of your text "
                "(V of them) and scores ln V: the curve starts there, and every step down is something learnt.")
    blind = math.log(vocab)
    words = (f"{LOSS_HELP} There are **{vocab} different characters** in {job.request.text.name}: a blind guess "
             f"among them scores ln {vocab} = {blind:.2f} ({math.log2(vocab):.1f} bits), where the curve starts; "
             "every step down is something learnt.")
    if job.request.text.path is not None:  # the bundled tiny Shakespeare
        words += " By 1.5 (2.2 bits) the samples read like Shakespeare."
    return words


# ------------------------------------------------------------------------------------------------- the chart


def loss_chart(job: Job):
    """The loss chart as a Vega-Lite spec (gradio's Plot draws it with Vega, as wide as the page): lines with a
    point at every evaluation (so the first evaluation shows before there is any line), both axes titled, and a
    legend below the plot that fits a phone. gr.skip() until the first evaluation.

    Written as a spec rather than a gr.LinePlot, which draws every series with one mark: no points on the lines,
    no wider line under a narrower one, no legend under the plot."""
    from gradio.components.plot import AltairPlotData

    evaluations = job.state.log_history if job.state else []
    if not evaluations:
        return gr.skip()
    first = evaluations[0]
    rows = [{"step": first["step"], "loss": first["train_loss"], "series": RUNNING}]
    rows += [{"step": p.step, "loss": p.loss, "series": RUNNING} for p in job.losses if p.step > first["step"]]
    for e in evaluations:
        rows.append({"step": e["step"], "loss": e["train_loss"], "series": TRAINING})
        rows.append({"step": e["step"], "loss": e["val_loss"], "series": HELD_OUT})
    x = {"field": "step", "type": "quantitative", "title": "step (batches trained on)",
         "axis": {"tickCount": 5, "format": ",d"}, "scale": {"domainMin": 0}}
    y = {"field": "loss", "type": "quantitative", "title": "loss (lower is better)", "scale": {"zero": False}}
    color = {"field": "series", "type": "nominal", "title": None,
             "scale": {"domain": list(SERIES), "range": list(SERIES.values())},
             "legend": {"orient": "bottom", "direction": "vertical", "labelLimit": 0, "symbolType": "stroke"}}
    tooltip = [{"field": "series", "type": "nominal"}, {"field": "step", "type": "quantitative"},
               {"field": "loss", "type": "quantitative", "format": ".3f"}]

    def only(series):
        return [{"filter": {"field": "series", "equal": series}}]

    # The held-out line is drawn first and wider, the training line on top of it: when the two coincide (a text
    # that repeats itself) the blue shows inside the orange instead of hiding under it. The axes and colours are
    # shared by every layer (gradio's chart theme recolours a layer's own colour scale).
    layers = [
        {"transform": only(RUNNING), "mark": {"type": "line", "strokeWidth": 1.5}, "encoding": {}},
        {"transform": only(HELD_OUT), "mark": {"type": "line", "strokeWidth": 6}, "encoding": {}},
        {"transform": only(HELD_OUT), "mark": {"type": "point", "filled": True, "size": 130, "strokeWidth": 0},
         "encoding": {"tooltip": tooltip}},
        {"transform": only(TRAINING), "mark": {"type": "line", "strokeWidth": 2}, "encoding": {}},
        {"transform": only(TRAINING), "mark": {"type": "point", "filled": True, "size": 40, "strokeWidth": 0},
         "encoding": {"tooltip": tooltip}},
    ]
    spec = {"$schema": "https://vega.github.io/schema/vega-lite/v5.json", "data": {"values": rows},
            "height": 260, "encoding": {"x": x, "y": y, "color": color}, "layer": layers,
            # SVG: crisp text at any zoom, and the page (and its tests) can read the axes and the legend.
            "usermeta": {"embedOptions": {"renderer": "svg", "actions": False}}}
    return AltairPlotData(plot=json.dumps(spec), chart="line")
