"""How many graphs a compiled (fullgraph, static-shape) forward needs for one generate() call with a static cache.

    TINYGPT_MODEL_DIR=... python probe_recompiles.py
One graph is the goal within block_size; past it, one more for the window path (crop_and_rerun). A count that grows
with max_new_tokens means a recompile per step (each costs seconds).
"""
import importlib, os, sys, time
import torch, torch._dynamo
from torch._dynamo.utils import counters
from transformers import CompileConfig
d = os.environ.get("TINYGPT_MODEL_DIR")
if d:
    sys.path.insert(0, os.path.dirname(os.path.abspath(d))); pkg = os.path.basename(os.path.abspath(d))
else:
    pkg = "tinygpt"
Cfg = importlib.import_module(f"{pkg}.configuration_tinygpt").TinyGPTConfig
Model = importlib.import_module(f"{pkg}.modeling_tinygpt").TinyGPTForCausalLM
cc = CompileConfig(fullgraph=True, dynamic=False); cc._compile_all_devices = True
for block, new in ((64, 6), (8, 6)):
    torch.manual_seed(0)
    m = Model(Cfg(vocab_size=99, n_embd=32, n_head=4, n_layer=2, block_size=block)).eval()
    ids = torch.randint(3, 99, (2, 5))
    for name, kw in (("unpadded", {}), ("left-padded", {"attention_mask": torch.tensor([[0, 0, 1, 1, 1], [1] * 5])})):
        torch._dynamo.reset(); counters.clear(); t = time.time()
        out = m.generate(ids, max_new_tokens=new, do_sample=False, cache_implementation="static", compile_config=cc,
                         pad_token_id=0, **kw)
        ref = m.generate(ids, max_new_tokens=new, do_sample=False, pad_token_id=0, **kw)
        print(f"block_size={block:2} {name:11} {new} new chars: graphs compiled {counters['stats']['unique_graphs']}"
              f"  same text as eager: {torch.equal(out, ref)}  ({time.time() - t:.0f} s)")
