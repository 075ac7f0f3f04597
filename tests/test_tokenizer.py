import ast
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from tinygpt import CharTokenizer, char_tokenizer
from tinygpt.tokenization import describe_unknown_characters

UNICODE_TEXT = "Ça va? Ünïcödé, tabs\tand\r\nCRLF, emoji 🙂 and combining e\u0301 — done.\n"


@pytest.mark.parametrize("text", ["hello world", "a\nb\n\nc", UNICODE_TEXT, " ", "\n"])
def test_ids_are_the_seeds_sorted_characters_and_decode_is_exact(text):
    tok = char_tokenizer(text)
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    ids = tok(text)["input_ids"]
    assert ids == [stoi[c] for c in text]  # no BOS/EOS, one id per character
    assert tok.decode(ids) == text
    assert tok.decode(ids, skip_special_tokens=True) == text
    assert len(tok) == len(chars) == tok.vocab_size
    assert tok.all_special_ids == []


def test_unknown_characters_are_named(small_text):
    tok = char_tokenizer(small_text)
    with pytest.raises(ValueError) as err:
        tok("Hello, zebra €!")
    message = str(err.value)
    for unknown in ("'H'", "'b'", "'€'", "'!'"):
        assert unknown in message
    with pytest.raises(ValueError, match="'Q'"):
        tok(["Speak", "Quiet"])  # batches are checked too
    with pytest.raises(ValueError, match="'Z'"):
        tok.encode("Zz")


def test_empty_text_has_no_vocabulary():
    with pytest.raises(ValueError, match="empty"):
        char_tokenizer("")


def test_left_padding_uses_an_ordinary_character(small_text):
    tok = char_tokenizer(small_text)
    batch = tok(["Sp", "Speak"], padding=True, return_tensors="pt")
    assert batch["input_ids"].tolist()[0][:3] == [0, 0, 0]  # left-padded with id 0, the first character ("\n")
    assert batch["attention_mask"].tolist() == [[0, 0, 0, 1, 1], [1, 1, 1, 1, 1]]
    # the pad character stays a character: real newlines survive skip_special_tokens
    ids = tok("All:\nSpeak\n")["input_ids"]
    assert tok.decode(ids, skip_special_tokens=True) == "All:\nSpeak\n"
    assert len(tok) == len(set(small_text))


def test_saved_tokenizer_loads_without_tinygpt_classes(tmp_path, small_text):
    tok = char_tokenizer(small_text)
    tok(["a", "All"], padding=True)  # padding state must not leak into tokenizer.json
    tok.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "tokenization_tinygpt.py", "tokenizer.json", "tokenizer_config.json"]  # the class travels as remote code

    plain = PreTrainedTokenizerFast.from_pretrained(tmp_path)  # no trust_remote_code: tokenizer.json alone
    ids = plain(small_text)["input_ids"]
    assert ids == tok(small_text)["input_ids"]
    assert plain.decode(ids, skip_special_tokens=True) == small_text
    assert len(plain) == len(tok) and plain.all_special_ids == []

    ours = AutoTokenizer.from_pretrained(tmp_path)  # tinygpt is imported here, so Auto gives the checking class
    assert isinstance(ours, CharTokenizer)
    assert ours.pad_token_id == 0 and ours.padding_side == "left"
    with pytest.raises(ValueError, match="'X'"):
        ours("X")


def test_unknown_characters_and_the_one_message(small_text):
    """What the demo and `tinygpt generate` use to name characters before encoding."""
    tok = char_tokenizer(small_text)
    assert tok.unknown_characters(["Hi", ("zebra", "€")]) == ["H", "b", "€"]
    assert tok.unknown_characters("All:\n") == []
    tok.check_characters("Speak")  # no error
    message = describe_unknown_characters(["€", "H"], set(small_text))
    assert message.startswith("2 character(s) not in the model's vocabulary: 'H', '€'.")
    with pytest.raises(ValueError) as err:
        tok.check_characters("H€")
    assert str(err.value) == message


def test_the_remote_code_file_imports_only_what_a_hub_user_has():
    """tokenization_tinygpt.py is copied next to the weights and run where only transformers is installed."""
    source = Path(__file__).resolve().parents[1] / "tinygpt" / "tokenization_tinygpt.py"
    imported = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:  # relative: the other copied code files
            imported.add(node.module.split(".")[0])
    assert imported <= {"__future__", "transformers", "tokenizers", "typing", "collections"}, imported


def test_bos_and_eos_are_the_first_character_without_being_special(small_text, model_dir):
    """Tools that need a text boundary (lm-evaluation-harness starts each text with BOS, else EOS) get id 0, the
    character the seed starts generating from; it stays an ordinary character that nothing drops or stops at."""
    from transformers import AutoModelForCausalLM, pipeline

    tok = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=True)
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == ("\n", "\n", "\n")
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (0, 0, 0)
    assert tok.all_special_ids == [] and tok.special_tokens_map == {}
    assert tok("All:\n", add_special_tokens=True)["input_ids"] == tok("All:\n")["input_ids"]  # nothing added
    tok.save_pretrained(model_dir)
    config = (model_dir / "tokenizer_config.json").read_text()
    assert "bos_token" not in config and "eos_token" not in config  # not saved: every load would make them special

    model = AutoModelForCausalLM.from_pretrained(model_dir, trust_remote_code=True)
    assert model.generation_config.eos_token_id is None
    with torch.no_grad():
        model.head.bias[0] = 100.0  # the model now always predicts id 0, "\n"
    out = model.generate(**tok(["Al", "All:"], padding=True, return_tensors="pt"), max_new_tokens=10, do_sample=False)
    assert out.shape == (2, 14)  # generation does not stop at the EOS character
    assert tok.batch_decode(out[:, 4:], skip_special_tokens=True) == ["\n" * 10] * 2
    text = pipeline("text-generation", model=model, tokenizer=tok)("All:", max_new_tokens=5, do_sample=False)
    assert text[0]["generated_text"] == "All:\n\n\n\n\n"


# Two prompts of a text with tabs: id 0, the pad character, is then a tab, and the first prompt starts with a real one.
TAB_TEXT = "name\tline\n\tROMEO:\tSpeak.\n"
TAB_PROMPTS = ["\tRO", "name\tline\n"]


def test_padding_is_stripped_with_the_attention_mask_and_no_real_character_is_eaten():
    """`skip_special_tokens=True` cannot tell padding from the same character in the text (every id is a real
    character): it leaves both. The attention mask can: decode takes it and leaves out exactly the padding."""
    tok = char_tokenizer(TAB_TEXT)
    assert tok.convert_ids_to_tokens(0) == "\t" == tok.pad_token  # the first character of this text's vocabulary
    batch = tok(TAB_PROMPTS, padding=True, return_tensors="pt")
    assert batch["input_ids"][0, :7].tolist() == [0] * 7 and batch["attention_mask"][0].tolist() == [0] * 7 + [1] * 3
    assert tok.batch_decode(batch["input_ids"], skip_special_tokens=True) == ["\t" * 7 + "\tRO", TAB_PROMPTS[1]]
    assert tok.batch_decode(batch["input_ids"], attention_mask=batch["attention_mask"]) == TAB_PROMPTS
    assert tok.decode(batch["input_ids"], attention_mask=batch["attention_mask"]) == TAB_PROMPTS  # decode batches too
    assert tok.decode(batch["input_ids"][0], attention_mask=batch["attention_mask"][0]) == "\tRO"  # one row
    lists = tok(TAB_PROMPTS, padding=True)
    assert tok.batch_decode(lists["input_ids"], attention_mask=lists["attention_mask"]) == TAB_PROMPTS
    with pytest.raises(ValueError, match="attention_mask must have the shape of the ids"):
        tok.batch_decode(batch["input_ids"], attention_mask=batch["attention_mask"][:, 1:])


def test_padding_strips_the_same_way_where_tinygpt_is_not_installed(tmp_path):
    """tokenization_tinygpt.py travels with the model: AutoTokenizer(trust_remote_code=True) decodes with the mask
    in an environment without tinygpt, after generate too (the new characters hold no padding)."""
    import json

    from conftest import make_model
    from no_tinygpt import run_without_tinygpt

    tok = char_tokenizer(TAB_TEXT)
    make_model(len(tok)).save_pretrained(tmp_path / "model")
    tok.save_pretrained(tmp_path / "model")
    result = run_without_tinygpt(f"""
        import json, torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        tok = AutoTokenizer.from_pretrained({str(tmp_path / "model")!r}, trust_remote_code=True)
        model = AutoModelForCausalLM.from_pretrained({str(tmp_path / "model")!r}, trust_remote_code=True)
        batch = tok({TAB_PROMPTS!r}, padding=True, return_tensors="pt")
        out = model.generate(**batch, max_new_tokens=5, do_sample=False)
        new = out[:, batch["input_ids"].shape[1]:]
        mask = torch.cat([batch["attention_mask"], torch.ones_like(new)], dim=1)
        print(json.dumps({{"class": type(tok).__name__, "pad": tok.pad_token,
                          "prompts": tok.batch_decode(batch["input_ids"], attention_mask=batch["attention_mask"]),
                          "skip": tok.batch_decode(batch["input_ids"], skip_special_tokens=True),
                          "new": tok.batch_decode(new), "full": tok.batch_decode(out, attention_mask=mask)}}))
    """, cwd=tmp_path)
    assert result["class"] == "CharTokenizer" and result["pad"] == "\t"
    assert result["prompts"] == TAB_PROMPTS and result["skip"][0] == "\t" * 8 + "RO"
    assert result["full"] == [prompt + new for prompt, new in zip(TAB_PROMPTS, result["new"])]
    assert all(len(new) == 5 for new in result["new"]), json.dumps(result)
