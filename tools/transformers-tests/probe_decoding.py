"""Every decoding strategy of generate() against the seed's crop-and-rerun semantics, within and past block_size.

Not one of transformers' tests: the generic tests only compare generate() with itself, so they cannot see a
strategy that is self-consistent but differs from the seed. The reference here is the seed's loop: the next
character is predicted from `idx[:, -block_size:]`, run again from scratch each step (no cache).

    TINYGPT_MODEL_DIR=... python probe_decoding.py     # default: the installed tinygpt (this checkout's tree)

Prints one line per check: PASS / FAIL / CRASH and what differed.
"""

import importlib
import os
import sys
import traceback

import torch

model_dir = os.environ.get("TINYGPT_MODEL_DIR")
if model_dir:
    sys.path.insert(0, os.path.dirname(os.path.abspath(model_dir)))
    package = os.path.basename(os.path.abspath(model_dir))
else:
    package = "tinygpt"
TinyGPTConfig = importlib.import_module(f"{package}.configuration_tinygpt").TinyGPTConfig
TinyGPTForCausalLM = importlib.import_module(f"{package}.modeling_tinygpt").TinyGPTForCausalLM

RESULTS = []


def check(name, fn):
    try:
        ok, detail = fn()
        RESULTS.append((name, "PASS" if ok else "FAIL", detail))
    except Exception as err:  # noqa: BLE001 - a crash is a result here
        last = traceback.extract_tb(err.__traceback__)[-1]
        RESULTS.append((name, "CRASH", f"{type(err).__name__}: {str(err).splitlines()[0][:140]} "
                                       f"[{os.path.basename(last.filename)}:{last.lineno}]"))


def build(block_size, seed=0, vocab=99):
    torch.manual_seed(seed)
    config = TinyGPTConfig(vocab_size=vocab, n_embd=32, n_head=4, n_layer=2, block_size=block_size)
    model = TinyGPTForCausalLM(config).eval()
    model.generation_config.pad_token_id = 0
    model.generation_config.eos_token_id = None
    return model


@torch.no_grad()
def seed_greedy(model, idx, new):
    """The seed's generate(), greedy: crop to the last block_size characters, run from scratch, argmax."""
    bs = model.config.block_size
    for _ in range(new):
        logits = model(idx[:, -bs:], use_cache=False).logits[:, -1]
        idx = torch.cat([idx, logits.argmax(-1, keepdim=True)], dim=1)
    return idx


def same(a, b):
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    if a.shape != b.shape:
        return False, f"shapes {tuple(a.shape)} vs {tuple(b.shape)}"
    diff = (a != b).nonzero()
    return (len(diff) == 0), ("" if len(diff) == 0 else f"first difference at (row, col) {diff[0].tolist()}")


def main():
    for bs in (8, 64):
        new = 20 if bs == 8 else 12  # past the window for 8 (5 + 20 > 8); within it for 64
        tag = f"block_size={bs}"
        model = build(bs)
        prompt = torch.randint(3, 99, (2, 5))
        ref = seed_greedy(model, prompt, new)
        kw = dict(max_new_tokens=new, do_sample=False)

        check(f"{tag} greedy, cache", lambda: same(model.generate(prompt, **kw), ref))
        check(f"{tag} greedy, no cache", lambda: same(model.generate(prompt, use_cache=False, **kw), ref))
        check(f"{tag} greedy from inputs_embeds", lambda: same(
            torch.cat([prompt, model.generate(inputs_embeds=model.get_input_embeddings()(prompt), **kw)], 1), ref))
        check(f"{tag} greedy, prompt longer than block_size", lambda: same(
            model.generate(ref[:, : bs + 3], max_new_tokens=4, do_sample=False),
            seed_greedy(model, ref[:, : bs + 3], 4)))
        # assisted and prompt-lookup decoding take one row at a time
        one, ref_one = prompt[:1], ref[:1]
        check(f"{tag} assisted greedy (assistant = itself)", lambda: same(
            model.generate(one, assistant_model=model, **kw), ref_one))
        other = build(bs, seed=1)
        check(f"{tag} assisted greedy (another assistant)", lambda: same(
            model.generate(one, assistant_model=other, **kw), ref_one))
        # repeated text so prompt lookup finds n-gram candidates
        rep = torch.tensor([[5, 6, 7, 5, 6, 7, 5, 6]])
        check(f"{tag} prompt lookup", lambda: same(
            model.generate(rep, prompt_lookup_num_tokens=3, **kw), seed_greedy(model, rep, new)))
        check(f"{tag} beam search: cache == no cache", lambda: same(
            model.generate(prompt, num_beams=3, **kw), model.generate(prompt, num_beams=3, use_cache=False, **kw)))
        check(f"{tag} beam search num_beams=1 == seed greedy", lambda: same(
            model.generate(prompt, num_beams=1, **kw), ref))

        def sampled(use_cache):
            torch.manual_seed(123)
            return model.generate(prompt, do_sample=True, max_new_tokens=new, use_cache=use_cache)

        check(f"{tag} sampling: cache == no cache (same seed)", lambda: same(sampled(True), sampled(False)))

        def left_padded():
            rows = [torch.randint(3, 99, (1, n)) for n in (3, 6)]
            width = max(r.shape[1] for r in rows)
            ids = torch.cat([torch.cat([torch.zeros(1, width - r.shape[1], dtype=torch.long), r], 1) for r in rows])
            mask = (torch.arange(width)[None] >= torch.tensor([[width - r.shape[1]] for r in rows])).long()
            batch = model.generate(ids, attention_mask=mask, **kw)
            for i, r in enumerate(rows):
                ok, detail = same(batch[i : i + 1, width - r.shape[1]:], seed_greedy(model, r, new))
                if not ok:
                    return False, f"row {i}: {detail}"
            return True, ""

        check(f"{tag} left-padded batch == each row alone", left_padded)

        def scores_cache_vs_none():
            a = model.generate(prompt, output_scores=True, return_dict_in_generate=True, **kw)
            b = model.generate(prompt, output_scores=True, return_dict_in_generate=True, use_cache=False, **kw)
            err = max((x - y).abs().max().item() for x, y in zip(a.scores, b.scores))
            return err < 1e-4, f"max |score difference| {err:.2e}"

        check(f"{tag} scores: cache == no cache", scores_cache_vs_none)
        def static_cache():
            a = model.generate(prompt, cache_implementation="static", output_scores=True, return_dict_in_generate=True,
                               **kw)
            ok, detail = same(a.sequences, ref)
            b = model.generate(prompt, output_scores=True, return_dict_in_generate=True, **kw)
            err = max((x - y).abs().max().item() for x, y in zip(a.scores, b.scores))
            return ok and err < 1e-4, f"{detail} max |score difference| vs dynamic cache {err:.2e}".strip()

        check(f"{tag} static cache", static_cache)

        def continued():
            first = model.generate(prompt, max_new_tokens=new // 2, do_sample=False, return_dict_in_generate=True)
            rest = model.generate(first.sequences, cache=first.cache, max_new_tokens=new - new // 2,
                                  do_sample=False)
            return same(rest, ref)

        check(f"{tag} continue from returned cache (input_ids)", continued)

        def continued_embeds():
            emb = model.get_input_embeddings()
            first = model.generate(inputs_embeds=emb(prompt), max_new_tokens=3, do_sample=False,
                                   return_dict_in_generate=True)
            seq = torch.cat([prompt, first.sequences], 1)
            rest = model.generate(inputs_embeds=emb(seq), cache=first.cache, max_new_tokens=1, do_sample=False)
            return same(torch.cat([seq, rest], 1), ref[:, : prompt.shape[1] + 4])

        check(f"{tag} continue from returned cache (inputs_embeds)", continued_embeds)

    width = max(len(n) for n, _, _ in RESULTS)
    for name, status, detail in RESULTS:
        print(f"{status:5}  {name:{width}}  {detail}")


if __name__ == "__main__":
    main()
