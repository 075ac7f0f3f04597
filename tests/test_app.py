"""app.py through a real server: `python app.py --model DIR --port P` in a subprocess, called with gradio_client.

One server per module (starting one costs a few seconds). Its model is a tiny random-weights tinygpt: good
for exact comparisons with `model.generate` in this process; "Shakespeare-like text" needs the trained
checkpoint and is checked where that is tested.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import shutil
import subprocess
import sys
import threading
import time

import pytest
import torch
from gradio_client import Client
from gradio_client.exceptions import AppError

from app_helpers import (
    APP,
    REPO,
    TINY_TEXT,
    AppServer,
    app_env,
    call_raw,
    fn_index,
    load_app_module,
    stream_generate,
)
from tinygpt.demo import MAX_SEED, SeededSampler, ThreadStream, TinyGPTDemo, load_model

pytestmark = pytest.mark.slow

PROMPT = "ROMEO:\n"


@pytest.fixture(scope="module")
def model_dir(served_model_dir):
    """The folder the shared `server` (conftest.py) serves."""
    return served_model_dir


@pytest.fixture(scope="module")
def client(server):
    return Client(server.url, verbose=False)


@pytest.fixture(scope="module")
def reference(model_dir):
    """The same model, loaded in this process with the Auto classes and the folder's own code."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir, trust_remote_code=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=True)
    return model, tokenizer


def generate(client, prompt=PROMPT, max_new_tokens=40, temperature=0.8, top_k=0, top_p=1.0, seed=0):
    return client.predict(prompt, max_new_tokens, temperature, top_k, top_p, seed, api_name="/generate")


def reference_generate(reference, prompt, max_new_tokens, **kwargs) -> str:
    model, tokenizer = reference
    input_ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        out = model.generate(input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=max_new_tokens, **kwargs)
    return prompt + tokenizer.decode(out[0, input_ids.shape[1] :])


def test_generate_returns_prompt_plus_continuation(client):
    text = generate(client, max_new_tokens=50, seed=1)
    assert text.startswith(PROMPT)
    assert len(text) == len(PROMPT) + 50
    assert set(text) <= set(TINY_TEXT)


def test_greedy_equals_model_generate(client, reference):
    # 80 new characters with block_size 32: the window slides, as the seed's idx[:, -block_size:] does.
    expected = reference_generate(reference, PROMPT, 80, do_sample=False)
    assert generate(client, max_new_tokens=80, temperature=0, seed=0) == expected
    assert generate(client, max_new_tokens=80, temperature=0, seed=12345) == expected  # greedy ignores the seed


@pytest.mark.parametrize("temperature, top_k, top_p", [(1.0, 0, 1.0), (0.7, 10, 0.9)])
def test_sampling_equals_transformers_sampling_with_that_seed(client, reference, temperature, top_k, top_p):
    """The per-request generator draws exactly what transformers' own sampling draws after torch.manual_seed."""
    seed = 2024
    torch.manual_seed(seed)
    expected = reference_generate(
        reference, PROMPT, 60, do_sample=True, temperature=temperature, top_k=top_k or None, top_p=top_p
    )
    assert generate(client, max_new_tokens=60, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed) == expected


def test_same_seed_same_text_different_seed_different_text(client):
    first = generate(client, max_new_tokens=60, seed=7)
    assert generate(client, max_new_tokens=60, seed=7) == first
    assert generate(client, max_new_tokens=60, seed=8) != first


CONCURRENT_SEEDS = list(range(100, 108))
CONCURRENT_SETTINGS = dict(max_new_tokens=150, temperature=0.9, top_k=20, top_p=0.95)


@pytest.fixture(scope="module")
def solo_texts(client):
    """What each seed gives when it is the only request on the server."""
    texts = {seed: generate(client, seed=seed, **CONCURRENT_SETTINGS) for seed in CONCURRENT_SEEDS}
    assert len(set(texts.values())) == len(CONCURRENT_SEEDS)
    return texts


def test_eight_concurrent_clients_each_get_their_own_seeds_text(server, solo_texts):
    start = threading.Barrier(len(CONCURRENT_SEEDS))

    def one_client(seed):
        own = Client(server.url, verbose=False)  # a separate client (and session) per user
        start.wait()
        return generate(own, seed=seed, **CONCURRENT_SETTINGS)

    with concurrent.futures.ThreadPoolExecutor(len(CONCURRENT_SEEDS)) as pool:
        together = dict(zip(CONCURRENT_SEEDS, pool.map(one_client, CONCURRENT_SEEDS)))
    assert together == solo_texts


def test_concurrent_generations_really_overlap(server, solo_texts):
    """The same on the raw queue protocol, which also shows that the 8 requests were served at the same time."""
    fn = fn_index(server.config(), "generate")
    start = threading.Barrier(len(CONCURRENT_SEEDS))
    s = CONCURRENT_SETTINGS

    def one_stream(seed):
        start.wait()
        return stream_generate(server.url, [PROMPT, s["max_new_tokens"], s["temperature"], s["top_k"], s["top_p"], seed], fn)

    with concurrent.futures.ThreadPoolExecutor(len(CONCURRENT_SEEDS)) as pool:
        records = dict(zip(CONCURRENT_SEEDS, pool.map(one_stream, CONCURRENT_SEEDS)))
    assert {seed: r["final"] for seed, r in records.items()} == solo_texts
    # Every request had started before the first one finished: they ran side by side, not one after another.
    assert max(r["started"] for r in records.values()) < min(r["completed"] for r in records.values())


def test_text_streams_character_by_character(server):
    record = stream_generate(server.url, [PROMPT, 400, 0.8, 0, 1.0, 3], fn_index(server.config(), "generate"))
    texts = [text for _, text in record["texts"]]
    assert texts[0] == PROMPT  # the prompt shows at once
    assert texts[-1] == record["final"] and len(record["final"]) == len(PROMPT) + 400
    assert all(a == b[: len(a)] and len(b) > len(a) for a, b in zip(texts, texts[1:]))  # only ever grows
    # Characters go out as they are made, at most 50 updates a second: many small steps, not one block at the end.
    steps = [len(b) - len(a) for a, b in zip(texts, texts[1:])]
    assert len(steps) >= 8 and steps[0] < 50, steps
    first_char = record["texts"][1][0]
    assert first_char < record["completed"] / 2, (first_char, record["completed"])


def test_unknown_characters_are_named_and_the_server_keeps_serving(client):
    with pytest.raises(AppError) as error:
        generate(client, prompt="héllo ☃ world")
    message = str(error.value)
    assert message.startswith("2 character(s) not in the model's vocabulary: 'é', '☃'."), message
    assert generate(client, max_new_tokens=10).startswith(PROMPT)


@pytest.mark.parametrize(
    "inputs, expected",
    [
        (dict(prompt="a" * 2001), "limit is 2000"),
        (dict(max_new_tokens=5000),  # refused, not clamped
         "max_new_tokens must be a whole number from 1 to 1000: 5000 is greater than the maximum value 1000"),
        (dict(max_new_tokens=0), "max_new_tokens must be a whole number from 1 to 1000: 0 is less than the minimum value 1"),
        (dict(temperature=-0.5), "minimum value 0"),
        (dict(top_p=0.0), "minimum value 0.05"),
        (dict(seed=-1), "minimum value 0"),
    ],
    ids=["prompt-too-long", "too-many-tokens", "zero-tokens", "negative-temperature", "top-p-zero", "negative-seed"],
)
def test_bad_settings_give_clear_errors(client, inputs, expected):
    with pytest.raises(AppError, match=expected):
        generate(client, **inputs)


# What Gradio itself refused before tinygpt saw the request answered `{"error": null}` (the reason went only to the
# server's log), ignored extra inputs, and said "Value -1 is less than minimum value 0.0." without the parameter.
# Every such request now gets one line that names the input and what it expects (tinygpt/demo_api.py).
GOOD = [PROMPT, 20, 0.8, 0, 1.0, 1]
VOCAB = len(set(TINY_TEXT))  # top_k's slider goes up to the vocabulary size


def with_input(i, value):
    return GOOD[:i] + [value] + GOOD[i + 1:]


GRADIO_REJECTIONS = [
    ("a word for a number", "generate", with_input(1, "many"),
     "max_new_tokens must be a whole number from 1 to 1000, got 'many'"),
    ("null for a number", "generate", with_input(1, None), "max_new_tokens must be a whole number from 1 to 1000, got null"),
    ("NaN for a whole number", "generate", with_input(3, float("nan")),
     f"top_k must be a whole number from 0 to {VOCAB}, got NaN"),
    ("NaN for a number", "generate", with_input(2, float("nan")), "temperature must be a number from 0 to 2, got NaN"),
    ("null seed", "generate", with_input(5, None), f"seed must be a whole number from 0 to {MAX_SEED}, got null"),
    ("fractional seed", "generate", with_input(5, 1.5), f"seed must be a whole number from 0 to {MAX_SEED}, got 1.5"),
    ("true for a number", "generate", with_input(5, True), f"seed must be a whole number from 0 to {MAX_SEED}, got true"),
    ("a number for text", "generate", with_input(0, 5), "prompt must be text (a string), got 5"),
    ("a range error", "generate", with_input(2, -1),
     "temperature must be a number from 0 to 2: -1 is less than the minimum value 0"),
    ("too few inputs", "generate", GOOD[:3],
     "/generate takes 6 inputs (prompt, max_new_tokens, temperature, top_k, top_p, seed), got 3: missing top_k (a whole "
     f"number from 0 to {VOCAB}), top_p (a number from 0.05 to 1), seed (a whole number from 0 to {MAX_SEED}). Send all "
     "of them, in this order (gradio_client fills in the defaults of inputs given by keyword)"),
    ("too many inputs", "generate", GOOD + [99],
     "/generate takes 6 inputs (prompt, max_new_tokens, temperature, top_k, top_p, seed), got 7: leave out the last 1"),
    ("no input", "inspect", [], "/inspect takes 1 input (prompt), got 0: missing prompt (text (a string))"),
    ("the last release's four-input /train", "train", [TINY_TEXT * 20, "1 layer · 4 heads · 32 wide · context 16", 10, 0],
     "/train takes 5 inputs (text, model_size, seconds, max_iters, start_from), got 4: missing start_from"),
    ("an input for an endpoint that takes none", "stop_training", [1], "/stop_training takes no inputs, got 1"),
    ("too few for /push", "push", ["you/tiny"], "/push takes 2 inputs (repo, tok), got 1: missing tok"),
    ("a path for a file", "train_in_page", ["upload", "", "/etc/passwd", "1 layer · 4 heads · 32 wide · context 16", 10,
                                            "scratch"], "upload must be a file uploaded to this server, as {\"path\""),
    ("a file that was not uploaded", "train_in_page",
     ["upload", "", {"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}}, "1 layer · 4 heads · 32 wide · "
      "context 16", 10, "scratch"], "upload names a file that was not uploaded to this server (/etc/passwd): upload it "
     "first (gradio_client's handle_file(path) does)"),
    ("an unknown choice", "train_in_page", ["clipboard", "", None, "1 layer · 4 heads · 32 wide · context 16", 10,
                                            "scratch"], "source must be one of 'bundled', 'paste', 'upload', got 'clipboard'"),
]


@pytest.mark.parametrize("api_name, inputs, expected", [c[1:] for c in GRADIO_REJECTIONS],
                         ids=[c[0] for c in GRADIO_REJECTIONS])
def test_what_gradio_refuses_names_the_input_instead_of_null(server, client, api_name, inputs, expected):
    tracebacks = server.log().count("Traceback")
    result = call_raw(server.url, api_name, inputs)
    assert result["success"] is False and result["outputs"] == [], result
    assert (result["error"] or "").startswith(expected) and "\n" not in result["error"], result["error"]
    assert server.log().count("Traceback") == tracebacks, server.log()[-3000:]  # a refusal, not a crash
    assert generate(client, max_new_tokens=5).startswith(PROMPT)  # and the server keeps serving


def test_gradio_client_gets_the_same_words(client):
    """gradio_client raises AppError with the message; `/generate`'s positional inputs are unchanged."""
    with pytest.raises(AppError, match=r"^max_new_tokens must be a whole number from 1 to 1000, got 'many'$"):
        generate(client, max_new_tokens="many")
    with pytest.raises(AppError, match=rf"^seed must be a whole number from 0 to {MAX_SEED}: {MAX_SEED + 1} is greater "
                                       rf"than the maximum value {MAX_SEED}$"):
        generate(client, seed=MAX_SEED + 1)
    assert len(generate(client, max_new_tokens=5, seed=MAX_SEED)) == len(PROMPT) + 5


def test_a_fault_of_the_server_is_an_error_that_says_so_not_null():
    """A handler that fails unexpectedly: the client is told which endpoint failed (no server internals), the
    traceback goes to the log (gr.Error's print_exception), a refused request never reaches the handler."""
    import gradio as gr

    from tinygpt.demo_api import CheckedBlocks, RequestError

    calls = []
    with CheckedBlocks() as blocks:
        n = gr.Slider(1, 10, step=1, precision=0)
        out = gr.Textbox()
        button = gr.Button()
        button.click(lambda n: calls.append(n) or 1 / 0, n, out, api_name="divide")
    divide = next(fn for fn in blocks.fns.values() if fn.api_name == "divide")
    with pytest.raises(gr.Error) as failed:
        asyncio.run(blocks.process_api(divide, [3]))
    assert failed.value.message == ("/divide failed on the server (ZeroDivisionError); this request was not completed, "
                                    "and the server's log has the details")
    assert isinstance(failed.value.__cause__, ZeroDivisionError) and failed.value.print_exception and calls == [3]
    with pytest.raises(RequestError) as refused:
        asyncio.run(blocks.process_api(divide, [11]))
    assert refused.value.message == "n must be a whole number from 1 to 10: 11 is greater than the maximum value 10"
    assert not refused.value.print_exception and calls == [3]


def test_empty_prompt_starts_from_the_first_vocabulary_character(client, reference):
    model, tokenizer = reference
    start = torch.zeros((1, 1), dtype=torch.long)  # the seed's starting context
    with torch.inference_mode():
        out = model.generate(start, attention_mask=torch.ones_like(start), max_new_tokens=30, do_sample=False)
    assert generate(client, prompt="", max_new_tokens=30, temperature=0) == tokenizer.decode(out[0, 1:])


def test_see_inside_returns_top10_chart_attention_maps_and_context(client, reference):
    model, tokenizer = reference
    prompt = "What light through yonder window breaks?"  # 40 characters, more than block_size 32
    chart, plot, context = client.predict(prompt, api_name="/inspect")
    rows = chart["data"]
    assert len(rows) == 10 and chart["columns"] == ["next character", "probability"]
    probabilities = [p for _, p in rows]
    assert probabilities == sorted(probabilities, reverse=True)
    ids = tokenizer(prompt[-32:], return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        expected = torch.softmax(model(ids).logits[0, -1], -1).topk(10)
    assert probabilities == pytest.approx(expected.values.tolist(), abs=1e-4)
    shown = {"\n": "⏎", " ": "␣"}
    assert [c for c, _ in rows] == [shown.get(c, c) for c in tokenizer.convert_ids_to_tokens(expected.indices.tolist())]
    # One heat map per layer and head (2 x 4), each a PNG labelled with its layer and head.
    assert plot.count('<img alt="layer') == 8 and plot.count("data:image/png;base64,") == 8
    assert "layer 2 · head 4" in plot
    assert "only the last 32" in context and prompt[-32:] in context


def test_see_inside_an_empty_prompt_explains_instead_of_drawing_1x1_maps(client):
    chart, maps, context = client.predict("", api_name="/inspect")
    assert len(chart["data"]) == 10  # what the model predicts after its first vocabulary character
    assert "<img" not in maps and "Type a prompt" in maps
    assert "The prompt is empty" in context


def test_see_inside_names_unknown_characters(client):
    with pytest.raises(AppError, match="'€'"):
        client.predict("price: 5€", api_name="/inspect")


def facts_markdown(server) -> str:
    return next(c["props"]["value"] for c in server.config()["components"] if c.get("props", {}).get("elem_id") == "facts")


def test_model_facts_are_on_the_page(server, model_dir, reference):
    facts = facts_markdown(server)
    n_params = sum(p.numel() for p in reference[0].parameters())
    # The folder's name, never the server's absolute path.
    assert f"`{model_dir.name}`" in facts and str(model_dir) not in facts and f"{n_params:,}" in facts
    assert "| layers · heads · width | 2 · 4 · 64 |" in facts and "| context (block size) | 32 characters |" in facts
    assert "not recorded" in facts  # no trainer_state.json: no val loss


def test_stop_cancels_and_the_next_request_works(server, client):
    job = client.submit(PROMPT, 1000, 1.0, 0, 1.0, 5, api_name="/generate")
    deadline = time.monotonic() + 30
    while len(job.outputs()) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    job.cancel()
    deadline = time.monotonic() + 10
    while not job.done() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert job.done()
    outputs = job.outputs()
    assert outputs and len(outputs[-1]) < len(PROMPT) + 1000
    assert len(generate(client, max_new_tokens=5)) == len(PROMPT) + 5


# ------------------------------------------------------------------ in process: the generation machinery itself


@pytest.fixture(scope="module")
def app_module():
    return load_app_module()


@pytest.fixture(scope="module")
def demo_model(model_dir):
    return TinyGPTDemo(load_model(model_dir))


def test_closing_the_stream_stops_the_worker_thread(demo_model):
    """What Stop (and a client that goes away) does: gradio closes the generator; the worker must end promptly."""

    async def consume_a_little():
        stream = demo_model.generate(PROMPT, 1000, 1.0, 0, 1.0, 0)
        texts = [await anext(stream) for _ in range(5)]
        await stream.aclose()
        return texts

    before = {t for t in threading.enumerate() if t.name == "tinygpt-generate"}
    texts = asyncio.run(consume_a_little())
    assert texts[0] == PROMPT and len(texts[-1]) > len(PROMPT)
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        running = {t for t in threading.enumerate() if t.name == "tinygpt-generate"} - before
        if not running:
            break
        time.sleep(0.01)
    assert not running, "the generation thread kept running after the stream was closed"


def test_the_thread_bridge_hands_over_items_in_order_then_the_error_and_stops_its_worker():
    """ThreadStream, the one bridge Generate and Train use: what the worker emitted arrives in order before its
    error; a quiet worker still wakes the reader (`wake_every`); closing the stream tells the worker to stop."""

    async def run():
        def failing(emit, stop):
            for i in range(5):
                emit(i)
            raise RuntimeError("boom")

        got = []
        with pytest.raises(RuntimeError, match="boom"):
            async for batch in ThreadStream(failing, "test-failing").start().batches():
                got += batch
        assert got == [0, 1, 2, 3, 4]

        def quiet(emit, stop):
            stopped.append(stop.wait(10))

        stopped = []
        stream = ThreadStream(quiet, "test-quiet").start()
        assert await anext(stream.batches(wake_every=0.05)) == []
        await stream.aclose()
        for _ in range(100):
            if stopped:
                break
            await asyncio.sleep(0.01)
        assert stopped == [True]

    asyncio.run(run())


def test_model_facts_report_the_val_loss_of_a_trained_folder(model_dir, tmp_path):
    import shutil

    trained = shutil.copytree(model_dir, tmp_path / "trained")
    # The folder's weights are the best evaluation's (train.py --keep best, the Train tab): its val loss is shown.
    history = [{"step": 2700, "val_loss": 1.4821}, {"step": 3000, "val_loss": 1.49}]
    state = {"global_step": 3000, "best_val_loss": 1.4821, "best_step": 2700, "model_step": 2700,
             "log_history": history}
    (trained / "trainer_state.json").write_text(json.dumps(state))
    facts = TinyGPTDemo(load_model(trained)).facts_markdown()
    assert "| 1.4821 (2.14 bits per character) at step 2,700 |" in facts


def test_sampler_is_private_to_its_request():
    """Two samplers with the same seed draw the same characters even when the global RNG is disturbed between."""
    logits = torch.randn(1, 65)
    a = SeededSampler(1.0, 0, 1.0, seed=11)
    b = SeededSampler(1.0, 0, 1.0, seed=11)
    draws_a, draws_b = [], []
    for _ in range(50):
        draws_a.append(int(a(None, logits.clone()).argmax()))
        torch.rand(100)  # another request using the global RNG
        draws_b.append(int(b(None, logits.clone()).argmax()))
    assert draws_a == draws_b and len(set(draws_a)) > 5


def collect(stream) -> str:
    async def last():
        text = None
        async for text in stream:
            pass
        return text

    return asyncio.run(last())


def test_compile_sends_requests_through_the_compiled_step_with_the_same_text(model_dir):
    """`--compile`: a static cache and a torch.compile'd decode step (tinygpt.generate.compile_decoding). Every
    character after the first of a request goes through the compiled step (counted here), and greedy and seeded
    text is what the eager model writes, past block_size too."""
    requests = [(PROMPT, 80, 0.0, 0, 1.0, 0), (PROMPT, 60, 0.8, 0, 1.0, 2024), ("", 40, 0.7, 10, 0.9, 3)]
    served = TinyGPTDemo(load_model(model_dir))
    expected = [collect(served.generate(*r)) for r in requests]
    assert served.compile() > 0
    compiled, calls = served.model._compiled_call, []

    def counted(*args, **kwargs):
        calls.append(1)
        return compiled(*args, **kwargs)

    served.model._compiled_call = counted  # what generate() fetches through get_compiled_call
    assert [collect(served.generate(*r)) for r in requests] == expected
    assert len(calls) >= sum(r[1] - 1 for r in requests), len(calls)


def test_the_compile_flag_compiles_the_served_model_before_serving(app_module, model_dir, monkeypatch, capsys):
    import gradio as gr

    order = []
    monkeypatch.setattr(TinyGPTDemo, "compile", lambda self: order.append("compile") or 1.5)
    def launch(self, **kwargs):  # what launch leaves behind, without a server
        order.append("launch")
        self.local_url, self.share_url = "http://127.0.0.1:7860/", None

    monkeypatch.setattr(gr.Blocks, "launch", launch)
    monkeypatch.setattr(gr.Blocks, "block_thread", lambda self: None)
    assert app_module.main(["--model", str(model_dir), "--compile"]) == 0
    assert order == ["compile", "launch"] and "app.py: compiled in 1.5 s" in capsys.readouterr().out


@pytest.mark.parametrize("share, said", [
    (True, "* No public link: gradio could not create one (see above); the demo runs on the local URL only"),
    (False, "* To create a temporary public link, run app.py with --share"),
])
def test_share_that_gets_no_link_says_so_instead_of_asking_for_share(app_module, model_dir, monkeypatch, capsys,
                                                                      share, said):
    """Offline, gradio cannot make a gradio.live link (it says why); app.py used to answer "run app.py with --share"
    to a user who had just done that."""
    import gradio as gr

    asked = {}

    def launch(self, **kwargs):  # what launch leaves behind when the share link fails, without a server
        asked.update(kwargs)
        self.local_url, self.share_url = "http://127.0.0.1:7860/", None

    monkeypatch.setattr(gr.Blocks, "launch", launch)
    monkeypatch.setattr(gr.Blocks, "block_thread", lambda self: None)
    assert app_module.main(["--model", str(model_dir), *(["--share"] if share else [])]) == 0
    out = capsys.readouterr().out
    assert asked["share"] is (True if share else None) and said in out.splitlines() and out.count("--share") <= 1


# ---------------------------------------------------------------------------- starting up: --model and MODEL_ID


def test_default_model_is_the_bundled_checkpoint_next_to_app_py(app_module, tmp_path, monkeypatch, capsys):
    assert app_module.DEFAULT_MODEL == REPO / "checkpoints" / "tinyshakespeare"  # whatever the working directory
    # With no --model and no MODEL_ID the default is what gets loaded; a missing one says how to choose another.
    missing = tmp_path / "checkpoints" / "tinyshakespeare"
    monkeypatch.setattr(app_module, "DEFAULT_MODEL", missing)
    monkeypatch.delenv("MODEL_ID", raising=False)
    monkeypatch.chdir(tmp_path)
    assert app_module.main(["--port", "9"]) == 1
    err = capsys.readouterr().err
    assert str(missing) in err and "pass --model or set MODEL_ID" in err


def test_model_id_env_loads_a_hub_repo_like_a_space(model_dir, tmp_path):
    """A Space sets MODEL_ID to a repo id; here the Hub is tests/hub_server.py on 127.0.0.1."""
    from huggingface_hub import HfApi

    from hub_server import HubServer

    with HubServer(tmp_path / "hub") as hub:
        api = HfApi(endpoint=hub.url, token="hf_test")
        api.create_repo("tester/tiny-app")
        api.upload_folder(repo_id="tester/tiny-app", folder_path=model_dir)
        card = "---\nlibrary_name: transformers\npipeline_tag: text-generation\nval_loss: 1.2345\n---\n# tiny\n"
        api.upload_file(repo_id="tester/tiny-app", path_or_fileobj=card.encode(), path_in_repo="README.md")
        env = app_env(MODEL_ID="tester/tiny-app", HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "hf_home"))
        with AppServer([], tmp_path / "server.log", env=env) as server:
            client = Client(server.url, verbose=False)
            assert generate(client, max_new_tokens=20, seed=1).startswith(PROMPT)
            facts = facts_markdown(server)
            assert "tester/tiny-app" in facts and "| 1.2345 (1.78 bits per character) |" in facts  # from the card


@pytest.fixture
def bad_models(tmp_path, model_dir):
    gpt2 = tmp_path / "gpt2"
    gpt2.mkdir()
    (gpt2 / "config.json").write_text('{"model_type": "gpt2"}')
    (tmp_path / "empty").mkdir()
    (tmp_path / "file.txt").write_text("hello")
    no_tokenizer = tmp_path / "no_tokenizer"
    no_tokenizer.mkdir()
    for name in ("config.json", "model.safetensors"):
        (no_tokenizer / name).write_bytes((model_dir / name).read_bytes())
    garbled = tmp_path / "garbled_tokenizer"
    shutil.copytree(model_dir, garbled)
    (garbled / "tokenizer.json").write_text('{"version": "1.0", "model": {garbled')
    return {
        "garbled-tokenizer": (garbled, "garbled_tokenizer/tokenizer.json: not valid JSON"),
        "missing": (tmp_path / "nope", "no such folder"),
        "empty": (tmp_path / "empty", "no config.json"),
        "gpt2": (gpt2, "not a tinygpt model"),
        "file": (tmp_path / "file.txt", "is a file"),
        "no-tokenizer": (no_tokenizer, "no tokenizer.json"),
    }


@pytest.mark.parametrize("case", ["missing", "empty", "gpt2", "file", "no-tokenizer", "garbled-tokenizer"])
@pytest.mark.parametrize("how", ["flag", "env"])
def test_bad_model_is_one_line_error_before_the_server_starts(app_module, bad_models, case, how, capsys, monkeypatch):
    path, expected = bad_models[case]
    if how == "env":
        monkeypatch.setenv("MODEL_ID", str(path))
        argv = ["--port", "9"]
    else:
        monkeypatch.delenv("MODEL_ID", raising=False)
        argv = ["--model", str(path), "--port", "9"]
    assert app_module.main(argv) == 1  # returns before building the UI, so nothing ever listens on port 9
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("app.py: error: ") and expected in err, err


def test_bad_model_exits_nonzero_from_the_command_line(tmp_path):
    """The real command, twice at once: a missing folder, and a repo id that the (local) Hub does not have."""
    from hub_server import HubServer

    cases = {
        "missing folder": (["--model", str(tmp_path / "nope")], "no such folder"),
        "unknown repo": (["--model", "nobody/no-such-model"], "nobody/no-such-model"),
    }
    with HubServer(tmp_path / "hub") as hub:
        env = app_env(HF_HOME=str(tmp_path / "hf_home"), HF_ENDPOINT=hub.url)
        processes = {
            name: subprocess.Popen(
                [sys.executable, str(APP), *args, "--port", "9"],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
            )
            for name, (args, _) in cases.items()
        }
        results = {name: (*p.communicate(timeout=120), p.returncode) for name, p in processes.items()}
    for name, (out, err, returncode) in results.items():
        lines = [line for line in err.splitlines() if line.strip()]
        assert returncode == 1, f"{name}: exited {returncode}\n{out}\n{err}"
        assert len(lines) == 1 and lines[0].startswith("app.py: error:"), f"{name}: {err!r}"
        assert cases[name][1] in lines[0], f"{name}: {lines[0]}"
        assert "Running on" not in out, f"{name}: the server started"


def test_a_busy_port_is_one_line_and_the_startup_lines_point_to_share(server, model_dir, tmp_path):
    """The running server says how to get a public link with app.py's own flag (gradio's says `launch()`); a second
    server on its port stops with one line instead of gradio's traceback."""
    deadline = time.monotonic() + 30  # gradio answers /config a moment before launch() returns and we print
    while "--share" not in (log := server.log()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert f"* Running on local URL:  {server.url}/" in log
    assert "run app.py with --share" in log and "launch()" not in log
    busy = subprocess.run([sys.executable, str(APP), "--model", str(model_dir), "--port", str(server.port)],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, env=app_env(), timeout=120)
    assert busy.returncode == 1, busy.stderr
    assert busy.stderr.strip() == (f"app.py: error: port {server.port} is in use; pass a free one with --port "
                                   "(without --port the demo takes the first free port from 7860)")
