"""A saved folder works where tinygpt is not installed: the code files travel with the weights."""

import json

from no_tinygpt import run_without_tinygpt


def test_folder_loads_and_generates_without_tinygpt(tmp_path, model_dir, model, tokenizer):
    prompt = "All:\n"
    expected = tokenizer.decode(
        model.generate(**tokenizer(prompt, return_tensors="pt"), max_new_tokens=40, do_sample=False)[0]
    )
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
        from transformers import AutoModelForCausalLM, AutoTokenizer
        model = AutoModelForCausalLM.from_pretrained({str(model_dir)!r}, trust_remote_code=True)
        tokenizer = AutoTokenizer.from_pretrained({str(model_dir)!r}, trust_remote_code=True)
        ids = tokenizer({prompt!r}, return_tensors="pt")
        out = model.generate(**ids, max_new_tokens=40, do_sample=False)
        print(json.dumps({{"hidden": hidden, "text": tokenizer.decode(out[0]),
                          "model_class": type(model).__module__ + "." + type(model).__name__,
                          "tokenizer_class": type(tokenizer).__name__}}))
        """,
        cwd=workdir,
        env={"HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_OFFLINE": "1"},
    )
    assert result["hidden"] is True
    assert result["text"] == expected
    assert "modeling_tinygpt" in result["model_class"]  # the copied code, loaded as remote code
    assert result["tokenizer_class"] in ("TokenizersBackend", "PreTrainedTokenizerFast")
