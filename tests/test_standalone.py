"""A saved folder works where tinygpt is not installed: the code files (model and tokenizer) travel with the weights."""

import json

import pytest

from no_tinygpt import run_without_tinygpt


def test_folder_loads_and_generates_without_tinygpt(tmp_path, model_dir, model, tokenizer):
    """Model, tokenizer (the folder's own CharTokenizer, as remote code), named errors, left padding and the
    text-generation pipeline, in one interpreter where `import tinygpt` fails (each start costs seconds)."""
    prompt = "All:\n"
    prompts = ["Speak", "All:\nYou are"]  # different lengths: the batch is left-padded

    def greedy(text, n=40):
        return tokenizer.decode(model.generate(**tokenizer(text, return_tensors="pt"), max_new_tokens=n, do_sample=False)[0])

    expected = greedy(prompt)
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    result = run_without_tinygpt(
        f"""
        import json, sys
        try:
            import tinygpt
            hidden = False
        except ImportError:
            hidden = True
        from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline
        model = AutoModelForCausalLM.from_pretrained({str(model_dir)!r}, trust_remote_code=True)
        tokenizer = AutoTokenizer.from_pretrained({str(model_dir)!r}, trust_remote_code=True)
        ids = tokenizer({prompt!r}, return_tensors="pt")
        out = model.generate(**ids, max_new_tokens=40, do_sample=False)
        result = {{"hidden": hidden, "text": tokenizer.decode(out[0]),
                   "model_class": type(model).__module__ + "." + type(model).__name__,
                   "tokenizer_class": type(tokenizer).__module__ + "." + type(tokenizer).__name__}}

        try:  # a character the training text never had
            tokenizer("Hello, zebra €!")
            result["unknown_error"] = None
        except ValueError as err:
            result["unknown_error"] = str(err)

        # Left padding, with no `tokenizer.pad_token = ...` line first.
        batch = tokenizer({prompts!r}, padding=True, return_tensors="pt")
        result["batch_ids"] = batch["input_ids"].tolist()
        result["batch_mask"] = batch["attention_mask"].tolist()
        out = model.generate(**batch, max_new_tokens=20, do_sample=False)
        result["batch_texts"] = tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:])

        generator = pipeline("text-generation", model={str(model_dir)!r}, trust_remote_code=True)
        result["pipeline"] = generator({prompt!r}, max_new_tokens=40, do_sample=False)[0]["generated_text"]
        print(json.dumps(result))
        """,
        cwd=workdir,
        env={"HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_OFFLINE": "1"},
    )
    assert result["hidden"] is True
    assert result["text"] == expected
    assert "modeling_tinygpt" in result["model_class"]  # the copied code, loaded as remote code
    # the folder's copy of tokenization_tinygpt.py, loaded as remote code (transformers_modules.<folder>...)
    assert result["tokenizer_class"].startswith("transformers_modules.")
    assert result["tokenizer_class"].endswith("tokenization_tinygpt.CharTokenizer")

    error = result["unknown_error"]
    assert error is not None and "WordLevel" not in error
    for unknown in ("'H'", "'b'", "'€'", "'!'"):
        assert unknown in error
    with pytest.raises(ValueError) as here:  # the same message as where tinygpt is installed
        tokenizer("Hello, zebra €!")
    assert error == str(here.value)

    short, long = (tokenizer(p)["input_ids"] for p in prompts)
    padding = len(long) - len(short)
    assert result["batch_ids"] == [[0] * padding + short, long]  # id 0 on the left
    assert result["batch_mask"] == [[0] * padding + [1] * len(short), [1] * len(long)]
    # each row of the padded batch continues like its prompt alone
    assert result["batch_texts"] == [greedy(p, 20)[len(p):] for p in prompts]

    # the pipeline decodes with skip_special_tokens=True: the newlines (id 0 here) must survive it
    assert tokenizer.convert_ids_to_tokens(0) == "\n"
    assert result["pipeline"] == expected and result["pipeline"].count("\n") == expected.count("\n") >= 1


def test_saved_tokenizer_carries_its_code(tmp_path, tokenizer, model_dir):
    config = json.loads((model_dir / "tokenizer_config.json").read_text())
    auto_map = config["auto_map"]["AutoTokenizer"]
    # transformers' own writer (custom_object_save) puts a class whose name does not end in "Fast" in the first
    # slot; AutoTokenizer in 5.x takes the second slot if set, else the first.
    assert "tokenization_tinygpt.CharTokenizer" in auto_map
    assert config["tokenizer_class"] == "CharTokenizer" and config["padding_side"] == "left"
    assert "pad_token" not in config  # see CharTokenizer: the pad character stays an ordinary character
    import tinygpt

    package_file = tinygpt.tokenization_tinygpt.__file__
    assert (model_dir / "tokenization_tinygpt.py").read_text() == open(package_file).read()
