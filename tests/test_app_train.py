"""The demo's Train tab through a real server (conftest's `server`: `python app.py` in a subprocess, driven with
gradio_client), and its rooms in process (tinygpt/train_tab: the request's checks, the line, the job, the view).

The served model is a tiny random tinygpt trained on Shakespeare-like characters; the tab trains on a text made of
characters that model has never seen (digits, Greek, arrows), so which model answered is plain from the text.
Trainings are short (max_iters 60 on the smallest size: a few seconds), and the server's time budget cap is low.
The local Hub (conftest's `demo_hub`) receives the pushes; HF_ENDPOINT points the server at it.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError, ValidationError
from huggingface_hub import HfApi

from app_helpers import REPO, TINY_TEXT, call_raw, load_app_module, make_model_dir
from no_tinygpt import run_without_tinygpt
from tinygpt.demo import BadInput, TinyGPTDemo, load_model
from tinygpt.run_state import RunState
from tinygpt.train_tab import handlers, job as job_module, request as request_module, view
from tinygpt.train_tab.handlers import TrainTab, hub_login_available
from tinygpt.train_tab.job import Job, LossPoint, evaluation_settings
from tinygpt.train_tab.line import WaitingLine
from tinygpt.train_tab.request import PAGE_FIELDS, RunRequest, check_text

pytestmark = pytest.mark.slow

SMALL = "1 layer · 4 heads · 32 wide · context 16"
SEED_SIZE = "2 layers · 4 heads · 64 wide · context 32"
BIG_SIZE = "4 layers · 4 heads · 128 wide · context 64"
# None of these characters is in the served model's vocabulary (app_helpers.TINY_TEXT): digits, Greek, arrows.
LINES = ["λ1 → 2 ≠ 3", "μ4 → 5 ≠ 6", "π7 → 8 ≠ 9", "σ0 → 1 ≠ 2", "λμ → πσ"]
NEW_TEXT = "\n".join(LINES[i % len(LINES)] for i in range(300)) + "\n"
# The lines forwards, then backwards in the held-out 10 %: the more the model learns the forward order by heart, the
# worse it reads the backward one. Its val loss falls, then rises (best at step 30 of 60, the last far worse): the
# model a run offers must be its best, not its last.
TRAINED_TEXT = ("\n".join(LINES[i % len(LINES)] for i in range(270)) + "\n"
                + "\n".join(LINES[i % len(LINES)][::-1] for i in range(30)) + "\n")
NEW_PROMPT = "λ1 → "
PROMPT = "ROMEO:\n"
MAX_SECONDS = 60  # the server's --train-max-seconds (conftest): the default budget, as the README's call uses it


def new_client(server) -> Client:
    return Client(server.url, verbose=False)


def train(client, text=NEW_TEXT, size=SMALL, seconds=MAX_SECONDS, max_iters=60,
          start_from="scratch") -> list[dict]:
    """/train to the end; every streamed progress dict."""
    job = client.submit(text, size, seconds, max_iters, start_from, api_name="/train")
    job.result(timeout=120)
    return job.outputs()


def generate(client, prompt, max_new_tokens=40, temperature=0.0, seed=0) -> str:
    return client.predict(prompt, max_new_tokens, temperature, 0, 1.0, seed, api_name="/generate")


@pytest.fixture(scope="module")
def trained_session(server):
    """A client session that trained a model on TRAINED_TEXT, and what /train streamed."""
    client = new_client(server)
    started = time.monotonic()
    updates = train(client, text=TRAINED_TEXT)
    return client, updates, time.monotonic() - started


# ------------------------------------------------------------------------------------------ train, then use it


def test_train_streams_progress_and_a_sample_per_evaluation(trained_session):
    client, updates, seconds = trained_session
    assert len(updates) >= 3, updates  # streamed, not one answer at the end
    final = updates[-1]
    assert final["status"] == "finished" and final["step"] == final["max_iters"] == 60
    steps = [u["step"] for u in updates]
    assert steps == sorted(steps)
    # max_iters 60 evaluates every 15 steps, the first at step 0 (the untrained model); every other one also samples.
    evaluations = final["evaluations"]
    assert [e["step"] for e in evaluations] == [0, 15, 30, 45, 60]
    assert evaluations[-1]["train_loss"] < evaluations[0]["train_loss"] - 1  # it learnt (the training text)
    assert final["time_left_s"] == 0 and final["n_params"] > 0 and final["characters"] == len(TRAINED_TEXT)
    # The offered model is the evaluation with the lowest val loss, and the page says which: here not the last.
    best = min(evaluations, key=lambda e: e["val_loss"])
    assert final["best_step"] == best["step"] and final["best_val_loss"] == pytest.approx(best["val_loss"])
    assert best["step"] < 60 and evaluations[-1]["val_loss"] > best["val_loss"] + 0.5, evaluations
    # Samples at 0, 30 and 60, and of the kept weights, sampled when the folder was saved (the page and the card
    # show what the offered model writes, test_the_sample_shown_is_what_the_sessions_model_writes)
    sampled = [e for e in evaluations if "sample" in e]
    assert [e["step"] for e in sampled] == sorted({0, 30, 60, best["step"]}), evaluations
    assert len({e["sample"] for e in sampled}) == len(sampled)  # each wrote something new
    # The val loss rose while the train loss fell: the run says what that means, in the plain words the engine
    # gives train.py's log and the card too.
    assert any(w.startswith("Val loss is rising while train loss falls") for w in final["warnings"]), \
        final["warnings"]


def test_the_sample_shown_is_what_the_sessions_model_writes(trained_session):
    """Each sample is the model of its step writing 300 characters from a newline with the run's seed (1337,
    the cpu preset's) at temperature 1: the same request to /generate from this session gives exactly the best
    evaluation's sample (not the last one's), so the samples are real output and the session uses the best-val
    model, not the last."""
    client, updates, _ = trained_session
    final = updates[-1]
    best = next(e for e in final["evaluations"] if e["step"] == final["best_step"])
    assert best is not final["evaluations"][-1] and best["sample"] != final["evaluations"][-1]["sample"]
    assert generate(client, "\n", 300, temperature=1.0, seed=1337) == best["sample"]


def test_same_session_generates_from_its_model_and_a_new_session_gets_the_served_one(server, trained_session):
    client, _, _ = trained_session
    text = generate(client, NEW_PROMPT, 60)
    assert text.startswith(NEW_PROMPT) and len(text) == len(NEW_PROMPT) + 60
    assert set(text) <= set(TRAINED_TEXT)  # only characters of the text it was trained on
    # The README's call, in a fresh session: the served model, which has never seen 'λ'.
    other = new_client(server)
    served = other.predict("ROMEO:\n", 300, 0.8, 0, 1.0, 42, api_name="/generate")
    assert served.startswith(PROMPT) and len(served) == len(PROMPT) + 300 and not set(served) & set("λ→≠0123456789")
    with pytest.raises(AppError, match="'λ'"):
        generate(other, NEW_PROMPT)


def test_see_inside_uses_the_sessions_model(server, trained_session):
    client, _, _ = trained_session
    chart, maps, context = client.predict(NEW_PROMPT, api_name="/inspect")
    shown = {"\n": "⏎", " ": "␣"}
    assert {c for c, _ in chart["data"]} <= {shown.get(c, c) for c in TRAINED_TEXT}
    assert "block_size = 16" in context and maps.count("<img") == 4  # 1 layer x 4 heads
    chart, maps, context = new_client(server).predict(PROMPT, api_name="/inspect")
    assert "block_size = 32" in context and maps.count("<img") == 8


def test_a_prompt_with_characters_the_trained_model_never_saw_names_them(trained_session):
    client, _, _ = trained_session
    with pytest.raises(AppError) as error:
        generate(client, "ROMEO:")
    message = str(error.value)
    assert "not in the model's vocabulary" in message
    assert all(f"'{c}'" in message for c in "ROME:"), message
    assert generate(client, NEW_PROMPT, 5).startswith(NEW_PROMPT)  # and the session carries on


def test_download_is_the_trained_folder_and_loads_without_tinygpt(trained_session, tmp_path):
    client, updates, _ = trained_session
    archive = Path(client.predict(api_name="/download"))
    assert archive.suffix == ".zip"
    with zipfile.ZipFile(archive) as z:
        z.extractall(tmp_path)
    (folder,) = tmp_path.iterdir()
    assert folder.name == "tinygpt-text"
    names = {p.name for p in folder.iterdir()}
    # What train.py writes: weights, config and code, tokenizer, the record of the run, the card, the plot, and
    # the resume state.
    assert {"config.json", "model.safetensors", "configuration_tinygpt.py", "modeling_tinygpt.py", "tokenizer.json",
            "trainer_state.json", "README.md", "loss.png", "training_state.pt"} <= names, names
    state = json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
    assert state["global_step"] == 60
    # The folder's model is the best evaluation's, not the last step's.
    assert state["model_step"] == state["best_step"] == updates[-1]["best_step"] < 60
    # The folder names itself, never the server's temporary path.
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert 'from_pretrained("tinygpt-text", trust_remote_code=True)' in card and "/tmp" not in card
    assert "/tmp" not in json.dumps(state)
    # A pasted text: the folder carries it, and the reproduce command reads that copy.
    assert "--data tinygpt-text/train.txt" in state["command"] and "train.txt" in names
    assert (folder / "train.txt").read_text(encoding="utf-8") == TRAINED_TEXT
    assert state["log_history"] == updates[-1]["evaluations"]  # what the page showed, samples included
    kept = next(e for e in state["log_history"] if e["step"] == state["model_step"])
    assert kept["sample"] in card.split("## A sample")[1]  # the card shows what the folder's weights write

    expected = generate(client, NEW_PROMPT, 50)  # greedy: the same text wherever the weights are
    loaded = run_without_tinygpt(
        f"""
        import json, torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        model = AutoModelForCausalLM.from_pretrained({str(folder)!r}, trust_remote_code=True).eval()
        tokenizer = AutoTokenizer.from_pretrained({str(folder)!r}, trust_remote_code=True)
        ids = tokenizer({NEW_PROMPT!r}, return_tensors="pt")["input_ids"]
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=50, do_sample=False)
        print(json.dumps({{"text": {NEW_PROMPT!r} + tokenizer.decode(out[0, ids.shape[1]:])}}))
        """,
        cwd=tmp_path,
    )
    assert loaded["text"] == expected


def test_the_cards_reproduce_command_runs_as_the_card_says(trained_session, tmp_path):
    """The card of a pasted text says: "Reproduce it from the root of a tinygpt checkout (`tinygpt-text/train.txt`,
    saved beside the model, is the text it was trained on: put this folder there under that name)", then the
    command. Done so, in a checkout (train.py beside the package): the command trains a model of its own beside the
    downloaded one (which it leaves alone), on the thread the page trained on, and it is the same run: the same
    losses at the same steps."""
    client, updates, _ = trained_session
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / "train.py").write_bytes((REPO / "train.py").read_bytes())
    folder = unzip_download(client, checkout)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert "(`tinygpt-text/train.txt`, saved beside\nthe model, is the text it was trained on: put this folder there " \
           "under that name)" in card
    command = card.split("```bash\n", 1)[1].split("\n```", 1)[0]
    state = json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
    assert command == state["command"] and "--threads" not in command  # the cpu preset's 1 thread, as the page
    assert state["training_args"]["threads"] == 1 and "| threads | 1 |" in card
    argv = shlex.split(command)
    assert argv[:2] == ["python", "train.py"]
    run = subprocess.run([sys.executable, *argv[1:]], cwd=checkout, stdin=subprocess.DEVNULL, capture_output=True,
                         text=True, timeout=240)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    out_dir = checkout / argv[argv.index("--out-dir") + 1]
    assert out_dir != folder and {p.name: p.read_bytes() for p in folder.iterdir()} == before
    again = RunState.load(out_dir)
    assert again.training_args["threads"] == 1 and again.global_step == 60
    assert [(r["step"], r["val_loss"]) for r in again.log_history] == \
        [(e["step"], e["val_loss"]) for e in updates[-1]["evaluations"]]


def test_push_goes_to_the_hub_with_the_visitors_token(demo_hub, trained_session):
    client, _, _ = trained_session
    message = client.predict("tester/tiny-from-the-demo", "hf_visitor_token", api_name="/push")
    assert message.startswith("Pushed to [tester/tiny-from-the-demo]"), message
    files = HfApi(endpoint=demo_hub.url, token="hf_test").list_repo_files("tester/tiny-from-the-demo")
    assert {"model.safetensors", "config.json", "tokenizer.json", "README.md", "modeling_tinygpt.py"} <= set(files)
    assert "training_state.pt" not in files  # resume state stays local, as with `tinygpt push`
    assert "hf_visitor_token" in demo_hub.tokens


@pytest.mark.parametrize("case", ["no token", "wrong token", "no repo id", "bad repo id"])
def test_a_failed_push_says_why_and_the_model_stays_downloadable(server, demo_hub, trained_session, case):
    client, _, _ = trained_session
    repo, token, expected = {
        "no token": ("tester/x", "", "No Hugging Face token"),
        "wrong token": ("tester/x", "hf_wrong", "refused the token"),
        "no repo id": ("", "hf_token", "Give a repo id"),
        "bad repo id": ("tester/bad name!", "hf_token", "not a valid Hub repo id"),
    }[case]
    if case == "wrong token":
        demo_hub.fail_with = 401  # the Hub's answer to a token it does not know
    try:
        with pytest.raises(AppError) as error:
            client.predict(repo, token, api_name="/push")
    finally:
        demo_hub.fail_with = None
    message = str(error.value)
    assert expected in message and "still here to download" in message, message
    assert "\n" not in message and str(server.tmp) not in message and "tinygpt-demo-" not in message, message
    # In the page's words: no server folder ("the local folder your model is unchanged"), no command line login.
    assert "local folder" not in message and "hf auth login" not in message and "HF_TOKEN" not in message, message
    assert Path(client.predict(api_name="/download")).stat().st_size > 0
    assert generate(client, NEW_PROMPT, 5).startswith(NEW_PROMPT)


def readme_client_snippet() -> str:
    """The README's gradio_client snippet (under "Watch it learn"), exactly as it is written there."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Watch it learn: the Train tab"):]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readmes_client_calls_run_as_written_with_the_default_arguments(server, tmp_path, monkeypatch):
    """The snippet runs against this server with my.txt beside it: /train with only the text (the seed's model,
    60 s); its `print` is swapped for one that presses Stop after the first steps, or it would run the whole budget.
    Then the same Client's /generate uses the trained model (which knows "L" and "U"; the served one does not)."""
    code = readme_client_snippet()
    assert 'client.submit(open("my.txt", encoding="utf-8").read(), api_name="/train")' in code
    text = (REPO / "data" / "tinyshakespeare.txt").read_text(encoding="utf-8")[:30_000]
    (tmp_path / "my.txt").write_text(text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    printed, namespace = [], {}

    def print_and_stop(step, max_iters, val_losses):
        printed.append((step, max_iters, val_losses))
        if step >= 20 and len([p for p in printed if p[0] >= 20]) == 1:
            namespace["client"].predict(api_name="/stop_training")

    namespace["print"] = print_and_stop
    exec(code.replace("http://127.0.0.1:7860/", server.url + "/"), namespace)
    step, max_iters, val_losses = printed[-1]
    assert max_iters == 2400 and 20 <= step < 2400 and len(val_losses) == 1, printed
    assert generate(namespace["client"], "LUCIO:\n", 20).startswith("LUCIO:\n")


def unzip_download(client, into: Path) -> Path:
    """The session's model folder, downloaded and unzipped into `into`: its path there."""
    with zipfile.ZipFile(client.predict(api_name="/download")) as z:
        z.extractall(into)
        (name,) = {entry.split("/")[0] for entry in z.namelist()}
    return into / name


# ------------------------------------------------------------------------------ fine-tuning the served model


def test_fine_tuning_the_served_model_starts_from_its_weights(server, tmp_path):
    """/train with start_from="served" on a text of the served model's own characters: the first evaluation (step
    0, nothing trained yet) samples exactly what the served model writes with the same seed, so the run starts from
    its weights; the size asked for is ignored (the served model's wins), and the card says what it started from."""
    client = new_client(server)
    updates = train(client, text=TINY_TEXT * 40, size=BIG_SIZE, max_iters=15, start_from="served")
    final = updates[-1]
    assert final["status"] == "finished" and final["start_from"] == "served" and final["base_model"] == "tiny"
    # A text pasted 40 times: the held-out part repeats the training text, and the run says what that means.
    assert any(w.startswith("Memorising, not learning: 100% of the held-out text") for w in final["warnings"]), \
        final["warnings"]
    first = final["evaluations"][0]
    assert first["step"] == 0
    assert first["sample"] == generate(new_client(server), "\n", 300, temperature=1.0, seed=1337)
    folder = unzip_download(client, tmp_path)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert [config[k] for k in ("n_layer", "n_head", "n_embd", "block_size")] == [2, 4, 64, 32]  # not BIG_SIZE's
    state = json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
    assert "--init-from " in state["command"]
    assert "Fine-tuned from" in (folder / "README.md").read_text(encoding="utf-8")


def test_the_bundled_text_trains_by_its_path_and_a_fine_tune_adds_new_characters(server, tmp_path):
    """The page's Train button with the bundled tiny Shakespeare, fine-tuning the served model (whose few
    characters lack most of Shakespeare's): the card's reproduce command reads `--data data/tinyshakespeare.txt`
    (no 1 MB copy in the zip), the served characters keep their ids and the new ones follow."""
    client = new_client(server)
    client.submit("bundled", "", None, SMALL, 5, "served", api_name="/train_in_page").result(timeout=120)
    folder = unzip_download(client, tmp_path)
    state = json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
    assert "--data data/tinyshakespeare.txt " in state["command"], state["command"]
    assert not (folder / "train.txt").exists()
    served = json.loads((server.served / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]
    tuned = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]
    assert {c: tuned[c] for c in served} == served
    shakespeare = set((REPO / "data" / "tinyshakespeare.txt").read_text(encoding="utf-8"))
    assert set(tuned) == set(served) | shakespeare and len(tuned) > len(served)
    assert sorted(tuned.values()) == list(range(len(tuned)))
    assert generate(client, "Zounds", 10).startswith("Zounds")  # 'Z' is new to the served model


def test_push_and_download_before_any_training_are_refused(server):
    client = new_client(server)
    with pytest.raises(AppError, match="No trained model in this session"):
        client.predict(api_name="/download")
    with pytest.raises(AppError, match="No trained model in this session"):
        client.predict("tester/x", "hf_token", api_name="/push")


# ------------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "text, size, seconds, expected",
    [
        ("", SMALL, 10, "Nothing to train on: the text is empty"),
        ("   \n  ", SMALL, 10, "Nothing to train on"),
        ("λμ" * 40, SMALL, 10, "Too short to train on: the text has 80 characters, and a model that reads 16"),
        ("x" * (10 * 2**20 + 1), SMALL, 10, "Too big: the text is 10.0 MB, and this demo trains on at most 10 MB"),
        (NEW_TEXT, "2 layers · 3 heads · 64 wide · context 32", 10, "does not split into 3 heads"),
        (NEW_TEXT, "9 layers · 4 heads · 64 wide · context 32", 10, "layers must be a whole number from 1 to 8"),
        (NEW_TEXT, "-2 layers · 4 heads · 64 wide · context 32", 10, "layers must be a whole number from 1 to 8 "
         "in this demo (got -2)"),
        (NEW_TEXT, "2 layers · 4 heads · 64.5 wide · context 32", 10, "width must be a whole number"),
        (NEW_TEXT, "big", 10, "give four numbers"),
        (NEW_TEXT, SMALL, 1000, f"between 5 and {MAX_SECONDS} seconds"),
    ],
    ids=["empty", "blank", "shorter-than-the-context", "over-the-cap", "heads", "too-deep", "negative", "decimal",
         "not-a-size", "budget"],
)
def test_bad_training_input_is_a_clear_message(server, text, size, seconds, expected):
    client = new_client(server)
    with pytest.raises(AppError) as error:
        train(client, text, size, seconds)
    assert expected in str(error.value), str(error.value)
    assert generate(client, PROMPT, 5).startswith(PROMPT)  # the server (and this session) carry on


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200)
PAGE_REFUSALS = [  # (id, the page's inputs beside the defaults, the field that is wrong, what it says)
    ("empty", dict(pasted=""), "pasted", "Nothing to train on: the pasted text is empty"),
    ("blank", dict(pasted="   \n  "), "pasted", "Nothing to train on"),
    ("short", dict(pasted="λμ" * 40), "pasted", "Too short to train on: the pasted text has 80 characters"),
    ("non-utf8", dict(upload=("latin1.txt", "To be, or not to be: café\n".encode("latin-1") * 50)), "upload",
     "latin1.txt is not saved as UTF-8 text (byte 24 is 0xe9): save it as UTF-8"),
    ("binary", dict(upload=("picture.txt", PNG)), "upload", "picture.txt is not a text file: it looks"),
    ("png", dict(upload=("picture.png", PNG)), "upload", "picture.png is not a text file: it looks like a picture"),
    ("utf16", dict(upload=("utf16.txt", "To be, or not to be\n".encode("utf-16") * 50)), "upload",
     "utf16.txt is not a text file"),
    ("empty-file", dict(upload=("empty.txt", b"")), "upload", "empty.txt is empty"),
    ("over-the-cap", dict(upload=("huge.txt", b"a" * (10 * 2**20 + 1))), "upload", "Too big: huge.txt is 10.0 MB"),
    ("short-file", dict(upload=("short.txt", "λμ".encode() * 10)), "upload",
     "Too short to train on: short.txt has 20 characters"),
    ("no-file", dict(upload=None), "upload", "No file uploaded yet"),
    ("bad-size", dict(size="2 layers · 3 heads · 64 wide · context 32"), "size", "does not split into 3 heads"),
    ("budget-too-small", dict(seconds=1), "seconds", "The time budget must be between 5 and 60 seconds"),
    ("budget-too-big", dict(seconds=9999), "seconds", "between 5 and 60 seconds (this server's cap), got 9999"),
]


@pytest.mark.parametrize("inputs, field, expected", [c[1:] for c in PAGE_REFUSALS], ids=[c[0] for c in PAGE_REFUSALS])
def test_the_pages_refusals_are_said_beside_their_field(tmp_path, inputs, field, expected):
    """In process: the Train button's validator (gradio shows each message beside its input until the next press,
    and the training does not start) refuses each bad input at its own field, in plain words, never clamping a
    number. Any file may be uploaded (no gradio file-type error beside ours): its content is what is checked."""
    page = dict(source="paste", pasted=NEW_TEXT, upload=None, size=SMALL, seconds=10, start_from="scratch")
    page.update(inputs)
    if "upload" in inputs:
        page["source"] = "upload"
        if inputs["upload"] is not None:
            page["upload"] = str(write(tmp_path / inputs["upload"][0], inputs["upload"][1]))
    tab = TrainTab(sessions=None, max_seconds=MAX_SECONDS)
    try:
        verdicts = tab.check_page_inputs(*(page[name] for name in PAGE_FIELDS))
    finally:
        tab.close()
    wrong = {name: v["message"] for name, v in zip(PAGE_FIELDS, verdicts) if not v["is_valid"]}
    assert list(wrong) == [field] and expected in wrong[field], wrong
    message = wrong[field]
    assert "\n" not in message and str(tmp_path) not in message, message
    assert not any(word in message for word in ("NUL", "UTF-16", "context + 1", "0x00")), message


def test_the_train_buttons_validator_refuses_before_anything_starts(server, tmp_path):
    """Through the server: the page's Train event (/train_in_page) answers a .png with the validator's one message
    for the upload field, and nothing lines up."""
    before = set(server.tmp.glob("tinygpt-demo-*/run-*"))
    upload = handle_file(str(write(tmp_path / "picture.png", PNG)))
    with pytest.raises(ValidationError) as error:
        new_client(server).predict("upload", "", upload, SMALL, 10, "scratch", api_name="/train_in_page")
    assert str(error.value).splitlines()[1:] == [
        "- upload: picture.png is not a text file: it looks like a picture or a program, or text saved in another "
        "encoding. Save it as plain text (UTF-8) and upload it again."]
    assert set(server.tmp.glob("tinygpt-demo-*/run-*")) == before


# A raw client sends every input of /train (gradio checks the count; gradio_client fills in the defaults).
JOIN_ERRORS = [
    ("a number", [12345, SMALL, 10, 0, "scratch"], "the text must be text (a string), got int"),
    ("a list", [["λ1 → 2"], SMALL, 10, 0, "scratch"], "the text must be text (a string), got list"),
    ("a lone surrogate", ["λ1 → 2\ud800" + NEW_TEXT, SMALL, 10, 0, "scratch"], "broken character at position 6"),
    ("a negative size", [NEW_TEXT, "-2 layers · 4 heads · 64 wide · context 32", 10, 0, "scratch"], "(got -2)"),
    ("a size that is not text", [NEW_TEXT, 2, 10, 0, "scratch"], "The model size must be text"),
    ("fractional steps", [NEW_TEXT, SMALL, 10, 2.5, "scratch"], "max_iters must be 0"),
    ("an unknown start", [NEW_TEXT, SMALL, 10, 0, "gpt2"], "start_from must be 'scratch'"),
]


@pytest.mark.parametrize("inputs, expected", [case[1:] for case in JOIN_ERRORS], ids=[c[0] for c in JOIN_ERRORS])
def test_bad_input_from_a_raw_http_client_gets_a_clear_error(server, inputs, expected):
    """What a client that does not use gradio_client can send: any JSON. The answer is a message, not
    `{"error": null}` with a traceback in the server's log."""
    tracebacks = server.log().count("Traceback")
    result = call_raw(server.url, "train", inputs)
    assert result["success"] is False and expected.lower() in (result["error"] or "").lower(), result
    assert server.log().count("Traceback") == tracebacks, server.log()[-3000:]


def wait_for(predicate, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_stop_keeps_what_was_trained_and_shows_the_val_measured_at_that_step(server):
    client = new_client(server)
    job = client.submit(NEW_TEXT, SMALL, MAX_SECONDS, 0, api_name="/train")  # 2400 steps: more than 30 s allow
    wait_for(lambda: any(u["step"] >= 20 for u in job.outputs()), what="20 steps")
    with pytest.raises(AppError, match="already training"):  # /train again, from the same session
        client.predict(NEW_TEXT, SMALL, 10, 15, "scratch", api_name="/train")
    assert client.predict(api_name="/stop_training").startswith("Stopping: the model keeps what it has learnt")
    assert client.predict(api_name="/stop_training").startswith("Already stopping")
    job.result(timeout=60)
    final = job.outputs()[-1]
    assert final["status"] == "stopped" and 20 <= final["step"] < 2400
    # The stopped model was evaluated at the step it stopped: the last evaluation is that step's.
    assert final["evaluations"][-1]["step"] == final["step"], final["evaluations"]
    assert client.predict(api_name="/stop_training") == "Nothing is training in this tab."
    assert generate(client, NEW_PROMPT, 20).startswith(NEW_PROMPT)  # the stopped model is this session's model


def test_the_time_budget_ends_a_training(server):
    """5 s for the seed's model: far fewer than its 2,400 steps, then the final evaluation and save."""
    updates = train(new_client(server), size=SEED_SIZE, seconds=5, max_iters=0)
    final = updates[-1]
    assert final["status"] == "time_limit" and 0 < final["step"] < 2400, final["step"]
    assert 5 <= final["evaluations"][-1]["elapsed_s"] < 15 and final["evaluations"][-1]["step"] == final["step"]


def test_trainings_wait_in_line_with_their_place_and_stop_leaves_the_line(server):
    """One training at a time (--train-concurrency 1): the next ones wait with their place and an estimate, Stop
    takes one out of the line (it never trains), and Generate keeps answering everyone meanwhile."""
    first, second, third, other = (new_client(server) for _ in range(4))
    running = first.submit(NEW_TEXT, SMALL, MAX_SECONDS, 0, api_name="/train")
    wait_for(lambda: any(u["step"] > 0 for u in running.outputs()), what="the first training to run")
    waiting = second.submit(NEW_TEXT, SMALL, MAX_SECONDS, 60, api_name="/train")
    wait_for(lambda: any(u["status"] == "waiting" for u in waiting.outputs()), what="the second to line up")
    behind = third.submit(NEW_TEXT, SMALL, 10, 15, api_name="/train")
    wait_for(lambda: any(u["status"] == "waiting" for u in behind.outputs()), what="the third to line up")
    assert waiting.outputs()[-1]["place"] == 1 and 0 < waiting.outputs()[-1]["wait_s"] <= MAX_SECONDS
    assert behind.outputs()[-1]["place"] == 2 and behind.outputs()[-1]["wait_s"] > waiting.outputs()[-1]["wait_s"]
    started = time.monotonic()
    assert generate(other, PROMPT, 20).startswith(PROMPT)
    assert time.monotonic() - started < 10  # not stuck behind the training (the real latency: the benchmark)

    assert second.predict(api_name="/stop_training").startswith("Stopped before it started")
    waiting.result(timeout=30)
    assert waiting.outputs()[-1]["status"] == "cancelled" and not waiting.outputs()[-1]["evaluations"]
    wait_for(lambda: behind.outputs()[-1]["place"] == 1, what="the third to move up")
    first.predict(api_name="/stop_training")
    running.result(timeout=60)
    behind.result(timeout=120)
    assert behind.outputs()[-1]["status"] == "finished"
    with pytest.raises(AppError, match="'λ'"):  # the second session never trained: it still has the served model
        generate(second, NEW_PROMPT)


def test_a_closed_stream_stops_its_training_and_frees_it(server):
    client = new_client(server)
    before = set(server.tmp.glob("tinygpt-demo-*/run-*"))
    job = client.submit(NEW_TEXT, SMALL, MAX_SECONDS, 0, api_name="/train")
    wait_for(lambda: any(u["step"] > 0 for u in job.outputs()), what="the training to run")
    runs = set(server.tmp.glob("tinygpt-demo-*/run-*")) - before
    assert len(runs) == 1
    job.cancel()  # what gradio does when the tab is closed
    wait_for(lambda: not any(run.exists() for run in runs), timeout=30, what="the run's folder to be deleted")
    with pytest.raises(AppError, match="'λ'"):  # nothing was kept: this session still has the served model
        generate(client, NEW_PROMPT)
    # The training slot is free again at once.
    assert train(new_client(server), max_iters=15)[-1]["status"] == "finished"


def test_the_page_describes_the_train_tab(server):
    config = httpx.get(server.url + "/config", timeout=10).json()
    texts = json.dumps(config["components"])
    assert "Texts up to 10 MB" in texts and "tiny Shakespeare (bundled" in texts
    assert "last 10 %" in texts and "bits per character" in texts and "lower is better" in texts
    assert f"Time budget, seconds (5 to {MAX_SECONDS:g}, the server cap)" in texts
    names = {d.get("api_name") for d in config["dependencies"]}
    assert {"generate", "inspect", "train", "stop_training", "download", "push"} <= names


# --------------------------------------------------------------------------- in process: sessions stay bounded


def test_sessions_keep_a_bounded_number_of_trained_models(tmp_path):
    from tinygpt.sessions import Sessions

    sessions = Sessions(max_models=2, idle_seconds=3600)

    class Request:
        def __init__(self, key):
            self.session_hash = key

    def with_model(key):
        session = sessions.get(Request(key), create=True)
        folder = tmp_path / key / "model"
        folder.mkdir(parents=True)
        sessions.adopt(session, object(), folder, folder.with_suffix(".zip"))
        return session

    a, b = with_model("a"), with_model("b")
    sessions.get(Request("a"))  # a used more recently than b
    c = with_model("c")
    assert a.trained is not None and c.trained is not None
    assert b.trained is None and not b.use_trained and not (tmp_path / "b").exists()  # b dropped, folder deleted
    sessions.drop("a")  # its tab closed
    assert not (tmp_path / "a").exists() and sessions.get(Request("a")) is None and len(sessions) == 2
    sessions.idle_seconds = 0
    time.sleep(0.01)
    assert sessions.get(Request("c")) is None and not (tmp_path / "c").exists() and len(sessions) == 0


def test_the_default_settings_are_the_cpu_preset_with_a_60_second_budget():
    app = load_app_module()
    sizes = request_module.MODEL_SIZES
    assert request_module.TRAIN_SECONDS == 60 and sizes[request_module.DEFAULT_SIZE] == (2, 4, 64, 32)
    # Evaluations (and samples) every 175 steps for the seed's model, over 4 batches a split; more often for bigger
    # models, less often for the tiny one (benchmarks/README.md, "Words sooner").
    assert [evaluation_settings(dims)["eval_interval"] for dims in sizes.values()] == [175, 25, 300]
    assert evaluation_settings(sizes[request_module.DEFAULT_SIZE])["eval_iters"] == 4
    assert evaluation_settings(sizes[request_module.DEFAULT_SIZE], max_iters=60)["eval_interval"] == 15
    assert app.BUNDLED_TEXT == REPO / "data" / "tinyshakespeare.txt" and app.BUNDLED_TEXT.is_file()


def test_on_a_space_with_oauth_the_push_takes_the_signed_in_visitors_token(tmp_path, monkeypatch):
    """In process: on a Space with `hf_oauth: true` (SPACE_ID and OAUTH_CLIENT_ID set) and gradio[oauth] (a dev
    dependency, so this runs everywhere the tests do) the page offers the Hub's sign-in button, and /push uses the
    gr.OAuthToken of a visitor signed in with it; elsewhere neither."""
    import inspect

    import gradio as gr

    from tinygpt.sessions import Sessions

    app = load_app_module()
    monkeypatch.delenv("SPACE_ID", raising=False)
    assert not hub_login_available()
    # What a Space with `hf_oauth: true` has: gradio reads the OAuth settings when gradio.oauth is imported.
    import gradio.oauth

    space = {"SYSTEM": "spaces", "SPACE_ID": "tester/tinygpt", "OAUTH_CLIENT_ID": "client-id",
             "OAUTH_CLIENT_SECRET": "secret", "OAUTH_SCOPES": "openid profile write-repos",
             "OPENID_PROVIDER_URL": "http://127.0.0.1:9"}  # never called: nobody signs in here
    for name, value in space.items():
        monkeypatch.setenv(name, value)
        if hasattr(gradio.oauth, name):
            monkeypatch.setattr(gradio.oauth, name, value)
    assert hub_login_available()  # needs authlib and itsdangerous: gradio[oauth]
    trainings = TrainTab(Sessions(), hub_login=True)

    class Request:
        session_hash = "s"

    class Token:
        token = "hf_signed_in"

    try:
        session = trainings.sessions.get(Request(), create=True)
        session.folder = tmp_path / "missing"
        with pytest.raises(BadInput, match="Push failed") as error:  # got past the token check with the OAuth token
            trainings.push("tester/x", "", Request(), Token())
        assert str(tmp_path) not in str(error.value)  # the server's folder is "your model" to the visitor
        with pytest.raises(BadInput, match="sign in with the button, or paste a token"):
            trainings.push("tester/x", "", Request(), None)
        served = TinyGPTDemo(load_model(make_model_dir(tmp_path / "tiny")))
        demo = app.build_demo(served, trainings)
        assert any(isinstance(block, gr.LoginButton) for block in demo.blocks.values())
        push = next(fn for fn in demo.fns.values() if fn.api_name == "push")
        assert "oauth_token" in inspect.signature(push.fn).parameters
        # Without the sign-in: no button, and /push takes just the repo id and a pasted token.
        plain = app.build_demo(served, TrainTab(Sessions(), hub_login=False))
        assert not any(isinstance(block, gr.LoginButton) for block in plain.blocks.values())
        push = next(fn for fn in plain.fns.values() if fn.api_name == "push")
        assert "oauth_token" not in inspect.signature(push.fn).parameters
    finally:
        trainings.close()


@pytest.mark.parametrize("failure", ["write", "diverged"])
def test_a_failed_save_or_a_diverged_run_is_one_plain_line_and_the_session_keeps_its_model(tmp_path, monkeypatch,
                                                                                             failure):
    """In process, the engine's failures: a checkpoint write that fails (checkpoint.CheckpointError) and a loss
    that became infinite (settings.TrainingDiverged, a TrainingError). /train ends with one line that names no
    server path, and the session still has the model it had."""
    import asyncio

    from tinygpt import settings
    from tinygpt.checkpoint import CheckpointError
    from tinygpt.sessions import Sessions

    trainings = TrainTab(Sessions(), max_seconds=MAX_SECONDS)
    error = {
        "write": CheckpointError(f"cannot write the checkpoint of step 300 to {trainings.root}/run-x/tinygpt-text: "
                                 "No space left on device; the checkpoint of step 0 is intact"),
        "diverged": settings.TrainingDiverged(212, float("inf"), 0.01, trainings.root / "run-x" / "tinygpt-text", 0),
    }[failure]

    class FailingTrainer:
        def __init__(self, settings, **kwargs):
            self.settings = settings

        def stop(self):
            pass

        def train(self):
            raise error

    monkeypatch.setattr(job_module, "Trainer", FailingTrainer)

    class Request:
        session_hash = "s"

    previous = object()
    session = trainings.sessions.get(Request(), create=True)
    session.trained, session.use_trained = previous, True

    async def run():
        return [update async for update in trainings.train_api(NEW_TEXT, SMALL, 10, 60, request=Request())]

    try:
        with pytest.raises(BadInput) as raised:
            asyncio.run(run())
        message = raised.value.message
        assert message.startswith("Training stopped: ") and "\n" not in message and str(trainings.root) not in message
        expected = {"write": "could not save the model", "diverged": "stopped being a number (inf) at step 212"}
        assert expected[failure] in message
        assert "previous model" in message
        assert session.trained is previous and session.use_trained and session.job is None  # nothing lost
    finally:
        trainings.close()


def job_for(tmp_path, seconds=60, text=NEW_TEXT, name="the text", path=None) -> Job:
    checked = check_text(text, name, 16, path=path)
    return Job(RunRequest(checked, (1, 4, 32, 16), seconds), tmp_path / "run" / "tinygpt-text")


def running(job: Job, state: RunState) -> Job:
    """`job` as the line let it go and the engine reported `state`."""
    job.started = True
    job.apply(state)
    return job


def test_the_line_says_each_place_and_about_how_long_in_words(tmp_path):
    """In process: two slots busy for 20 and 50 more seconds, three trainings waiting with budgets of 60, 30 and
    10 s. The first waits for the first slot (20 s), the second for the other (50 s), the third for the first
    slot again (20 + 60 = 80 s); the page says "2nd in line, about 50 s"."""
    line = WaitingLine(slots=2)

    def job(seconds, left=None):
        j = job_for(tmp_path, seconds)
        if left is not None:  # the engine's last report, just now: no step yet, the clock at seconds - left
            running(j, RunState(elapsed_s=seconds - left))
        return j

    busy = [job(60, left=20), job(60, left=50)]
    line.running.extend(busy)
    waiting = [job(60), job(30), job(10)]
    for j in waiting:
        line.join(j)
    assert [line.place(j) for j in waiting] == [(1, 20.0), (2, 50.0), (3, 80.0)]
    assert not line.try_start(waiting[0])  # both slots are taken
    line.leave(busy[0])
    assert not line.try_start(waiting[1]) and line.try_start(waiting[0])  # first come, first served
    second = waiting[1]
    second.place, second.wait_s = line.place(second)
    assert second.status == "waiting" and second.as_dict()["place"] == 1
    assert view.progress_line(second).startswith("### Waiting: 1st in line, about 50 s")
    assert [view.ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22)] == \
        ["1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd"]


# ---------------------------------------------------------------------- in process: what the page shows of a run


def evaluation(step, train_loss, val_loss, sample="λ1 → 2"):
    return {"step": step, "train_loss": train_loss, "val_loss": val_loss, "lr": 0.01, "elapsed_s": step / 10,
            "sample": sample}


def test_the_page_draws_the_engines_run_state_and_derives_its_status_from_it(tmp_path):
    """The job keeps the engine's RunState (as the engine's thread copied it) and what only the line knows; its
    status (/train's) is derived from those: waiting, starting, training, stopping, then the engine's own verdict."""
    job = job_for(tmp_path)
    assert job.status == "waiting" and job.as_dict()["step"] == 0
    job.started = True
    assert job.status == "starting" and view.progress_line(job).startswith("**Starting…**")
    state = RunState(global_step=120, max_steps=2400, n_params=1234, elapsed_s=3.0, data={"vocab_size": 21})
    state.record_evaluation(evaluation(0, 3.0, 3.1))
    state.record_evaluation(evaluation(100, 2.0, 2.2))
    job.apply(state)
    job.apply(LossPoint(120, 1.9))
    assert job.status == "training"
    progress = job.as_dict()
    assert {k: progress[k] for k in ("status", "step", "max_iters", "n_params", "best_step", "best_val_loss",
                                     "train_loss", "start_from", "base_model")} == {
        "status": "training", "step": 120, "max_iters": 2400, "n_params": 1234, "best_step": 100,
        "best_val_loss": 2.2, "train_loss": 1.9, "start_from": "scratch", "base_model": None}
    assert [e["step"] for e in progress["evaluations"]] == [0, 100]
    assert "Val loss **2.200** at step 100" in view.progress_line(job)
    job.stop()
    assert job.status == "stopping" and "stopping…" in view.progress_line(job)
    final = RunState(**{**state.__dict__, "status": "stopped", "global_step": 121, "log_history":
                        state.log_history + [evaluation(121, 1.9, 2.3)]})
    job.apply(final)
    assert job.status == "stopping"  # until its model is loaded and zipped: then the page offers it
    job.ended = True
    assert job.status == "stopped" and job.done and job.time_left() == 0
    line = view.progress_line(job)
    assert line.startswith("**Stopped at step 121: kept what it learnt.**")
    assert "the one from **step 100**, where the val loss was lowest (2.200)" in line


def test_the_time_line_never_reads_past_its_budget(tmp_path):
    """Past its budget a run finishes its step, evaluates and saves: the page says so, not "61 s of 60 s"."""
    job = running(job_for(tmp_path, seconds=60), RunState(global_step=500, max_steps=2400, elapsed_s=61.2))
    line = view.progress_line(job)
    assert "61 s" not in line and line.startswith("**Time budget used up (60 s) at step 500**: evaluating and saving")
    job = running(job_for(tmp_path, seconds=60), RunState(global_step=500, max_steps=2400, elapsed_s=59.6))
    time.sleep(0.5)  # between the engine's reports the clock moves on, up to the budget and no further
    assert 59.9 < job.elapsed_s <= 60.0 and "s of 60 s" not in view.progress_line(job)


def test_the_loss_help_speaks_of_the_users_text(tmp_path):
    """The blind-guess loss is ln V for the V characters of the text being trained on; Shakespeare is named only
    for the bundled tiny Shakespeare."""
    rhyme = "Twinkle, twinkle, little star,\nHow I wonder what you are!\n" * 40
    job = running(job_for(tmp_path, text=rhyme, name="the pasted text"), RunState(data={"vocab_size": len(set(rhyme))}))
    words = view.loss_help(job)
    assert f"**{len(set(rhyme))} different characters** in the pasted text" in words and "65" not in words
    assert "ln 22 = 3.09 (4.5 bits)" in words and "Shakespeare" not in words
    bundled = job_for(tmp_path, text=TINY_TEXT * 10, name="tinyshakespeare.txt", path=REPO / "data" / "x.txt")
    words = view.loss_help(running(bundled, RunState(data={"vocab_size": 65})))
    assert "ln 65 = 4.17 (6.0 bits)" in words and "read like Shakespeare" in words
    assert "different characters of your text" in view.loss_help() and "Shakespeare" not in view.loss_help()


def test_the_chart_draws_the_training_line_over_the_held_out_one(tmp_path):
    """A text that repeats itself has the same loss on both: the held-out (orange) line is drawn first and wider,
    the training (blue) one on top and narrower, so both stay in sight."""
    state = RunState(global_step=30)
    for step in (0, 15, 30):
        state.record_evaluation(evaluation(step, 3.0 - step / 10, 3.0 - step / 10))
    spec = json.loads(view.loss_chart(running(job_for(tmp_path), state)).plot)
    lines = [(layer["transform"][0]["filter"]["equal"], layer["mark"]["strokeWidth"]) for layer in spec["layer"]
             if layer["mark"]["type"] == "line"]
    assert [name for name, _ in lines] == [view.RUNNING, view.HELD_OUT, view.TRAINING]
    assert dict(lines)[view.HELD_OUT] >= dict(lines)[view.TRAINING] + 3


def test_stop_on_the_page_never_erases_a_result(tmp_path):
    """/stop_training answers in words; the page's Stop with nothing to stop (the run just ended) leaves the
    progress line, which holds the result, as it is."""
    from tinygpt.sessions import Sessions

    class Request:
        session_hash = "s"

    tab = TrainTab(Sessions())
    try:
        assert tab.stop(Request()) == "Nothing is training in this tab."
        assert tab.stop_page(Request()) == {"__type__": "update"}  # gr.skip(): nothing changes
        session = tab.sessions.get(Request(), create=True)
        session.job = job_for(tmp_path)
        assert tab.stop_page(Request()) == "Stopped before it started: your place in line is given up."
    finally:
        tab.close()


def test_generate_gets_prompts_made_of_the_trained_texts_characters():
    """The starts of a text's lines: a short line whole with its newline, a long one cut after a word."""
    text = "ROMEO:\nBut, soft! what light through yonder window breaks?\n\n---\nJULIET:\nAy me!\n"
    assert check_text(text * 3, "the text", 16).prompts == ("ROMEO:\n", "But, soft! what light", "JULIET:\n")
    rhyme = "Twinkle, twinkle, little star\n" * 20
    assert request_module.example_prompts(rhyme) == ("Twinkle, twinkle,",)


def test_a_push_error_is_said_in_the_pages_words(tmp_path):
    folder = tmp_path / "run-x" / "tinygpt-text"
    message = (f"uploading {folder} to tester/x (branch main) failed: http://hub refused the token (401 Unauthorized)"
               f"; log in with `hf auth login` or set HF_TOKEN to a valid token with write access; the local folder "
               f"{folder} is unchanged")
    assert handlers.page_words(message, folder) == (
        "uploading your model to tester/x (branch main) failed: http://hub refused the token (401 Unauthorized); "
        "paste a valid token with write access")
