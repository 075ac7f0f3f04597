"""Every path transformers offers around generate(), held to the seed's crop-and-rerun semantics (issue 12).

Within `block_size` generation is the usual cached decoding; past it each new character is predicted from the last
`block_size` characters, as the seed's `idx[:, -block_size:]`. Every deterministic strategy must give the seed's text
on both sides of that line; export, compile and gradient checkpointing must hold on the same model.
"""

import warnings

import pytest
import torch
import torch.nn.functional as F
from conftest import make_model
from test_model import seed_and_tinygpt, seed_greedy_loop
from transformers import DynamicCache, StaticCache
from transformers.generation.utils import GENERATION_MODES_MAPPING

VOCAB, BLOCK = 40, 20  # seed_and_tinygpt("other"): vocab 40, 48 wide, 3 heads, 3 layers, block_size 20
PROMPT_LEN = 5


@pytest.fixture(autouse=True)
def one_thread():
    """Small models run faster on one thread, and the file stays quick on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def pair():
    """The blog's GPT and a TinyGPT with the same weights (block_size 20), and a prompt."""
    seed_model, ours = seed_and_tinygpt("other", seed=3)
    torch.manual_seed(1)
    return seed_model, ours, torch.randint(0, VOCAB, (1, PROMPT_LEN))


def assistant(seed=11, **overrides):
    """Another, smaller tinygpt with the same vocabulary: a draft model for assisted decoding."""
    settings = dict(n_embd=16, n_head=2, n_layer=1, block_size=BLOCK)
    settings.update(overrides)
    return make_model(VOCAB, seed=seed, **settings)


def seed_beam_search(seed_model, idx, max_new_tokens, block_size, num_beams):
    """Beam search over the seed's crop-and-rerun loop: every beam's next character from its last block_size ones."""
    beams, scores = idx, torch.zeros(1)
    for _ in range(max_new_tokens):
        logits, _ = seed_model(beams[:, -block_size:])
        totals = (F.log_softmax(logits[:, -1, :], dim=-1) + scores[:, None]).view(-1)
        scores, flat = totals.topk(num_beams)
        vocab = logits.shape[-1]
        beams = torch.cat([beams[flat // vocab], (flat % vocab)[:, None]], dim=1)
    return beams  # best first, as generate() returns them


# ---------------------------------------------------------------- item 1: continuing from a returned cache


@pytest.mark.parametrize("as_embeddings", [True, False])
def test_continuing_from_a_returned_cache_equals_one_call(pair, as_embeddings):
    _, ours, _ = pair
    prompt = torch.randint(0, VOCAB, (1, 6))
    with torch.no_grad():
        embed = ours.token_embedding
        kwargs = dict(do_sample=False, return_dict_in_generate=True, output_scores=True)
        start = dict(inputs_embeds=embed(prompt)) if as_embeddings else dict(input_ids=prompt)
        whole = ours.generate(**start, max_new_tokens=4, **kwargs)
        first = ours.generate(**start, max_new_tokens=3, **kwargs)
        assert first.cache.get_seq_length() == 6 + 3 - 1  # the last new character is not fed back yet
        text = first.sequences if as_embeddings else first.sequences[:, 6:]  # embeds: generate returns only new ids
        so_far = torch.cat([prompt, text], dim=1)
        more = dict(inputs_embeds=embed(so_far)) if as_embeddings else dict(input_ids=so_far)
        then = ours.generate(**more, cache=first.cache, max_new_tokens=1, **kwargs)
    assert first.cache.get_seq_length() == 6 + 3  # plus the one character it had not seen (not all 9 again: 17)
    assert then.sequences[0, -1] == whole.sequences[0, -1]
    assert (then.scores[0] - whole.scores[3]).abs().max() < 1e-5


# ---------------------------------------------------------------- item 2: every strategy, within and past block_size

STRATEGIES = {
    "greedy": dict(),
    "greedy without cache": dict(use_cache=False),
    "greedy, static cache": dict(cache_implementation="static"),
    "assisted": dict(assistant=dict()),
    "assisted, static cache": dict(assistant=dict(), cache_implementation="static"),
    "assisted by a shorter-context draft": dict(assistant=dict(block_size=8, seed=12)),
    "assisted, 6 draft tokens": dict(assistant=dict(seed=13), num_assistant_tokens=6,
                                     num_assistant_tokens_schedule="constant"),
    "prompt lookup": dict(prompt_lookup_num_tokens=3),
    "prompt lookup, static cache": dict(prompt_lookup_num_tokens=3, cache_implementation="static"),
}


@pytest.mark.parametrize("new", [BLOCK - PROMPT_LEN - 2, 3 * BLOCK])  # within block_size; well past it
@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_deterministic_strategies_give_the_seeds_text(pair, strategy, new):
    seed_model, ours, prompt = pair
    kwargs = dict(STRATEGIES[strategy])
    if "assistant" in kwargs:
        kwargs["assistant_model"] = assistant(**kwargs.pop("assistant"))
    reference = seed_greedy_loop(seed_model, prompt, new, BLOCK)
    with torch.no_grad():
        out = ours.generate(prompt, max_new_tokens=new, do_sample=False, **kwargs)
    assert out.tolist() == reference.tolist()


@pytest.mark.parametrize("cache_implementation", [None, "static"])
def test_prompt_lookup_crosses_block_size_and_comes_back(pair, cache_implementation, monkeypatch):
    """A repetitive prompt makes prompt lookup propose several characters at once: candidates that cross the
    window's edge are checked with one window each, and when they are rejected decoding is back within
    block_size with an emptied cache, which must be filled again from the whole text."""
    seed_model, ours, _ = pair
    # 17 of block_size 20, ending in "1, 2": the lookup proposes "3, 4, 5, 6", past the edge, which a random
    # model rejects
    prompt = torch.tensor([list(range(1, 16)) + [1, 2]])
    reference = seed_greedy_loop(seed_model, prompt, 30, BLOCK)
    steps = []
    prepare = type(ours).prepare_inputs_for_generation

    def spy(self, input_ids, *args, cache=None, **kwargs):
        # past block_size forward hands back an empty cache: still empty on a later step within block_size = back
        emptied = cache is not None and not kwargs.get("is_first_iteration") and cache.get_seq_length() == 0
        back = emptied and input_ids.shape[1] <= BLOCK
        steps.append(("back within" if back else "crop_and_rerun") if cache is not None and (
            back or input_ids.shape[1] > BLOCK) else "cached")
        return prepare(self, input_ids, *args, cache=cache, **kwargs)

    monkeypatch.setattr(type(ours), "prepare_inputs_for_generation", spy)
    with torch.no_grad():
        out = ours.generate(prompt, max_new_tokens=30, do_sample=False, prompt_lookup_num_tokens=4,
                            cache_implementation=cache_implementation)
    assert out.tolist() == reference.tolist()
    assert {"crop_and_rerun", "back within"} <= set(steps), steps


@pytest.mark.parametrize("use_cache, cache_implementation", [(True, None), (False, None), (True, "static")])
def test_beam_search_past_block_size_is_the_seeds_beam_search(pair, use_cache, cache_implementation):
    seed_model, ours, prompt = pair
    new, beams = 2 * BLOCK, 3
    reference = seed_beam_search(seed_model, prompt, new, BLOCK, beams)
    with torch.no_grad():
        out = ours.generate(prompt, max_new_tokens=new, do_sample=False, num_beams=beams, num_return_sequences=beams,
                            length_penalty=0.0, use_cache=use_cache, cache_implementation=cache_implementation)
    assert out.tolist() == reference.tolist()


@pytest.mark.parametrize("kwargs", [
    dict(), dict(cache_implementation="static"), dict(assistant=True), dict(prompt_lookup_num_tokens=3),
    dict(num_beams=2),
])
def test_sampling_strategies_run_past_block_size(pair, kwargs):
    """Sampling is random, so only its shape and repeatability are checked (speculative sampling included)."""
    _, ours, prompt = pair
    kwargs = dict(kwargs)
    if kwargs.pop("assistant", False):
        kwargs["assistant_model"] = assistant()
    outs = []
    for _ in range(2):
        torch.manual_seed(5)
        with torch.no_grad():
            outs.append(ours.generate(prompt, max_new_tokens=2 * BLOCK, do_sample=True, top_k=0, **kwargs))
    assert outs[0].shape == (1, PROMPT_LEN + 2 * BLOCK)
    assert torch.equal(outs[0], outs[1])


def test_sampling_past_block_size_is_the_same_on_every_cache():
    """The seed samples from the same softmax; so do the dynamic cache, no cache and the static cache."""
    seed_model, ours = seed_and_tinygpt("other", seed=6)
    prompt = torch.zeros((1, 1), dtype=torch.long)
    torch.manual_seed(7)
    reference = seed_model.generate(prompt, 3 * BLOCK)
    for kwargs in (dict(), dict(use_cache=False), dict(cache_implementation="static")):
        torch.manual_seed(7)
        assert ours.generate(prompt, max_new_tokens=3 * BLOCK, **kwargs).tolist() == reference.tolist(), kwargs


@pytest.mark.parametrize("cache_implementation", [None, "static"])
def test_left_padded_batch_past_block_size_gives_each_prompts_own_text(pair, cache_implementation):
    seed_model, ours, _ = pair
    prompts = [torch.randint(0, VOCAB, (1, n)) for n in (3, 11, 7)]
    new = 2 * BLOCK
    references = [seed_greedy_loop(seed_model, p, new, BLOCK)[0].tolist() for p in prompts]
    width = max(p.shape[1] for p in prompts)
    ids = torch.cat([F.pad(p, (width - p.shape[1], 0)) for p in prompts])
    mask = torch.cat([F.pad(torch.ones_like(p), (width - p.shape[1], 0)) for p in prompts])
    with torch.no_grad():
        out = ours.generate(ids, attention_mask=mask, max_new_tokens=new, do_sample=False,
                            cache_implementation=cache_implementation)
    pads = (mask == 0).sum(1)
    assert [row[p:].tolist() for row, p in zip(out, pads)] == references


def test_only_these_strategies_ship_inside_transformers():
    """transformers 5.x keeps greedy/sampling, beam search/sampling and assisted decoding (assistant model, prompt
    lookup) in the library; contrastive search, DoLa, group and constrained beam search moved to Hub repos
    (`custom_generate=`, remote code). If that list grows, the new strategy needs a test above.

    Not covered, by design: `assistant_early_exit` (drafting with the model's own first layers) reads a base model
    attribute (tinygpt has none: `base_model_prefix = ""`) and needs a model trained to exit early (LayerSkip)."""
    in_library = {mode.value for mode, where in GENERATION_MODES_MAPPING.items() if "/" not in where}
    assert in_library == {"greedy_search", "sample", "beam_search", "beam_sample", "assisted_generation"}


def test_attentions_past_block_size_have_the_windows_shape(pair):
    _, ours, prompt = pair
    with torch.no_grad():
        out = ours.generate(prompt, max_new_tokens=BLOCK, do_sample=False, output_attentions=True,
                            return_dict_in_generate=True)
    heads = ours.config.n_head
    assert out.attentions[1][0].shape == (1, heads, 1, PROMPT_LEN + 1)  # within: one new query, every key so far
    assert out.attentions[-1][0].shape == (1, heads, BLOCK, BLOCK)  # past: the window, run again


def test_unpadded_generation_keeps_the_fused_causal_path(pair, monkeypatch):
    """No explicit mask on any step of plain cached generation: SDPA's causal kernel, then one query per step."""
    _, ours, prompt = pair
    masks = []
    sdpa = F.scaled_dot_product_attention

    def spy(*args, **kwargs):
        masks.append(kwargs.get("attn_mask"))
        return sdpa(*args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    with torch.no_grad():
        ours.generate(prompt, max_new_tokens=2 * BLOCK, do_sample=False)
    assert masks and all(m is None for m in masks)


# ---------------------------------------------------------------- item 3: export and compile


class Logits(torch.nn.Module):
    """forward's logits alone: what torch.export traces."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        return self.model(input_ids, attention_mask=attention_mask, use_cache=False).logits


def padded_batch(batch, length):
    ids = torch.randint(0, VOCAB, (batch, length))
    mask = torch.ones_like(ids)
    mask[0, : length // 2] = 0  # one left-padded row
    return ids, mask


def test_torch_export_with_static_and_dynamic_shapes(pair):
    _, ours, _ = pair
    ids, mask = padded_batch(2, 7)
    static = torch.export.export(Logits(ours), (ids, mask))
    assert (static.module()(ids, mask) - ours(ids, attention_mask=mask).logits).abs().max() < 1e-5
    batch, seq = torch.export.Dim("batch", min=1, max=64), torch.export.Dim("seq", min=1, max=BLOCK)
    shapes = {"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}}
    dynamic = torch.export.export(Logits(ours), (ids, mask), dynamic_shapes=shapes).module()
    for b, t in [(3, 12), (1, 1), (5, BLOCK)]:
        other_ids, other_mask = padded_batch(b, t)
        expected = ours(other_ids, attention_mask=other_mask).logits
        assert (dynamic(other_ids, other_mask) - expected).abs().max() < 1e-5


def test_exported_static_cache_decoder_generates_the_same_text(pair):
    """transformers' ExecuTorch recipe: a static cache inside the exported program, one character per call."""
    from transformers.integrations.executorch import TorchExportableModuleForDecoderOnlyLM

    _, ours, prompt = pair
    ours.generation_config.cache_implementation = "static"
    try:
        exportable = TorchExportableModuleForDecoderOnlyLM(ours, batch_size=1, max_cache_len=BLOCK)
        program = exportable.export(input_ids=prompt[:, :1], cache_position=torch.tensor([0])).module()
    finally:
        ours.generation_config.cache_implementation = None
    text = prompt[0].tolist()
    for i in range(len(text)):
        logits = program(input_ids=prompt[:, i : i + 1], cache_position=torch.tensor([i]))
    while len(text) < BLOCK:
        text.append(int(logits[0, -1].argmax()))
        logits = program(input_ids=torch.tensor([[text[-1]]]), cache_position=torch.tensor([len(text) - 1]))
    expected = ours.generate(prompt, max_new_tokens=BLOCK - PROMPT_LEN, do_sample=False)
    assert text == expected[0].tolist()


@pytest.mark.parametrize("backend", ["eager", "aot_eager"])
def test_compiled_decode_step_is_one_graph_and_exact(pair, backend):
    """fullgraph=True makes any graph break an error. "eager" checks the capture, "aot_eager" also traces it the way
    inductor does (functionalised, the cache written in place) without generating code, which takes a minute from
    cold; benchmarks/bench.py runs the inductor-compiled decoding and checks its text."""
    _, ours, prompt = pair
    torch._dynamo.reset()
    compiled = torch.compile(ours, fullgraph=True, backend=backend)
    eager_cache, compiled_cache = (StaticCache(config=ours.config, max_cache_len=BLOCK) for _ in range(2))
    with torch.no_grad():
        ours(prompt, cache=eager_cache, use_cache=True)
        ours(prompt, cache=compiled_cache, use_cache=True)
        for step in range(4):
            x = torch.tensor([[step]])
            eager = ours(x, cache=eager_cache, use_cache=True).logits
            assert (compiled(x, cache=compiled_cache, use_cache=True).logits - eager).abs().max() < 1e-5


def test_compiled_generate_with_a_padded_batch_compiles_one_graph(pair):
    """generate() with a static cache and a compiled forward: a left-padded batch's mask grows by one column per
    step, which used to cost a recompile per character (seconds each). It is now padded to the cache's length."""
    from torch._dynamo.utils import counters
    from transformers import CompileConfig

    _, ours, prompt = pair
    config = CompileConfig(fullgraph=True, dynamic=False, backend="eager")
    config._compile_all_devices = True  # transformers compiles decode steps only on GPUs unless told
    batch = torch.cat([prompt, prompt.flip(1)])
    mask = torch.ones_like(batch)
    mask[0, :2] = 0  # left padding
    torch._dynamo.reset()
    counters.clear()
    compiled = ours.generate(batch, attention_mask=mask, max_new_tokens=6, do_sample=False, pad_token_id=0,
                             cache_implementation="static", compile_config=config)
    assert counters["stats"]["unique_graphs"] == 1
    eager = ours.generate(batch, attention_mask=mask, max_new_tokens=6, do_sample=False, pad_token_id=0)
    assert torch.equal(compiled, eager)


def test_clear_errors_stay_in_eager_mode(pair):
    _, ours, _ = pair
    with pytest.raises(ValueError, match="position_ids must be < block_size=20"):
        ours(torch.zeros((1, 3), dtype=torch.long), position_ids=torch.tensor([[0, 1, BLOCK]]))
    cache = StaticCache(config=ours.config, max_cache_len=2 * BLOCK)
    ours(torch.zeros((1, BLOCK), dtype=torch.long), cache=cache, use_cache=True)
    with pytest.raises(ValueError, match=r"21 positions \(20 cached \+ 1 new\) exceed block_size=20"):
        ours(torch.zeros((1, 1), dtype=torch.long), cache=cache, use_cache=True)


def test_only_new_ids_past_block_size_is_a_clear_error(pair):
    """generate() keeps position_ids as long as the whole text, so the model knows the text is missing, with an
    all-ones mask (which generate() drops) as with a padded one."""
    _, ours, _ = pair
    ids = torch.randint(0, VOCAB, (1, BLOCK))
    first = ours.generate(ids, max_new_tokens=1, do_sample=False, return_dict_in_generate=True)
    mask = torch.ones((1, BLOCK + 1), dtype=torch.long)
    for padded in (False, True):
        mask[0, 0] = 0 if padded else 1
        with pytest.raises(ValueError, match="pass the whole input_ids"):
            ours.generate(first.sequences[:, -1:], attention_mask=mask, cache=first.cache, max_new_tokens=2)


# ---------------------------------------------------------------- item 4: gradient checkpointing


def test_gradient_checkpointing_recomputes_blocks_and_gives_the_same_gradients():
    def grads(checkpointing):
        model = make_model(VOCAB, n_layer=3)
        model.train()
        if checkpointing:
            with warnings.catch_warnings():  # transformers 5.x also names it activation_checkpointing_enable
                warnings.simplefilter("ignore", FutureWarning)
                model.gradient_checkpointing_enable()
        calls = []
        model.blocks[0].ln1.register_forward_hook(lambda *_: calls.append(1))  # the block's first layer
        torch.manual_seed(0)
        x = torch.randint(0, VOCAB, (4, 12))
        model(x, labels=x).loss.backward()
        return {name: p.grad.clone() for name, p in model.named_parameters()}, len(calls)

    plain, plain_calls = grads(False)
    checkpointed, checkpointed_calls = grads(True)
    assert (plain_calls, checkpointed_calls) == (1, 2)  # the block ran again in the backward pass
    assert plain.keys() == checkpointed.keys()
    for name in plain:
        assert torch.allclose(plain[name], checkpointed[name], atol=1e-6), name
