"""TinyGPTForCausalLM against the blog's own classes, and against the transformers contract."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import make_model
from seed_gpt import build_seed_gpt
from transformers import (
    AutoModelForCausalLM,
    DynamicCache,
    Trainer,
    TrainingArguments,
    pipeline,
)

from tinygpt import TinyGPTConfig, TinyGPTForCausalLM
from tinygpt.convert import infer_config, seed_to_tinygpt_state_dict

SEED_SHAPES = {
    "seed": dict(vocab=65, embd=64, heads=4, layers=2, block=32),
    "other": dict(vocab=40, embd=48, heads=3, layers=3, block=20),
}


def seed_and_tinygpt(shape="seed", seed=0, attn_implementation="sdpa"):
    """The blog's GPT with random weights, and a TinyGPT holding the same weights."""
    torch.manual_seed(seed)
    seed_model = build_seed_gpt(**SEED_SHAPES[shape]).eval()
    state = seed_model.state_dict()
    config = infer_config(state)
    config._attn_implementation = attn_implementation
    ours = TinyGPTForCausalLM(config).eval()
    ours.load_state_dict(seed_to_tinygpt_state_dict(state, config))
    return seed_model, ours


def seed_greedy_loop(seed_model, idx, max_new_tokens, block_size):
    """The seed's generate(), with argmax instead of sampling: crop to block_size and rerun, every step."""
    for _ in range(max_new_tokens):
        logits, _ = seed_model(idx[:, -block_size:])
        idx = torch.cat((idx, logits[:, -1, :].argmax(-1, keepdim=True)), dim=1)
    return idx


# ---------------------------------------------------------------- the same function as the seed


@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
@pytest.mark.parametrize("shape", list(SEED_SHAPES))
def test_logits_and_loss_match_the_seed_classes(shape, attn_implementation):
    seed_model, ours = seed_and_tinygpt(shape, attn_implementation=attn_implementation)
    s = SEED_SHAPES[shape]
    x = torch.randint(0, s["vocab"], (4, s["block"]))
    y = torch.randint(0, s["vocab"], (4, s["block"]))
    with torch.no_grad():
        ref_logits, ref_loss = seed_model(x, y)
        out = ours(x, shift_labels=y)  # the seed's (x, y) pairs: every position scored against y
    assert (out.logits - ref_logits.view_as(out.logits)).abs().max() < 1e-5
    assert abs(out.loss.item() - ref_loss.item()) < 1e-5
    with torch.no_grad():  # shorter inputs use the first T position embeddings, as in the seed
        short = ours(x[:, :5]).logits
    assert (short - seed_model(x[:, :5])[0].view_as(short)).abs().max() < 1e-5


def test_labels_are_shifted_inside_the_model(model):
    x = torch.randint(0, model.config.vocab_size, (3, 12))
    out = model(x, labels=x)
    expected = F.cross_entropy(out.logits[:, :-1].reshape(-1, out.logits.shape[-1]), x[:, 1:].reshape(-1))
    assert torch.allclose(out.loss, expected, atol=1e-6)
    masked = x.clone()
    masked[:, :6] = -100  # ignored positions
    out_masked = model(x, labels=masked)
    expected_masked = F.cross_entropy(out.logits[:, 5:-1].reshape(-1, out.logits.shape[-1]), x[:, 6:].reshape(-1))
    assert torch.allclose(out_masked.loss, expected_masked, atol=1e-6)


def test_output_shapes(model):
    B, T = 2, 7
    out = model(torch.randint(0, model.config.vocab_size, (B, T)), output_attentions=True, output_hidden_states=True)
    assert out.logits.shape == (B, T, model.config.vocab_size)
    assert len(out.attentions) == model.config.n_layer
    assert out.attentions[0].shape == (B, model.config.n_head, T, T)
    assert len(out.hidden_states) == model.config.n_layer + 1
    assert all(h.shape == (B, T, model.config.n_embd) for h in out.hidden_states)


def test_attentions_are_the_seeds_causal_softmax_weights(model):
    x = torch.randint(0, model.config.vocab_size, (2, 10))
    out = model(x, output_attentions=True, output_hidden_states=True)
    plain = model(x)
    assert (out.logits - plain.logits).abs().max() < 1e-5  # explicit path == SDPA path
    for wei in out.attentions:
        assert torch.allclose(wei.sum(-1), torch.ones_like(wei.sum(-1)), atol=1e-5)
        assert wei.triu(diagonal=1).abs().max() == 0  # nothing attends to the future
    # hidden_states[-1] is after ln_f, so the head applied to it gives the logits
    assert torch.allclose(model.head(out.hidden_states[-1]), out.logits, atol=1e-5)


def test_forward_longer_than_block_size_is_a_clear_error(model):
    bs = model.config.block_size
    with pytest.raises(ValueError, match=r"block_size=16.*input_ids\[:, -block_size:\]"):
        model(torch.zeros((1, bs + 1), dtype=torch.long))
    cache = DynamicCache(config=model.config)
    model(torch.zeros((1, bs), dtype=torch.long), cache=cache, use_cache=True)
    with pytest.raises(ValueError, match="cached"):
        model(torch.zeros((1, 1), dtype=torch.long), cache=cache, use_cache=True)


def test_dropout_is_active_only_in_training():
    model = make_model(20, dropout=0.5)
    x = torch.randint(0, 20, (2, 8))
    model.train()
    assert not torch.equal(model(x).logits, model(x).logits)
    model.eval()
    assert torch.equal(model(x).logits, model(x).logits)


def test_initialisation_is_pytorchs_default_like_the_seed():
    model = make_model(50, n_embd=64)
    # nn.Embedding's default is N(0, 1) and nn.Linear's is U(-1/sqrt(fan_in), 1/sqrt(fan_in));
    # transformers' generic init would give N(0, 0.02) everywhere.
    assert 0.9 < model.token_embedding.weight.std().item() < 1.1
    bound = 64**-0.5
    w = model.blocks[0].ffwd.net[0].weight
    assert w.abs().max().item() <= bound and w.std().item() > 0.5 * bound / 3**0.5
    assert torch.equal(model.ln_f.weight, torch.ones(64))


# ---------------------------------------------------------------- save / load


def test_save_pretrained_round_trip(tmp_path, model):
    model.save_pretrained(tmp_path)
    names = {p.name for p in tmp_path.iterdir()}
    assert {"config.json", "model.safetensors", "configuration_tinygpt.py", "modeling_tinygpt.py"} <= names
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in names)
    import json

    auto_map = json.loads((tmp_path / "config.json").read_text())["auto_map"]
    assert auto_map == {
        "AutoConfig": "configuration_tinygpt.TinyGPTConfig",
        "AutoModelForCausalLM": "modeling_tinygpt.TinyGPTForCausalLM",
    }
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert isinstance(loaded, TinyGPTForCausalLM)
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), f"{name} changed on load (re-initialised?)"
    # the copied code imports only torch, transformers and each other
    for code in ("configuration_tinygpt.py", "modeling_tinygpt.py"):
        imports = [l for l in (tmp_path / code).read_text().splitlines() if l.startswith(("import ", "from "))]
        assert all(l.split()[1].split(".")[0] in {"torch", "transformers", "huggingface_hub", "math", "dataclasses", ""} or l.startswith("from .") for l in imports), imports


# ---------------------------------------------------------------- generation


@pytest.mark.parametrize("shape", list(SEED_SHAPES))
def test_greedy_generation_equals_the_seeds_crop_and_rerun_loop(shape):
    seed_model, ours = seed_and_tinygpt(shape, seed=3)
    block = SEED_SHAPES[shape]["block"]
    prompt = torch.randint(0, SEED_SHAPES[shape]["vocab"], (1, 5))
    new = 3 * block  # well past block_size, where the window slides
    reference = seed_greedy_loop(seed_model, prompt, new, block)
    with torch.no_grad():
        cached = ours.generate(prompt, max_new_tokens=new, do_sample=False, use_cache=True)
        uncached = ours.generate(prompt, max_new_tokens=new, do_sample=False, use_cache=False)
    assert cached.tolist() == reference.tolist()
    assert uncached.tolist() == reference.tolist()


def test_a_prompt_longer_than_block_size_is_cropped_like_the_seed():
    seed_model, ours = seed_and_tinygpt("other", seed=4)
    prompt = torch.randint(0, 40, (1, 50))  # block_size is 20
    reference = seed_greedy_loop(seed_model, prompt, 25, 20)
    assert ours.generate(prompt, max_new_tokens=25, do_sample=False).tolist() == reference.tolist()


def test_left_padded_batch_gives_each_prompts_own_text(model, tokenizer):
    prompts = ["Speak", "First Citizen:\nYou", "All"]
    new = 2 * model.config.block_size  # crosses the window boundary at different steps per row
    alone = [
        tokenizer.decode(model.generate(**tokenizer(p, return_tensors="pt"), max_new_tokens=new, do_sample=False)[0])
        for p in prompts
    ]
    batch = tokenizer(prompts, padding=True, return_tensors="pt")
    assert batch["attention_mask"].min() == 0  # really padded
    for use_cache in (True, False):
        out = model.generate(**batch, max_new_tokens=new, do_sample=False, use_cache=use_cache)
        pads = (batch["attention_mask"] == 0).sum(1)
        texts = [tokenizer.decode(row[p:]) for row, p in zip(out, pads)]
        assert texts == alone


def test_direct_forward_with_left_padding_matches_unpadded(model, tokenizer):
    ids = tokenizer("Speak, speak", return_tensors="pt")["input_ids"]
    padded = torch.cat([torch.zeros((1, 3), dtype=torch.long), ids], dim=1)
    mask = torch.cat([torch.zeros((1, 3), dtype=torch.long), torch.ones_like(ids)], dim=1)
    out = model(padded, attention_mask=mask).logits[:, 3:]
    assert (out - model(ids).logits).abs().max() < 1e-5
    assert not out.isnan().any()


def test_sampling_is_repeatable_with_a_seed_and_honours_top_k(model):
    prompt = torch.zeros((1, 1), dtype=torch.long)
    kwargs = dict(max_new_tokens=40, do_sample=True, temperature=0.8, top_k=5, top_p=0.95)
    torch.manual_seed(11)
    a = model.generate(prompt, **kwargs)
    torch.manual_seed(11)
    b = model.generate(prompt, **kwargs)
    torch.manual_seed(12)
    c = model.generate(prompt, **kwargs)
    assert torch.equal(a, b) and not torch.equal(a, c)
    # with top_k=1 sampling is greedy
    torch.manual_seed(0)
    assert torch.equal(model.generate(prompt, max_new_tokens=40, do_sample=True, top_k=1),
                       model.generate(prompt, max_new_tokens=40, do_sample=False))


def test_beam_search_returns_sequences_that_agree_with_and_without_cache(model):
    prompt = torch.randint(0, model.config.vocab_size, (1, 4))
    kwargs = dict(max_new_tokens=2 * model.config.block_size, num_beams=4, num_return_sequences=3, do_sample=False)
    cached = model.generate(prompt, use_cache=True, **kwargs)
    uncached = model.generate(prompt, use_cache=False, **kwargs)
    assert cached.shape == (3, 4 + kwargs["max_new_tokens"])
    assert torch.equal(cached, uncached)
    assert torch.equal(cached[:, :4], prompt.expand(3, -1))


def test_repetition_penalty_and_num_return_sequences(model):
    prompt = torch.randint(0, model.config.vocab_size, (1, 4))
    plain = model.generate(prompt, max_new_tokens=30, do_sample=False)
    penalised = model.generate(prompt, max_new_tokens=30, do_sample=False, repetition_penalty=5.0)
    assert not torch.equal(plain, penalised)
    torch.manual_seed(0)
    many = model.generate(prompt, max_new_tokens=10, do_sample=True, num_return_sequences=5)
    assert many.shape == (5, 14) and len({tuple(r) for r in many.tolist()}) > 1


def test_text_iterator_streamer_streams_the_generated_text(model, tokenizer):
    from threading import Thread

    from transformers import TextIteratorStreamer

    inputs = tokenizer("All:", return_tensors="pt")
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True)
    thread = Thread(target=model.generate, kwargs=dict(**inputs, max_new_tokens=40, do_sample=False, streamer=streamer))
    thread.start()
    streamed = "".join(streamer)
    thread.join()
    expected = model.generate(**inputs, max_new_tokens=40, do_sample=False)
    assert streamed == tokenizer.decode(expected[0, inputs["input_ids"].shape[1]:])


def test_text_generation_pipeline(model, tokenizer):
    generator = pipeline("text-generation", model=model, tokenizer=tokenizer)
    result = generator("All:", max_new_tokens=30, do_sample=False)[0]["generated_text"]
    expected = tokenizer.decode(model.generate(**tokenizer("All:", return_tensors="pt"), max_new_tokens=30, do_sample=False)[0])
    assert result == expected


@pytest.mark.slow
def test_trainer_can_train_it(tmp_path, tokenizer, small_text):
    from torch.utils.data import Dataset

    ids = torch.tensor(tokenizer(small_text)["input_ids"])
    block = 16

    class Chunks(Dataset):
        def __len__(self):
            return 64

        def __getitem__(self, i):
            start = (i * 7) % (len(ids) - block)
            chunk = ids[start : start + block]
            return {"input_ids": chunk, "labels": chunk}

    model = make_model(len(tokenizer), block_size=block)
    model.train()
    args = TrainingArguments(
        output_dir=str(tmp_path / "trainer"), per_device_train_batch_size=8, max_steps=40, learning_rate=3e-3,
        logging_steps=5, report_to=[], save_strategy="no", use_cpu=True, disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=Chunks())
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert losses[-1] < losses[0] - 0.5
    trainer.save_model(str(tmp_path / "saved"))
    assert isinstance(AutoModelForCausalLM.from_pretrained(tmp_path / "saved"), TinyGPTForCausalLM)


def test_last_position_shortcut_gives_the_same_logits_and_cache(model):
    """logits_to_keep=1 (what generate() asks for) computes only the last position in the last block."""
    x = torch.randint(0, model.config.vocab_size, (2, 12))
    mask = torch.ones_like(x)
    mask[0, :4] = 0  # a left-padded row too
    full_cache, short_cache = DynamicCache(config=model.config), DynamicCache(config=model.config)
    full = model(x, attention_mask=mask, cache=full_cache, use_cache=True)
    last = model(x, attention_mask=mask, cache=short_cache, use_cache=True, logits_to_keep=1)
    assert last.logits.shape == (2, 1, model.config.vocab_size)
    assert (last.logits - full.logits[:, -1:]).abs().max() < 1e-5
    for a, b in zip(full_cache.layers, short_cache.layers):  # every position's keys/values are cached
        assert torch.equal(a.keys, b.keys) and torch.equal(a.values, b.values)


@pytest.mark.parametrize("use_cache", [True, False])
def test_generate_from_prompt_embeddings_slides_like_ids(model, use_cache):
    prompt = torch.randint(0, model.config.vocab_size, (1, 5))
    new = 2 * model.config.block_size
    from_ids = model.generate(prompt, max_new_tokens=new, do_sample=False, use_cache=use_cache)
    with torch.no_grad():
        embeds = model.token_embedding(prompt)
    from_embeds = model.generate(inputs_embeds=embeds, max_new_tokens=new, do_sample=False, use_cache=use_cache)
    assert from_embeds.tolist() == from_ids[:, 5:].tolist()  # generate returns only the new ids here


def test_default_generation_samples_from_the_whole_softmax_like_the_seed(tmp_path):
    seed_model, ours = seed_and_tinygpt("other", seed=6)
    ours.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert (loaded.generation_config.do_sample, loaded.generation_config.top_k) == (True, 0)
    prompt = torch.zeros((1, 1), dtype=torch.long)
    torch.manual_seed(7)
    reference = seed_model.generate(prompt, 60)  # the seed's own sampling loop
    torch.manual_seed(7)
    assert loaded.generate(prompt, max_new_tokens=60).tolist() == reference.tolist()


# ---------------------------------------------------------------- transformers' machinery: attention, masks, caches


def test_attn_implementation_is_chosen_at_load_and_recorded(tmp_path, model):
    """transformers' attention interface: sdpa by default, eager on request (the seed's Head written out, with its
    weights), the same logits; the config records the choice."""
    model.save_pretrained(tmp_path)
    x = torch.randint(0, model.config.vocab_size, (2, 9))
    mask = torch.ones_like(x)
    mask[0, :3] = 0
    logits = {}
    for implementation in ("sdpa", "eager"):
        loaded = AutoModelForCausalLM.from_pretrained(tmp_path, attn_implementation=implementation).eval()
        assert loaded.config._attn_implementation == implementation
        with torch.no_grad():
            logits[implementation] = loaded(x, attention_mask=mask).logits
    assert model.config._attn_implementation == "sdpa"
    assert (logits["sdpa"] - logits["eager"])[1].abs().max() < 1e-5  # padding rows differ only where padded
    assert (logits["sdpa"] - logits["eager"])[0, 3:].abs().max() < 1e-5


@pytest.mark.slow
def test_flex_attention_gives_the_same_logits(model):
    """flex_attention where the installed torch has it (on a CPU: inference only, compiled on first use)."""
    x = torch.randint(0, model.config.vocab_size, (2, 9))
    with torch.no_grad():
        expected = model(x).logits
        model.set_attn_implementation("flex_attention")
        assert (model(x).logits - expected).abs().max() < 1e-5


def test_custom_4d_mask_and_position_ids_as_transformers_defines_them(model):
    """transformers' test_custom_4d_attention_mask: three continuations of one shared prefix in one row, each seeing
    only the prefix and itself (a float 4-D mask, repeated positions), give the logits of three separate rows."""
    ids = torch.randint(0, model.config.vocab_size, (1, 6))
    allowed = torch.tensor([[1, 0, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0],
                            [1, 1, 1, 1, 0, 0], [1, 1, 1, 0, 1, 0], [1, 1, 1, 0, 0, 1]])
    mask = (allowed == 0).float()[None, None] * torch.finfo(torch.float32).min
    with torch.no_grad():
        shared = model(ids, attention_mask=mask, position_ids=torch.tensor([[0, 1, 2, 3, 3, 3]])).logits
        separate = model(torch.cat([ids[:, :3].expand(3, -1), ids[0, 3:, None]], dim=1)).logits
    assert (shared[0, 3:] - separate[:, -1]).abs().max() < 1e-5


def test_packed_sequences_by_position_ids_do_not_see_each_other(model):
    """No mask, no cache (a training batch) and positions that restart: transformers' create_causal_mask keeps the
    packed texts apart."""
    a, b = (torch.randint(0, model.config.vocab_size, (1, n)) for n in (5, 7))
    positions = torch.cat([torch.arange(5), torch.arange(7)])[None]
    with torch.no_grad():
        packed = model(torch.cat([a, b], dim=1), position_ids=positions, use_cache=False).logits
        assert (packed[:, :5] - model(a).logits).abs().max() < 1e-5
        assert (packed[:, 5:] - model(b).logits).abs().max() < 1e-5


def test_generation_past_block_size_attaches_nothing_to_the_callers_cache(model):
    """The sliding window's state lives in generate()'s inputs (forward hands back an empty cache), never in
    attributes set on transformers' objects."""
    from transformers import StaticCache

    prompt = torch.randint(0, model.config.vocab_size, (1, 4))
    for cache in (DynamicCache(config=model.config), StaticCache(config=model.config, max_cache_len=model.config.block_size)):
        out = model.generate(prompt, cache=cache, max_new_tokens=2 * model.config.block_size, do_sample=False,
                             return_dict_in_generate=True)
        assert not any("tinygpt" in name for obj in (cache, *cache.layers) for name in vars(obj))
        assert out.sequences.shape[1] == 4 + 2 * model.config.block_size


# ---------------------------------------------------------------- transformers' generic tests (issue 23) and padding


def test_outputs_have_exactly_the_fields_of_causal_lm_output_with_past(model):
    """transformers' test_attention_outputs: asking for hidden states adds one field (hidden_states), as in every
    causal LM of transformers, and the last hidden state is ln_f's output (the head applied to it gives the logits)."""
    from transformers.modeling_outputs import CausalLMOutputWithPast

    x = torch.randint(0, model.config.vocab_size, (2, 7))
    with torch.no_grad():
        plain = model(x)
        attentions = model(x, output_attentions=True)
        both = model(x, output_attentions=True, output_hidden_states=True)
    assert type(both) is CausalLMOutputWithPast
    assert list(plain.keys()) == ["logits", "cache"]
    assert list(attentions.keys()) == ["logits", "cache", "attentions"]
    assert list(both.keys()) == ["logits", "cache", "hidden_states", "attentions"]
    assert len(both) == len(attentions) + 1
    assert torch.allclose(model.head(both.hidden_states[-1]), both.logits, atol=1e-6)
    with torch.no_grad():
        as_tuple = model(x, output_hidden_states=True, return_dict=False)
    assert len(as_tuple) == 3 and torch.equal(as_tuple[0], plain.logits)  # logits, cache, hidden_states


def test_recorded_outputs_are_whole_when_only_the_last_logits_are_kept(model):
    """transformers' test_*_generate_dict_outputs: generate() asks for the last position's logits only
    (logits_to_keep=1), where the last block computes only that position; asked for attentions or hidden states, it
    computes them all, so every layer's attentions are (B, n_head, T, T) and every hidden state (B, T, C), the same
    as with every logit kept."""
    x = torch.randint(0, model.config.vocab_size, (2, 7))
    with torch.no_grad():
        whole = model(x, output_attentions=True, output_hidden_states=True)
        last = model(x, output_attentions=True, output_hidden_states=True, logits_to_keep=1)
    n_head, n_embd = model.config.n_head, model.config.n_embd
    assert [tuple(a.shape) for a in last.attentions] == [(2, n_head, 7, 7)] * model.config.n_layer
    assert [tuple(h.shape) for h in last.hidden_states] == [(2, 7, n_embd)] * (model.config.n_layer + 1)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(last.attentions, whole.attentions))
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(last.hidden_states, whole.hidden_states))
    assert last.logits.shape == (2, 1, model.config.vocab_size)
    assert torch.allclose(last.logits, whole.logits[:, -1:], atol=1e-6)


@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
def test_a_packed_row_longer_than_block_size_matches_the_padded_batch(model, attn_implementation):
    """transformers' test_{eager,sdpa}_padding_matches_padding_free_with_position_ids: a left-padded batch, packed
    into one row (padding-free training) with position_ids restarting at 0 for each text, gives each text's logits,
    although the row (here 42 characters) is longer than block_size (16): every position id fits the table."""
    model.set_attn_implementation(attn_implementation)
    block, vocab = model.config.block_size, model.config.vocab_size
    lengths = [16, 9, 12, 5]
    mask = torch.zeros((len(lengths), block), dtype=torch.long)
    for row, n in enumerate(lengths):
        mask[row, block - n:] = 1  # left padding
    ids = torch.randint(1, vocab, mask.shape).masked_fill(mask == 0, 0)
    packed_ids = ids[mask.bool()][None]  # (1, 42)
    positions = torch.cat([torch.arange(n) for n in lengths])[None]
    assert packed_ids.shape[1] == sum(lengths) > block
    with torch.no_grad():
        padded = model(ids, attention_mask=mask, use_cache=False).logits[mask.bool()]
        packed = model(packed_ids, position_ids=positions, use_cache=False).logits[0]
    assert (padded - packed).abs().max() < 1e-5
    with pytest.raises(ValueError, match=f"position_ids must be < block_size={block}.*got {block}"):
        model(packed_ids[:, : block + 1], position_ids=torch.arange(block + 1)[None])
    with pytest.raises(ValueError, match=f"{sum(lengths)} positions .* exceed block_size={block}"):
        model(packed_ids)  # counted positions (no position_ids) still may not pass the table


def test_generate_with_no_input_starts_from_id_0_like_the_seed(tmp_path, tokenizer):
    """transformers' test_text_generation_pipeline_body: `pipeline("text-generation")("")` and generate() with no
    input start from the generation config's BOS, id 0: the seed's torch.zeros((1, 1)). It only starts there:
    generation does not stop at id 0 (no EOS), nothing is stripped from the text (no special tokens), and the
    start is a character even though the tokenizer pads with the same id."""
    seed_model, ours = seed_and_tinygpt("other", seed=6)
    ours.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert (loaded.generation_config.bos_token_id, loaded.generation_config.eos_token_id) == (0, None)
    start = torch.zeros((1, 1), dtype=torch.long)
    reference = seed_greedy_loop(seed_model, start, 50, 20)  # past block_size 20 too
    assert loaded.generate(max_new_tokens=50, do_sample=False).tolist() == reference.tolist()
    assert loaded.generate(max_new_tokens=50, do_sample=False, pad_token_id=0).tolist() == reference.tolist()
    torch.manual_seed(7)
    sampled = seed_model.generate(start, 60)  # the seed's own sampling loop
    torch.manual_seed(7)
    assert loaded.generate(max_new_tokens=60).tolist() == sampled.tolist()

    model = make_model(len(tokenizer), seed=1)  # the test vocabulary: id 0 is "\n"
    written = model.generate(start, max_new_tokens=60, do_sample=False)
    assert (written[0, 1:] == 0).sum() >= 2  # it writes newlines (id 0) and goes on: id 0 ends nothing
    generator = pipeline("text-generation", model=model, tokenizer=tokenizer)
    text = generator("", max_new_tokens=60, do_sample=False)[0]["generated_text"]
    assert text == tokenizer.decode(written[0]) == tokenizer.decode(written[0], skip_special_tokens=True)
    assert text.startswith("\n") and len(text) == 61

    from transformers import GenerationConfig

    own = make_model(len(tokenizer), bos_token_id=3)  # a config that names its own BOS keeps it
    assert own.generation_config.bos_token_id == 3
    bundled = GenerationConfig.from_pretrained(Path(__file__).resolve().parents[1] / "checkpoints" / "tinyshakespeare")
    assert (bundled.bos_token_id, bundled.eos_token_id, bundled.pad_token_id) == (0, None, None)


def test_eager_attention_honours_sdpas_boolean_padding_mask(model, tokenizer):
    """A left-padded batch asked for its attentions runs eager attention on the mask built for sdpa (booleans):
    the logits are sdpa's and each prompt's own, and no character attends to padding. (Issue 22: eager attention
    ignoring that boolean mask passed every other test.)"""
    prompts = ["Speak", "First Citizen:", "All"]  # within block_size 16
    batch = tokenizer(prompts, padding=True, return_tensors="pt")
    mask = batch["attention_mask"]
    assert model.config._attn_implementation == "sdpa" and mask.min() == 0  # really padded
    with torch.no_grad():
        fused = model(**batch).logits
        weighed = model(**batch, output_attentions=True)
        model.set_attn_implementation("eager")  # eager's own (additive, float) mask
        eager = model(**batch, output_attentions=True)
    real = mask.bool()
    assert (weighed.logits - fused)[real].abs().max() < 1e-5
    assert (eager.logits - fused)[real].abs().max() < 1e-5
    for row, prompt in enumerate(prompts):
        with torch.no_grad():
            alone = model(**tokenizer(prompt, return_tensors="pt")).logits[0]
        assert (weighed.logits[row][real[row]] - alone).abs().max() < 1e-5
    for attentions in (weighed.attentions, eager.attentions):
        for wei in attentions:  # (batch, heads, T, T)
            on_padding = wei.masked_select((mask == 0)[:, None, None, :] & real[:, None, :, None])
            assert on_padding.abs().max() == 0
            assert torch.allclose(wei.sum(-1)[real[:, None, :].expand(-1, wei.shape[1], -1)], torch.tensor(1.0))
    for a, b in zip(weighed.attentions, eager.attentions):
        assert (a - b)[real[:, None, :, None].expand_as(a)].abs().max() < 1e-6
