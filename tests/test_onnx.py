"""`tinygpt export onnx`: the ONNX decoder against PyTorch (logits with and without the key/value cache, dynamic
batch and length, greedy text past block_size with the seed's crop-and-rerun), the command on a folder and on a
Hub id, `tinygpt push` with the export, and its one-line errors.

The export is traced once per module (`exported`: 10 s of CPU) and shared; the tests that use it are marked slow,
and so are the two that export again.
"""

import contextlib
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from test_hub import TOKEN, hf_env, hub, run_cli, second_model  # noqa: F401 (hf_env, hub: fixtures)

ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install \"tinygpt[onnx]\")")
pytest.importorskip("onnxscript", reason="onnxscript is not installed (pip install \"tinygpt[onnx]\")")

from tinygpt.card import onnx_snippet  # noqa: E402
from tinygpt.onnx_export import (  # noqa: E402
    BLOCK_SIZE_KEY, ONNX_FILE, WEIGHTS_SHA256_KEY, is_current_export, read_metadata, weights_sha256,
)
from tinygpt.onnx_runtime import OnnxDecoder  # noqa: E402

BUNDLED = Path(__file__).resolve().parent.parent / "checkpoints" / "tinyshakespeare"
BLOCK, LAYERS, HEADS, HEAD_DIM = 32, 2, 4, 16  # the bundled model's config
PROMPT = "All:\n"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A copy of the bundled model, exported in place by `tinygpt export onnx DIR` (DIR/onnx/model.onnx).

    A trained model: a random one's greedy text soon repeats one character, which a wrong decoding loop (a cache
    slid past block_size, say) would often write too."""
    import shutil

    from tinygpt import cli

    folder = tmp_path_factory.mktemp("onnx") / "model"
    shutil.copytree(BUNDLED, folder, ignore=shutil.ignore_patterns("onnx"))  # (an export it ships is not this one)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["export", "onnx", str(folder)]) == 0
    assert f"Wrote {folder / ONNX_FILE}" in out.getvalue()
    return folder


@pytest.fixture(scope="module")
def torch_model(exported):
    from tinygpt.loading import load_pretrained

    return load_pretrained(str(exported))


@pytest.fixture(scope="module")
def decoder(exported):
    return OnnxDecoder(exported)


def pytorch_step(model, ids, mask, past_len):
    """PyTorch's logits for ids[:, past_len:] after a prefill of ids[:, :past_len], and its cache after the step."""
    from transformers.cache_utils import DynamicCache

    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    cache = DynamicCache(config=model.config)
    with torch.no_grad():
        if past_len:
            model(ids[:, :past_len], attention_mask=mask[:, :past_len], position_ids=positions[:, :past_len],
                  cache=cache)
        out = model(ids[:, past_len:], attention_mask=mask, position_ids=positions[:, past_len:], cache=cache)
    return out.logits.numpy(), [t.numpy() for layer in out.cache.layers for t in (layer.keys, layer.values)]


# --------------------------------------------------------------------------------------------- the graph


@pytest.mark.slow
def test_export_layout_names_the_contract_dimensions(exported):
    import onnx

    model = onnx.load(str(exported / ONNX_FILE))
    shapes = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in [*model.graph.input, *model.graph.output]}
    past = [f"past_key_values.{i}.{kv}" for i in range(LAYERS) for kv in ("key", "value")]
    present = [f"present.{i}.{kv}" for i in range(LAYERS) for kv in ("key", "value")]
    assert [v.name for v in model.graph.input] == ["input_ids", "attention_mask", "position_ids", *past]
    assert [v.name for v in model.graph.output] == ["logits", *present]
    assert shapes["input_ids"] == shapes["position_ids"] == ["batch_size", "sequence_length"]
    assert shapes["attention_mask"] == ["batch_size", "past_sequence_length + sequence_length"]
    assert shapes["logits"] == ["batch_size", "sequence_length", len(json.loads(
        (exported / "tokenizer.json").read_text())["model"]["vocab"])]
    for name in past:
        assert shapes[name] == ["batch_size", HEADS, "past_sequence_length", HEAD_DIM]
    for name in present:
        assert shapes[name] == ["batch_size", HEADS, "past_sequence_length + sequence_length", HEAD_DIM]
    assert {i.type.tensor_type.elem_type for i in model.graph.input[:3]} == {onnx.TensorProto.INT64}
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)  # one file
    meta = read_metadata(exported / ONNX_FILE)
    assert meta[WEIGHTS_SHA256_KEY] == weights_sha256(exported) and meta[BLOCK_SIZE_KEY] == str(BLOCK)
    assert not list((exported / "onnx").glob("*.partial"))
    # the exporter's per-node stack traces are stripped: they held this machine's file paths
    import tinygpt

    published = (exported / ONNX_FILE).read_bytes()
    assert str(Path(tinygpt.__file__).parent).encode() not in published and b"stack_trace" not in published


@pytest.mark.parametrize("batch, past_len, new", [
    (1, 0, 1), (1, 0, BLOCK), (3, 0, 7),  # no past (the first step, a rerun of the window)
    (1, 5, 1), (2, 9, 1), (4, 3, 6), (2, BLOCK - 1, 1),  # with past: one new character, or several
])
@pytest.mark.slow
def test_logits_and_cache_match_pytorch(torch_model, decoder, batch, past_len, new):
    model, _ = torch_model
    generator = torch.Generator().manual_seed(batch * 100 + past_len * 10 + new)
    ids = torch.randint(0, model.config.vocab_size, (batch, past_len + new), generator=generator)
    mask = torch.ones_like(ids)
    expected, expected_cache = pytorch_step(model, ids, mask, past_len)
    _, past = decoder.forward(ids[:, :past_len].numpy()) if past_len else (None, None)
    logits, present = decoder.forward(ids[:, past_len:].numpy(), past=past)
    assert logits.shape == (batch, new, model.config.vocab_size)
    np.testing.assert_allclose(logits, expected, atol=1e-4, rtol=0)
    assert [p.shape for p in present] == [(batch, HEADS, past_len + new, HEAD_DIM)] * (2 * LAYERS)
    for got, want in zip(present, expected_cache):
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
    # and the whole text in one run, without a cache, is PyTorch's plain forward
    with torch.no_grad():
        whole = model(ids).logits.numpy()
    np.testing.assert_allclose(decoder.forward(ids.numpy())[0], whole, atol=1e-4, rtol=0)


@pytest.mark.slow
def test_left_padded_batch_matches_pytorch(torch_model, decoder):
    """Rows of different lengths, left-padded: the real characters' logits are PyTorch's, prefill and cached step."""
    model, _ = torch_model
    ids = torch.randint(0, model.config.vocab_size, (3, 9), generator=torch.Generator().manual_seed(3))
    mask = torch.ones_like(ids)
    mask[0, :4], mask[2, :1] = 0, 0
    expected, _ = pytorch_step(model, ids, mask, 6)
    positions = np.clip(mask.numpy().cumsum(-1) - 1, 0, None)
    _, past = decoder.forward(ids[:, :6].numpy(), mask[:, :6].numpy(), positions[:, :6])
    logits, _ = decoder.forward(ids[:, 6:].numpy(), mask.numpy(), positions[:, 6:], past)
    assert np.isfinite(logits).all()
    np.testing.assert_allclose(logits, expected, atol=1e-4, rtol=0)


# ------------------------------------------------------------------------------------ the decoding loop


@pytest.mark.slow
@pytest.mark.parametrize("prompt_len", [1, 5, BLOCK, BLOCK + 7])
def test_greedy_text_equals_generate_past_block_size(torch_model, decoder, prompt_len):
    """Prefill, cached steps up to block_size, then a rerun of the window per step: PyTorch's generate()."""
    model, _ = torch_model
    generator = torch.Generator().manual_seed(prompt_len)
    ids = torch.randint(0, model.config.vocab_size, (1, prompt_len), generator=generator)
    with torch.no_grad():
        expected = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=3 * BLOCK)
    assert expected.shape[1] > BLOCK + 2 * BLOCK - 1  # well past block_size
    assert len(set(expected[0, BLOCK:].tolist())) > 8  # a text, not one character repeated
    np.testing.assert_array_equal(decoder.generate(ids.numpy(), 3 * BLOCK), expected.numpy())


@pytest.mark.slow
def test_greedy_batch_with_left_padding_equals_generate(torch_model, decoder):
    model, tokenizer = torch_model
    batch = tokenizer(["All:\n", "First Citizen:\nSpeak", "Speak, speak."], padding=True, return_tensors="pt")
    assert (batch["attention_mask"] == 0).any()  # padded on the left
    with torch.no_grad():
        expected = model.generate(**batch, do_sample=False, max_new_tokens=2 * BLOCK)
    assert expected.shape[1] > BLOCK and len(set(expected[:, -BLOCK:].flatten().tolist())) > 8
    got = decoder.generate(batch["input_ids"].numpy(), 2 * BLOCK, attention_mask=batch["attention_mask"].numpy())
    np.testing.assert_array_equal(got, expected.numpy())


@pytest.mark.slow
def test_sampling_is_seeded_and_filtered(decoder):
    prompt = np.array([[1, 2, 3]])
    first = decoder.generate(prompt, BLOCK + 4, temperature=1.0, seed=7)
    assert np.array_equal(first, decoder.generate(prompt, BLOCK + 4, temperature=1.0, seed=7))
    assert not all(np.array_equal(first, decoder.generate(prompt, BLOCK + 4, temperature=1.0, seed=s))
                   for s in range(8, 12))
    greedy = decoder.generate(prompt, BLOCK + 4)
    assert np.array_equal(decoder.generate(prompt, BLOCK + 4, temperature=1.5, top_k=1, seed=1), greedy)
    assert np.array_equal(decoder.generate(prompt, BLOCK + 4, temperature=1.5, top_p=1e-6, seed=1), greedy)
    seen = []
    decoder.generate(prompt, 5, on_token=lambda column: seen.append(int(column[0])))
    assert seen == greedy[0, 3:8].tolist()


@pytest.mark.slow
def test_card_snippet_writes_pytorchs_greedy_text(exported, torch_model, capsys):
    """The card's onnxruntime-only loop (numpy, tokenizers) runs as written and gives generate()'s text."""
    model, tokenizer = torch_model
    code = onnx_snippet(str(exported), None, PROMPT)
    capsys.readouterr()
    exec(compile(code, "card_snippet", "exec"), {})
    written = capsys.readouterr().out
    ids = tokenizer(PROMPT, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        expected = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=200)
    assert written == tokenizer.decode(expected[0]) + "\n"


# ---------------------------------------------------------------------------------------------- the CLI


@pytest.mark.slow
def test_export_refuses_to_replace_without_overwrite(exported, capsys):
    before = (exported / ONNX_FILE).read_bytes()
    code, out, err = run_cli(capsys, "export", "onnx", exported)
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [
        f"tinygpt export: error: {exported / ONNX_FILE} already exists; pass --overwrite to replace it"]
    assert (exported / ONNX_FILE).read_bytes() == before


@pytest.mark.slow
def test_export_refuses_a_non_empty_out_folder(exported, tmp_path, capsys):
    (tmp_path / "mine.txt").write_text("keep me")
    code, _, err = run_cli(capsys, "export", "onnx", exported, "--out", tmp_path)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "the folder is not empty" in err and "--overwrite" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]


@pytest.mark.parametrize("what", ["missing", "gpt2", "file"])
def test_export_bad_model_is_one_line(tmp_path, capsys, what):
    target = tmp_path / "x"
    if what == "gpt2":
        target.mkdir()
        (target / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    elif what == "file":
        target.write_text("not a folder")
    code, out, err = run_cli(capsys, "export", "onnx", target)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tinygpt export: error: ")
    assert {"missing": "no such folder", "gpt2": "is a 'gpt2' model, not a tinygpt model",
            "file": "is a file"}[what] in lines[0]
    assert not (tmp_path / "x" / "onnx").exists() if what != "file" else True


@pytest.mark.parametrize("module", ["onnxruntime", "onnxscript"])
def test_export_without_the_onnx_extra_is_one_line(model_dir, capsys, monkeypatch, module):
    monkeypatch.setitem(sys.modules, module, None)  # what `import onnxruntime` does where it is not installed
    code, out, err = run_cli(capsys, "export", "onnx", model_dir)
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [f"tinygpt export: error: ONNX export needs {module}, which is not "
                                        'installed: pip install "tinygpt[onnx]"']
    assert not (model_dir / "onnx").exists()


@pytest.mark.slow
def test_export_from_a_hub_id_and_push_with_onnx(exported, torch_model, hub, tmp_path, capsys, monkeypatch):
    """push --onnx uploads the folder's current export and the card's ONNX section; `tinygpt export onnx USER/NAME`
    exports from the Hub into ./NAME, a transformers.js-style folder whose decoder writes PyTorch's text."""
    from huggingface_hub import HfApi, ModelCard, hf_hub_download, snapshot_download

    code, out, err = run_cli(capsys, "push", exported, "tester/tiny", "--onnx")
    assert code == 0, err
    assert "onnx/model.onnx" in out
    api = HfApi(endpoint=hub.url, token=TOKEN)
    files = set(api.list_repo_files("tester/tiny"))
    assert {ONNX_FILE, "model.safetensors", "config.json", "tokenizer.json", "README.md"} <= files
    assert not any(name.endswith(".partial") for name in files)
    card = ModelCard.load(hf_hub_download("tester/tiny", "README.md", endpoint=hub.url)).text
    assert "## Run it without PyTorch (ONNX)" in card and 'snapshot_download("tester/tiny"' in card
    pulled = snapshot_download("tester/tiny", allow_patterns=["*.json", "onnx/*"])
    assert (open(f"{pulled}/{ONNX_FILE}", "rb").read() == (exported / ONNX_FILE).read_bytes())

    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, "export", "onnx", "tester/tiny")
    assert code == 0, err
    assert out.startswith(f"Wrote {'tiny/' + ONNX_FILE} (")
    assert sorted(p.name for p in (tmp_path / "tiny").iterdir()) == [
        "config.json", "generation_config.json", "onnx", "tokenizer.json", "tokenizer_config.json"]
    model, _ = torch_model
    ids = torch.tensor([[1, 2, 3]])
    with torch.no_grad():
        expected = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=2 * BLOCK)
    np.testing.assert_array_equal(OnnxDecoder(tmp_path / "tiny").generate(ids.numpy(), 2 * BLOCK), expected.numpy())


@pytest.mark.slow
def test_push_replaces_a_stale_export_and_leaves_the_folder_alone(exported, hub, tmp_path, tokenizer, capsys):
    """A folder whose weights changed after its export: a push refuses it in one line; --onnx exports afresh
    into the upload (the folder keeps its old file); a later push of other weights without an export removes the
    repo's onnx/, which no longer matches them."""
    import shutil

    from huggingface_hub import HfApi, hf_hub_download

    folder = tmp_path / "retrained"
    shutil.copytree(exported, folder)
    second_model(folder, tokenizer)  # new weights, same tokenizer: onnx/model.onnx is now stale
    assert is_current_export(folder) is False
    before = (folder / ONNX_FILE).read_bytes()

    code, out, err = run_cli(capsys, "push", folder, "tester/tiny")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert "was exported from other weights" in err and "--onnx" in err

    code, out, err = run_cli(capsys, "push", folder, "tester/tiny", "--onnx")
    assert code == 0, err
    assert (folder / ONNX_FILE).read_bytes() == before  # the folder is not modified
    pushed = hf_hub_download("tester/tiny", ONNX_FILE, endpoint=hub.url)
    assert read_metadata(pushed)[WEIGHTS_SHA256_KEY] == weights_sha256(folder)

    other = tmp_path / "third"
    second_model(other, tokenizer, seed=2)
    code, out, err = run_cli(capsys, "push", other, "tester/tiny")
    assert code == 0, err
    assert "removed onnx/ from tester/tiny" in err
    assert not any(name.startswith("onnx/") for name in HfApi(endpoint=hub.url).list_repo_files("tester/tiny"))


def test_push_onnx_without_the_extra_is_one_line_before_any_request(model_dir, hub, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    requests = len(hub.requests)
    code, out, err = run_cli(capsys, "push", model_dir, "tester/tiny", "--onnx")
    assert code == 2 and out == ""
    assert err.strip().splitlines() == ['tinygpt push: error: ONNX export needs onnxscript, which is not installed: '
                                        'pip install "tinygpt[onnx]"']
    assert len(hub.requests) == requests  # no repo was created


@pytest.mark.slow
def test_an_export_that_computes_something_else_is_not_kept(exported, tmp_path, capsys, monkeypatch):
    """Every export is checked on onnxruntime against PyTorch before it is kept: here the graph of other weights
    (the shared export, put in place of the trace) against a model whose head bias moved by 0.01."""
    import shutil

    from safetensors.torch import load_file, save_file

    import tinygpt.onnx_export as onnx_export

    folder = tmp_path / "nudged"
    shutil.copytree(exported, folder, ignore=shutil.ignore_patterns("onnx"))
    weights = load_file(folder / "model.safetensors")
    weights["head.bias"] += 0.01
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    monkeypatch.setattr(onnx_export, "export_decoder",
                        lambda model, path: Path(path).parent.mkdir(parents=True, exist_ok=True)
                        or shutil.copyfile(exported / ONNX_FILE, path))
    code, out, err = run_cli(capsys, "export", "onnx", folder)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert err.startswith(f"tinygpt export: error: {folder / ONNX_FILE}: onnxruntime's logits differ from PyTorch's "
                          "by 1.00e-02 (more than 0.0001); the export was not kept")
    assert not (folder / "onnx").exists()
