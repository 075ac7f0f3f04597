"""The tinygpt demo: watch the blog series' character-level GPT write, look inside it, and train your own.

    python app.py [--model DIR_OR_REPO_ID] [--host H] [--port P] [--share] [--compile]
                  [--train-max-seconds S] [--train-concurrency N]

`--model` (or the `MODEL_ID` environment variable; the flag wins) is a tinygpt folder made with
`save_pretrained` or a Hub repo id; the default is the bundled `checkpoints/tinyshakespeare` next to this file.

Three tabs: **Generate** streams text, **See inside** shows the next-character probabilities and every attention
head, **Train** trains a model on your text in the browser session (the bundled tiny Shakespeare, pasted text or
an uploaded text file), from scratch or fine-tuning the served model, streaming its loss curve and a sample after
every evaluation. When it ends (or Stop is pressed) that browser session's Generate and See inside use the new model
(its best evaluation's), with a prompt and examples made of its text; it can be downloaded as the folder train.py
writes, or pushed to the Hub with the same code as `tinygpt push`. What the page refuses (an empty or binary text, a
size or a number out of range) it says beside the field, until the next press; numbers are never clamped.

This file is the page and the command line; the logic is in the `tinygpt` package beside it (`tinygpt space`
uploads that folder with app.py): `tinygpt/demo.py` loads the model, generates and looks inside,
`tinygpt/sessions.py` remembers which model each browser tab uses, and `tinygpt/train_tab/` runs the Train tab, one
file per concern: `request.py` (what a request may be), `line.py` (the line of trainings), `job.py` (a training on
the engine, in a thread), `view.py` (what the page shows of it) and `handlers.py` (the buttons and /train). The served
model loads with `trust_remote_code=True`; training imports tinygpt's engine (which needs accelerate) only when
someone presses Train.

API (`gradio_client.Client(url)`):
    predict(prompt, max_new_tokens, temperature, top_k, top_p, seed, api_name="/generate")
        -> prompt + continuation. temperature 0 is greedy, top_k 0 and top_p 1 are off. Same inputs and seed give
        the same text whatever else the server is doing: every request samples from its own seeded Generator.
    predict(prompt, api_name="/inspect") -> (top-10 table, attention maps as HTML, what the model sees)
    submit(text, model_size=..., seconds=60, max_iters=0, start_from="scratch", api_name="/train")
        -> streams progress dicts. start_from "served" fine-tunes the served model (its size wins over model_size)
        (status: waiting | starting | training | stopping | finished | stopped | time_limit | cancelled; place and
        wait_s while waiting in line; step, max_iters, elapsed_s, time_left_s, train_loss, n_params; evaluations:
        [{step, train_loss, val_loss, elapsed_s, sample}]; best_step and best_val_loss: the evaluation whose model
        is kept; warnings: plain words when the numbers mean memorising; start_from and base_model: what it started
        from). Afterwards /generate and /inspect from the
        same Client use the trained model; another Client still gets the served one.
    predict(api_name="/stop_training") (also leaves the line), predict(api_name="/download") -> the model folder as
    a .zip, predict(repo_id, token, api_name="/push").
"""

from __future__ import annotations

import argparse
import os
import random
import sys
from pathlib import Path

import gradio as gr
import torch
from transformers.utils import logging as hf_logging

# The logic lives in the package (the folder beside this file on a Space): the model side and the Train tab's.
from tinygpt.browser_generate import BrowserGenerate
from tinygpt.demo import MAX_NEW_TOKENS, MAX_PROMPT_CHARS, MAX_SEED, BadInput, ModelError, TinyGPTDemo, load_model
from tinygpt.demo_api import CheckedBlocks  # gr.Blocks whose API names the input it cannot take, never `null`
from tinygpt.train_tab import (
    DEFAULT_SIZE, MODEL_SIZES, SCRATCH, SERVED, SIZE_HELP, TRAIN_CONCURRENCY, TRAIN_MAX_BYTES, TRAIN_MAX_SECONDS,
    TRAIN_MIN_SECONDS, TRAIN_SECONDS, ServedModel, TrainOutputs, TrainTab, hub_login_available, loss_help,
)
from tinygpt.sessions import MAX_TRAINED_MODELS, Sessions

HERE = Path(__file__).resolve().parent
DEFAULT_MODEL = HERE / "checkpoints" / "tinyshakespeare"
BUNDLED_TEXT = HERE / "data" / "tinyshakespeare.txt"  # the Train tab's default text (`tinygpt space` uploads it)

CONCURRENCY = 8  # generations running at once; more requests wait in the queue
MAX_QUEUE = 64  # requests waiting beyond that are turned away ("queue full") instead of piling up

# Prompts for a Shakespeare model; only those made of the loaded model's characters are offered.
EXAMPLES = [
    ["ROMEO:\n", 300, 0.8, 0, 1.0, 42],
    ["First Citizen:\n", 300, 1.0, 0, 1.0, 7],
    ["To be, or not to be", 200, 0.0, 0, 1.0, 0],
    ["KING RICHARD III:\nNow is the winter of our discontent\n", 400, 0.7, 20, 0.95, 2024],
]


def examples_for(model: TinyGPTDemo) -> list[list]:
    """Generate's examples for `model`, every one made of its characters: for a model trained in the Train tab,
    starts of the lines of its text (with EXAMPLES' settings); else the EXAMPLES it can read; else the empty prompt
    (its first vocabulary character)."""
    if model.prompts:
        return [[prompt, *example[1:]] for prompt, example in zip(model.prompts, EXAMPLES)]
    return [e for e in EXAMPLES if model.knows(e[0])] or [["", *EXAMPLES[0][1:]]]


# -------------------------------------------------------------------------------------------------------- UI

INTRO = """\
# tinygpt

Hi Pythonistas! This is the character-level GPT from the blog series, running live.

Type a few characters. The model looks at the last **{block_size}** of them, scores every character it knows,
samples one, appends it and repeats: the loop from the final post, one character at a time.
No magic. Just embeddings, attention, a feed-forward and a softmax. Or train your own in the **Train** tab.
"""

GENERATE_HELP = f"""\
**Temperature** 0 always takes the likeliest character (greedy); higher is more adventurous.
**Top-k** keeps only the k likeliest characters (0 = off); **top-p** the smallest set holding that much
probability (1 = off). The same prompt, settings and **seed** always give the same text.
Limits: {MAX_NEW_TOKENS} new characters per request, prompts up to {MAX_PROMPT_CHARS} characters.
An empty prompt starts from the first character of the vocabulary (a newline for Shakespeare),
like the seed's `torch.zeros((1, 1))`; that starting character is not shown.
"""

INSIDE_HELP = """\
What the model makes of your prompt. **The bar chart:** its ten favourite next characters (before temperature,
top-k or top-p). **What the model sees:** the last characters of the prompt, as many as its context holds.
**The maps:** every attention head of every layer. Each row is a character looking back at the ones before it:
the darker the blue, the more of its attention goes to that character (white: none). The grey upper triangle is
the future: no peeking.
"""

TRAIN_HELP = """\
Train a model on a text of your choice, right here: the loop from the final post (get a batch, predict every next
character, nudge the weights), with the loss measured every few seconds and a sample of what it writes. From
scratch, watch it go from random characters to words; or fine-tune the model being served, which starts from what it
already knows. When it ends, or you press **Stop**, this tab's Generate and See inside use your model;
other visitors never see it, and it is gone when you close the tab, so download it or push it to the Hub.
"""

CSS = """
#output textarea, #prompt textarea { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
#attention .attention-grid { display: grid; gap: 8px; grid-template-columns: repeat(auto-fill, minmax(min(100%, 280px), 1fr)); }
#attention figure { margin: 0; }
#attention img { width: 100%; height: auto; display: block; }
#attention figcaption { text-align: center; font-size: 14px; }
#attention h4 { margin: 12px 0 4px; }
#attention .attention-legend { display: flex; flex-wrap: wrap; align-items: center; gap: 6px; font-size: 14px; }
#attention .attention-scale { display: inline-block; width: 120px; height: 12px; background: linear-gradient(to right, #f7fbff, #08306b); border: 1px solid #ccc; }
#attention .attention-future { display: inline-block; width: 12px; height: 12px; background: #f1f1f4; border: 1px solid #ccc; margin-left: 12px; }
/* the loss chart takes its column's width (gradio centres a plot, which lets Vega's width collapse on a resize) */
#train-curve .altair { align-items: stretch; }
#train-curve .vega-embed { width: 100%; }
#train-samples pre { white-space: pre-wrap; overflow-wrap: anywhere; max-width: 100%; margin: 4px 0 12px;
  font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 13px; }
#train-samples details summary { cursor: pointer; padding: 2px 0; }
#train-progress h3 { margin: 0 0 4px; }
#train-size input { text-overflow: clip; padding-right: 24px; }  /* the text stops short of the arrow */
/* a phone: the longest size label shows whole ("... context 32", not "... context 3") */
@media (max-width: 480px) { #train-size input { font-size: 13px; padding-right: 18px; }
  #train-size .wrap-inner { padding-left: 6px; padding-right: 6px; } }
/* the size choice is off while fine-tuning: it looks it */
#train-size .wrap:has(input:disabled) { opacity: 0.5; background: var(--background-fill-secondary); }
#train-size input:disabled { cursor: not-allowed; }
#facts table { max-width: 100%; }
#facts thead { display: none; }  /* a two-column table of facts: no header row */
"""


def build_demo(served: TinyGPTDemo, training_tab: TrainTab, browser: BrowserGenerate | None = None) -> gr.Blocks:
    served_examples = examples_for(served)
    sessions = training_tab.sessions

    async def generate(prompt, max_new_tokens, temperature, top_k, top_p, seed, request: gr.Request):
        stream = sessions.model_for(request, served).generate(prompt, max_new_tokens, temperature, top_k, top_p, seed)
        try:
            async for text in stream:
                yield text
        finally:  # Stop or a closed tab: close the model's stream now, so its worker stops at once
            await stream.aclose()

    def inspect(prompt, request: gr.Request):
        return sessions.model_for(request, served).inspect(prompt)

    def inspect_on_page(prompt, request: gr.Request):
        """See inside on the page: a prompt the model cannot read is said where "what the model sees" goes, and the
        chart and maps are emptied (an error would leave red "Error" badges there, and its toast goes away)."""
        try:
            return inspect(prompt, request)
        except BadInput as err:
            return None, "", f"**{err.message}**"

    def choose(choice, request: gr.Request):
        return sessions.choose(choice, request, served).facts_markdown()

    def fit_generate(prompt, request: gr.Request):
        """After a training and at the Model switch: Generate's examples (and its prompt, unless the model in use
        can read it) are made of the characters of the model in use."""
        model = sessions.model_for(request, served)
        rows = examples_for(model)
        fits = isinstance(prompt, str) and model.knows(prompt)
        return (gr.update(value=prompt if fits else rows[0][0], placeholder=rows[0][0].strip()),
                gr.Dataset(samples=rows))

    with CheckedBlocks(title="tinygpt", delete_cache=(3600, 3600)) as demo:
        gr.Markdown(INTRO.format(block_size=served.block_size))
        with gr.Row(equal_height=False):
            prompt = gr.Textbox(
                label="Prompt",
                placeholder=served_examples[0][0].strip(),
                value=served_examples[0][0],
                lines=3,
                max_lines=12,
                elem_id="prompt",
                scale=4,
            )
            model_choice = gr.Radio(
                [(f"served: {served.facts['source']}", "served"), ("mine: trained in this tab", "trained")],
                value="served", label="Model", visible=False, elem_id="model-choice", scale=1, min_width=220,
            )
        with gr.Tabs():
            with gr.Tab("Generate", id="generate") as generate_tab:
                with gr.Row():
                    with gr.Column(scale=3):
                        with gr.Row():  # above the text, so a phone shows them without scrolling past it
                            generate_btn = gr.Button("Generate", variant="primary", elem_id="generate-btn")
                            stop_btn = gr.Button("Stop", variant="stop", elem_id="stop-btn")
                        output = gr.Textbox(
                            label="Prompt + what the model wrote",
                            lines=14,
                            max_lines=30,
                            autoscroll=True,
                            buttons=["copy"],
                            elem_id="output",
                        )
                        if browser is not None:  # your browser or the server (tinygpt/browser_generate.py)
                            browser.switch()
                    with gr.Column(scale=2):
                        # A number box, not a slider: a slider silently clamps what is typed into it (99999 -> 1000);
                        # a number box's range is checked, not clamped: the server refuses what is out of range, in
                        # words that name the input and the limit (tinygpt/demo_api.py).
                        max_new_tokens = gr.Number(
                            value=300, step=50, precision=0, minimum=1, maximum=MAX_NEW_TOKENS,
                            label=f"Max new characters (1 to {MAX_NEW_TOKENS}, the server cap)",
                            elem_id="max-new-tokens",
                        )
                        temperature = gr.Slider(0.0, 2.0, value=0.8, step=0.05, label="Temperature (0 = greedy)",
                                                elem_id="temperature")
                        top_k = gr.Slider(
                            0, served.facts["vocab_size"], value=0, step=1, precision=0, label="Top-k (0 = off)",
                            elem_id="top-k",
                        )
                        top_p = gr.Slider(0.05, 1.0, value=1.0, step=0.01, label="Top-p (1 = off)", elem_id="top-p")
                        with gr.Row():
                            seed = gr.Number(value=42, precision=0, minimum=0, maximum=MAX_SEED, label="Seed", scale=3,
                                             elem_id="seed")
                            dice = gr.Button("Random seed", scale=1, size="sm")
                        gr.Markdown(GENERATE_HELP)
                examples = gr.Examples(  # remade for the model in use (fit_generate)
                    served_examples,
                    inputs=[prompt, max_new_tokens, temperature, top_k, top_p, seed],
                    label="Try these",
                    elem_id="generate-examples",
                )
            with gr.Tab("See inside", id="inside") as inside_tab:
                gr.Markdown(INSIDE_HELP, elem_id="inside-help")
                inspect_btn = gr.Button("Look inside this prompt", elem_id="inspect-btn")
                with gr.Row():  # side by side on a laptop, stacked on a phone
                    with gr.Column(min_width=320):
                        bars = gr.BarPlot(
                            x="next character", y="probability", sort="-y", y_lim=[0, 1],
                            label="Next character: top 10", elem_id="next-chars",
                        )
                    with gr.Column(min_width=320):
                        context = gr.Markdown(elem_id="context")
                heatmaps = gr.HTML(label="Attention, per layer and head", elem_id="attention")
            with gr.Tab("Train", id="train") as train_tab:
                gr.Markdown(TRAIN_HELP)
                with gr.Row():
                    with gr.Column(scale=3, min_width=300):
                        sources = [("paste text", "paste"), ("upload a .txt", "upload")]
                        if training_tab.has_bundled_text:
                            sources.insert(0, ("tiny Shakespeare (bundled, 1.1 MB)", "bundled"))
                        source = gr.Radio(sources, value=sources[0][1], label="Text", elem_id="train-source")
                        pasted = gr.Textbox(label="Your text", lines=6, max_lines=12, visible=sources[0][1] == "paste",
                                            placeholder="Paste a few thousand characters or more", elem_id="train-text")
                        # Any file is taken, and what is not UTF-8 text is said in plain words beside it (gradio's
                        # own file-type check would add a second, vaguer error).
                        upload = gr.File(label="A text file (.txt, UTF-8)", type="filepath", visible=False,
                                         elem_id="train-file")
                        gr.Markdown(f"Texts up to {TRAIN_MAX_BYTES // 2**20} MB: the server holds the whole text in "
                                    "memory while it trains and shares its CPU with everyone. Bigger texts: "
                                    "`train.py`.", elem_id="train-cap")
                    with gr.Column(scale=2, min_width=300):
                        starts = [("scratch (random weights)", SCRATCH)]
                        if training_tab.served is not None:
                            starts.append((f"the model being served ({training_tab.served.label})", SERVED))
                        start = gr.Radio(starts, value=SCRATCH, label="Start from", visible=len(starts) > 1,
                                         elem_id="train-start")
                        size = gr.Dropdown(list(MODEL_SIZES), value=DEFAULT_SIZE, allow_custom_value=True,
                                           label="Model size", info=SIZE_HELP, elem_id="train-size")
                        # A number box, not a slider, which would silently clamp what is typed (1 -> 5, 9999 -> 300).
                        seconds = gr.Number(value=min(TRAIN_SECONDS, training_tab.max_seconds), step=5,
                                            label=f"Time budget, seconds ({TRAIN_MIN_SECONDS} to "
                                                  f"{training_tab.max_seconds:g}, the server cap)",
                                            elem_id="train-seconds")
                        with gr.Row():
                            train_btn = gr.Button("Train", variant="primary", elem_id="train-btn")
                            train_stop_btn = gr.Button("Stop", variant="stop", interactive=False,
                                                       elem_id="train-stop-btn")
                progress = gr.Markdown("", elem_id="train-progress")
                with gr.Group(visible=False, elem_id="train-result") as result_box:  # right under the verdict
                    download = gr.DownloadButton("Download the model folder (.zip)", visible=False,
                                                 elem_id="train-download")
                    with gr.Row():
                        repo_id = gr.Textbox(label="Hub repo id", placeholder="your-name/tiny-model",
                                             min_width=200, elem_id="push-repo")
                        token = gr.Textbox(label="Hugging Face token (write access; not stored)", type="password",
                                           min_width=200, elem_id="push-token")
                    with gr.Row():  # the button a row of its own: beside the boxes it left a grey gap under itself
                        if training_tab.hub_login:
                            gr.LoginButton()
                        push_btn = gr.Button("Push to the Hub", elem_id="push-btn")
                push_status = gr.Markdown("", elem_id="push-status")
                with gr.Row(equal_height=False):  # the curve and the samples side by side; stacked on a phone
                    with gr.Column(min_width=320):
                        gr.Markdown("**Loss at each step**", elem_id="train-curve-title")
                        curve = gr.Plot(show_label=False, elem_id="train-curve")
                        loss_words = gr.Markdown(loss_help(), elem_id="train-loss-help")
                    with gr.Column(min_width=320):
                        gr.Markdown("**What the model writes**")
                        samples = gr.HTML("", elem_id="train-samples")
        with gr.Accordion("About this model", open=True):
            facts = gr.Markdown(served.facts_markdown(), elem_id="facts")

        inputs = [prompt, max_new_tokens, temperature, top_k, top_p, seed]
        generation = generate_btn.click(generate, inputs, output, api_name="generate", show_progress="minimal")
        stop_btn.click(None, None, None, cancels=[generation], api_visibility="private")
        dice.click(lambda: random.randint(0, 2**31 - 1), None, seed, api_visibility="private", queue=False)
        inspect_outputs = [bars, heatmaps, context]
        inspect_btn.click(inspect_on_page, prompt, inspect_outputs, api_visibility="private")
        inside_tab.select(inspect_on_page, prompt, inspect_outputs, api_visibility="private")
        gr.Button(visible=False).click(inspect, prompt, inspect_outputs, api_name="inspect")  # errors stay errors
        generate_fits = [prompt, examples.dataset]
        model_choice.input(choose, model_choice, facts, api_visibility="private").then(
            fit_generate, prompt, generate_fits, api_visibility="private")
        # The prompt belongs to Generate and See inside; the Train tab has its own text.
        for tab, shown in ((generate_tab, True), (inside_tab, True), (train_tab, False)):
            tab.select(lambda shown=shown: gr.update(visible=shown), None, prompt, api_visibility="private",
                       queue=False)

        # Train: checked at once (a refusal shows beside its field before any wait, until the next press), then in the
        # line of trainings (its place shown in the progress line), then trained. The Train button is off while it
        # runs and Stop on, and the other way round however it ends; then Generate fits the model in use.
        source.change(lambda s: (gr.Textbox(visible=s == "paste"), gr.File(visible=s == "upload")), source,
                      [pasted, upload], api_visibility="private", queue=False)
        # Fine-tuning keeps the served model's size: the size choice is off and says so.
        def start_changed(start):
            if start == SERVED:
                return gr.update(interactive=False, info=training_tab.served.note())
            return gr.update(interactive=True, info=SIZE_HELP)

        start.change(start_changed, start, size, api_visibility="private", queue=False)
        outputs = TrainOutputs(train_button=train_btn, stop_button=train_stop_btn, progress=progress,
                               loss_help=loss_words, curve=curve, samples=samples, result=result_box,
                               download=download, model_choice=model_choice, facts=facts)

        async def train(source, pasted, upload, size, seconds, start, request: gr.Request):
            async for updates in training_tab.train_page(outputs, source, pasted, upload, size, seconds, start,
                                                         request):
                yield updates

        training = train_btn.click(train, [source, pasted, upload, size, seconds, start], outputs.components(),
                                   validator=training_tab.check_page_inputs, api_name="train_in_page",
                                   api_visibility="undocumented", concurrency_limit=None, show_progress="hidden")
        training.then(lambda: (gr.update(interactive=True), gr.update(interactive=False)), None,
                      [train_btn, train_stop_btn], api_visibility="private", queue=False).then(
            fit_generate, prompt, generate_fits, api_visibility="private")
        gr.api(training_tab.train_api, api_name="train", concurrency_limit=None)  # waits in the same line
        train_stop_btn.click(training_tab.stop_page, None, progress, api_visibility="private", concurrency_limit=None,
                             show_progress="hidden")
        gr.api(training_tab.stop, api_name="stop_training", concurrency_limit=None)
        download_file = gr.File(visible=False)
        gr.Button(visible=False).click(training_tab.download, None, download_file, api_name="download",
                                       concurrency_limit=None)
        if training_tab.hub_login:
            def push(repo, tok, request: gr.Request, oauth_token: gr.OAuthToken | None):
                return training_tab.push(repo, tok, request, oauth_token)
        else:
            def push(repo, tok, request: gr.Request):
                return training_tab.push(repo, tok, request)
        push_btn.click(push, [repo_id, token], push_status, api_name="push", concurrency_id="push",
                       concurrency_limit=2)

        def forget(request: gr.Request):  # the tab closed (gradio noticed its heartbeat stop)
            sessions.drop(request.session_hash)

        demo.unload(forget)
    return demo


# ------------------------------------------------------------------------------------------------------- main


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="The tinygpt demo: stream text from a character-level GPT, "
                                     "look inside it, train your own.")
    parser.add_argument(
        "--model",
        default=None,
        help="tinygpt folder or Hub repo id (default: $MODEL_ID, else the bundled checkpoints/tinyshakespeare)",
    )
    parser.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1; 0.0.0.0 for everyone)")
    parser.add_argument("--port", type=int, default=None, help="port (default 7860, or the next free one)")
    parser.add_argument("--share", action="store_true", help="also open a temporary public gradio.live link")
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY, help=f"generations at once (default {CONCURRENCY})")
    parser.add_argument("--max-queue", type=int, default=MAX_QUEUE, help=f"requests allowed to wait (default {MAX_QUEUE})")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads per operation, for generation and training alike (default 1: a character model's "
        "matrices are too small to split, and concurrent users each get a core instead of fighting over all of them)",
    )
    parser.add_argument("--compile", action="store_true",
                        help="decode the served model with a static cache and a torch.compile'd step: faster "
                        "characters, after seconds to a minute of compiling at start")
    parser.add_argument("--train-max-seconds", type=float, default=TRAIN_MAX_SECONDS,
                        help=f"the Train tab's longest time budget (default {TRAIN_MAX_SECONDS})")
    parser.add_argument("--train-concurrency", type=int, default=TRAIN_CONCURRENCY,
                        help=f"trainings at once (default {TRAIN_CONCURRENCY}); more wait in the queue, each training "
                        "takes --threads cores")
    parser.add_argument("--max-trained-models", type=int, default=MAX_TRAINED_MODELS,
                        help=f"sessions whose trained model is kept (default {MAX_TRAINED_MODELS}); the least recently "
                        "used goes first")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.train_max_seconds < TRAIN_MIN_SECONDS or args.train_concurrency < 1 or args.max_trained_models < 1:
        print(f"app.py: error: --train-max-seconds must be at least {TRAIN_MIN_SECONDS}, --train-concurrency and "
              "--max-trained-models at least 1", file=sys.stderr)
        return 2
    model_id = args.model or os.environ.get("MODEL_ID") or str(DEFAULT_MODEL)
    hf_logging.disable_progress_bar()
    bundled = Path(model_id).expanduser() == DEFAULT_MODEL
    hint = "the bundled checkpoint is missing: pass --model or set MODEL_ID" if bundled else ""
    try:
        loaded = load_model(model_id, missing_hint=hint)
    except ModelError as err:
        print(f"app.py: error: {err}", file=sys.stderr)
        return 1
    torch.set_num_threads(max(1, args.threads))
    served = TinyGPTDemo(loaded)
    if args.compile:
        print("app.py: compiling the decode step (--compile)...", flush=True)
        print(f"app.py: compiled in {served.compile():.1f} s", flush=True)
    served.warm_up()
    training_tab = TrainTab(Sessions(max_models=args.max_trained_models), max_seconds=args.train_max_seconds,
                            hub_login=hub_login_available(), bundled_text=BUNDLED_TEXT,
                            concurrency=args.train_concurrency, served=ServedModel.of(loaded))
    browser = BrowserGenerate(loaded, root=HERE)  # Generate in the visitor's browser, where it can
    demo = build_demo(served, training_tab, browser)
    demo.queue(default_concurrency_limit=args.concurrency, max_size=args.max_queue)
    try:
        demo.launch(
            server_name=args.host, server_port=args.port, share=args.share or None, theme=gr.themes.Soft(), css=CSS,
            max_file_size=2 * TRAIN_MAX_BYTES,  # much bigger uploads are refused before they are even stored
            quiet=True, prevent_thread_lock=True,  # gradio's own hint says "set share=True in launch()"
            app_kwargs={"routes": browser.routes()},  # the browser's runtime, model and scripts: /tinygpt-web/...
        )
        print(f"* Running on local URL:  {demo.local_url}", flush=True)
        if demo.share_url:
            print(f"* Running on public URL: {demo.share_url}", flush=True)
        elif args.share:  # gradio said why just above (offline, or its tunnel client could not be fetched)
            print("* No public link: gradio could not create one (see above); the demo runs on the local URL only",
                  flush=True)
        else:
            print("* To create a temporary public link, run app.py with --share", flush=True)
        demo.block_thread()
    except OSError as err:  # gradio: "Cannot find empty port in range: ..." and a traceback
        if "empty port" not in str(err):
            raise
        busy = f"port {args.port} is in use" if args.port else "no free port from 7860 to 7959"
        print(f"app.py: error: {busy}; pass a free one with --port (without --port the demo takes the first free "
              "port from 7860)", file=sys.stderr)
        return 1
    finally:
        training_tab.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
