"""TinyGPT: the blog series' character-level GPT as a transformers model.

A reader of the series finds every piece under its own name, in data-flow order:

    Head + MultiHeadAttention (posts 38-39)  ->  MultiHeadAttention
    FeedForward (post 40)                    ->  FeedForward
    Block (post 41)                          ->  Block
    GPT (the final post)                     ->  TinyGPTForCausalLM

What changes is how it is computed, never what: with the default config the logits equal the seed's (to float
rounding). Everything generic is transformers' own machinery, as in its Llama and GPT-2 files: the attention kernel
comes from its attention interface (`attn_implementation=`: "sdpa", the default, "eager" (the seed's `Head` written
out, see `eager_attention`), "flex_attention"), the causal/padding mask from `create_causal_mask`, the key/value
cache is a transformers `Cache`, hidden states and attention weights are recorded by its output-capturing hooks.

There is one model class and no separate base model: `base_model_prefix = ""`, so the embeddings, blocks and head
are attributes of `TinyGPTForCausalLM` itself and there is no `AutoModel` (headless) class to load.

Past `block_size` the seed crops its input to the last `block_size` characters and runs them again, and so does
`generate()` here, on every path transformers offers (greedy, sampling, beam search, assisted and prompt-lookup
decoding, dynamic and static caches): see `prepare_inputs_for_generation` and `crop_and_rerun` in `forward`.

This file is copied next to the weights by `save_pretrained`, so it imports only torch and transformers.
"""

import math

import torch
from torch import nn
from torch.nn import functional as F
from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.cache_utils import Cache, DynamicCache
from transformers.generation.stopping_criteria import MaxLengthCriteria
from transformers.masking_utils import create_causal_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast
from transformers.modeling_utils import AttentionInterface, slice_logits_to_keep
from transformers.utils.deprecation import deprecate_kwarg
from transformers.utils.generic import can_return_tuple
from transformers.utils.output_capturing import capture_outputs

from .configuration_tinygpt import TinyGPTConfig


def eager_attention(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    """The seed's `Head`, written out for all heads at once: attn_implementation="eager", and output_attentions.

    It takes either mask transformers builds: eager's (added: 0 where allowed, the dtype's minimum elsewhere) or
    sdpa's (True where allowed; None where sdpa's causal kernel suffices).
    """
    wei = query @ key.transpose(-2, -1) * scaling  # (B, nh, T, S): the seed's `q @ k.transpose(-2, -1) * C**-0.5`
    if attention_mask is None and query.shape[2] > 1:  # what sdpa's causal kernel applies: the seed's `tril`
        attention_mask = torch.ones(wei.shape[-2:], dtype=torch.bool, device=wei.device).tril()
    if attention_mask is not None and attention_mask.dtype == torch.bool:
        wei = wei.masked_fill(~attention_mask, torch.finfo(wei.dtype).min)  # (not -inf: a padding row stays finite)
    elif attention_mask is not None:
        wei = wei + attention_mask
    wei = F.softmax(wei, dim=-1)
    out = wei @ value  # (B, nh, T, hs)
    return out.transpose(1, 2), wei  # (B, T, nh, hs), as transformers' attention functions return it


def sdpa_attention(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    """transformers' "sdpa" for this model: the same fused kernel, without the generic checks of the library's version
    (grouped-query heads, NPUs, position biases, jit tracing), which cost as long as the kernel itself at this size on
    a CPU (benchmarks/README.md). No mask with several queries: the keys are the queries' own positions (or a static
    cache's first slots), so SDPA's causal kernel (upper-left `tril`) is the seed's mask; one query sees every key."""
    is_causal = attention_mask is None and query.shape[2] > 1
    out = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask, dropout_p=dropout,
                                         is_causal=is_causal, scale=scaling)  # (B, nh, T, hs)
    return out.transpose(1, 2), None


# This model's attention functions: transformers' own ("flex_attention", the flash kernels, any registered one), with
# "eager" and "sdpa" overridden for this model only (transformers' documented way: a local AttentionInterface).
ATTENTION_FUNCTIONS = AttentionInterface()
ATTENTION_FUNCTIONS["eager"] = eager_attention
ATTENTION_FUNCTIONS["sdpa"] = sdpa_attention


def attention_function(config, output_attentions=False):
    """The attention function for `config._attn_implementation`; "eager" where attention weights are asked for (only
    it computes them). `TinyGPTForCausalLM.forward` looks it up once for all blocks: reading a transformers 5.x config
    attribute costs 1-2 us, which is measurable on a ~400 us decoding step of the series' 2-layer model."""
    implementation = "eager" if output_attentions else config._attn_implementation
    return ATTENTION_FUNCTIONS.get_interface(implementation, eager_attention)


class MultiHeadAttention(nn.Module):
    """`n_head` causal self-attention heads side by side, concatenated, then `proj` and dropout.

    The seed gives each `Head(head_size)` its own `key`, `query` and `value` = `nn.Linear(n_embd, head_size,
    bias=False)` and loops over the heads. Here all 3 * n_head of those matrices are stacked into one
    `qkv = nn.Linear(n_embd, 3 * n_embd, bias=False)`, rows `[queries | keys | values]`, head h at rows
    `h * head_size : (h + 1) * head_size` of each third, so one matmul computes every head at once.
    `tinygpt.convert` maps a seed state_dict onto this layout.
    """

    def __init__(self, config: TinyGPTConfig, layer_idx: int):
        super().__init__()
        self.config = config  # the attention interface reads config._attn_implementation
        self.n_head = config.n_head
        self.head_size = config.n_embd // config.n_head
        self.layer_idx = layer_idx  # which layer of the cache this attention reads and writes
        self.is_causal = True
        # The seed's Head: `wei = q @ k.transpose(-2, -1) * C**-0.5`, C = n_embd (see TinyGPTConfig.attn_scale).
        self.scaling = (config.n_embd if config.attn_scale == "n_embd" else self.head_size) ** -0.5
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=False)
        self.proj = nn.Linear(config.n_embd, config.n_embd)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x, attention_mask=None, cache=None, last_only=False, attention=None, **kwargs):
        B, T, C = x.shape
        # every head's query, key and value at once: (B, T, 3 * C) -> three tensors of shape (B, nh, T, hs)
        q, k, v = self.qkv(x).view(B, T, 3, self.n_head, self.head_size).permute(2, 0, 3, 1, 4)
        if cache is not None:  # earlier characters' keys and values: (B, nh, S, hs), S = cached + T
            k, v = cache.update(k, v, self.layer_idx)
        if last_only:  # only the last character asks (see TinyGPTForCausalLM.forward); it may see every key
            q, T = q[:, :, -1:], 1
            attention_mask = attention_mask[..., -1:, :] if attention_mask is not None else None
        if attention is None:  # called on its own (the model passes the function it looked up once for every block)
            attention = attention_function(self.config, kwargs.get("output_attentions"))
        out, wei = attention(self, q, k, v, attention_mask, scaling=self.scaling, **kwargs)  # out: (B, T, nh, hs)
        out = out.reshape(B, T, C)  # heads concatenated, as torch.cat([h(x) for h in heads], dim=-1)
        return self.dropout(self.proj(out)), wei


class FeedForward(nn.Module):
    """The seed's per-character MLP: expand 4x, ReLU, project back, dropout."""

    def __init__(self, config: TinyGPTConfig):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(config.n_embd, 4 * config.n_embd),
            nn.ReLU() if config.activation == "relu" else nn.GELU(),
            nn.Linear(4 * config.n_embd, config.n_embd),
            nn.Dropout(config.dropout),
        )

    def forward(self, x):
        return self.net(x)


class Block(GradientCheckpointingLayer):
    """A pre-LayerNorm transformer block: attention gathers context, the feed-forward processes it.

    (An `nn.Module`; `GradientCheckpointingLayer` only adds `model.gradient_checkpointing_enable()`, which recomputes
    each block in the backward pass instead of keeping its activations.)
    """

    def __init__(self, config: TinyGPTConfig, layer_idx: int):
        super().__init__()
        self.sa = MultiHeadAttention(config, layer_idx)
        self.ffwd = FeedForward(config)
        self.ln1 = nn.LayerNorm(config.n_embd)
        self.ln2 = nn.LayerNorm(config.n_embd)

    def forward(self, x, attention_mask=None, cache=None, last_only=False, attention=None, **kwargs):
        attn = self.sa(self.ln1(x), attention_mask, cache, last_only, attention, **kwargs)[0]  # (B, T or 1, C)
        x = (x[:, -1:] if last_only else x) + attn
        x = x + self.ffwd(self.ln2(x))
        return x


class TinyGPTPreTrainedModel(PreTrainedModel):
    """The transformers contract: config class, weight init, what may be compiled, checkpointed or recorded."""

    config: TinyGPTConfig
    config_class = TinyGPTConfig
    base_model_prefix = ""  # no separate base model (and so no AutoModel): see the module docstring
    main_input_name = "input_ids"
    _input_embed_layer = "token_embedding"  # what get_input_embeddings() returns
    _no_split_modules = ["Block"]
    _supports_sdpa = True
    _supports_flex_attn = True
    _supports_attention_backend = True  # attention functions registered through transformers' AttentionInterface
    supports_gradient_checkpointing = True  # the unit is a Block
    _can_compile_fullgraph = True  # the forward has no branch on tensor values
    # output_hidden_states / output_attentions: recorded by hooks on these modules (see capture_outputs)
    _can_record_outputs = {"hidden_states": Block, "attentions": MultiHeadAttention}

    @torch.no_grad()
    def _init_weights(self, module):
        """The seed builds its layers with PyTorch's default initialisation, and so does tinygpt.

        transformers would otherwise re-initialise every Linear and Embedding with GPT-2's N(0, 0.02). The
        `init.*` helpers skip tensors that `from_pretrained` has loaded, so loaded weights are never touched.
        """
        if isinstance(module, nn.Linear):
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))  # what nn.Linear.reset_parameters does
            if module.bias is not None:
                bound = 1 / math.sqrt(module.in_features)
                init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)


class TinyGPTForCausalLM(TinyGPTPreTrainedModel, GenerationMixin):
    """The seed's `GPT`: token + position embeddings -> blocks -> ln_f -> head -> logits (and loss)."""

    def __init__(self, config: TinyGPTConfig):
        super().__init__(config)
        self.token_embedding = nn.Embedding(config.vocab_size, config.n_embd)
        self.position_embedding = nn.Embedding(config.block_size, config.n_embd)
        self.blocks = nn.ModuleList([Block(config, layer_idx=i) for i in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.head = nn.Linear(config.n_embd, config.vocab_size)
        self.post_init()
        # The seed's generate() samples the next character from the whole softmax; make that generate()'s default
        # too (transformers would otherwise decode greedily, or keep only the top 50 when sampling).
        # `do_sample=False` is still greedy, and every other decoding option can be passed as usual.
        self.generation_config.do_sample = True
        self.generation_config.top_k = 0
        # generate() with no input starts from the seed's start, `torch.zeros((1, 1))`: id 0, which the tokenizer also
        # answers as its BOS (tiny Shakespeare's newline). Only a start: generation does not stop at it (that would be
        # eos_token_id), nor is it added to prompts or removed from text. A config that names its own BOS keeps it.
        if self.generation_config.bos_token_id is None:
            self.generation_config.bos_token_id = 0

    def get_output_embeddings(self):
        return self.head

    def set_output_embeddings(self, value):
        self.head = value

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        crop_and_rerun: bool = False,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        r"""
        input_ids (`torch.LongTensor` of shape `(batch, T)`): character ids. With a `cache`, only the new ones.
        cache (`Cache`): keys/values of earlier characters, filled in place; returned as `output.cache`.
        attention_mask (`torch.Tensor`): `(batch, cached + T)`, 1 for characters and 0 for (left) padding; or a
            custom 4-D mask `(batch, 1, T, cached + T)` (e.g. packed sequences), used as given.
        position_ids (`torch.LongTensor` of shape `(batch, T)`): positions in `[0, block_size)`. By default counted
            from the first character of each row of a 2-D mask (left padding does not shift positions), else from
            the cache's length. Positions that restart within a row without a mask mark packed sequences, which then
            do not see each other (transformers' `create_causal_mask`); such a row may be longer than block_size.
        labels (`torch.LongTensor` of shape `(batch, T)`): usually `input_ids`; shifted inside the model, so position
            t is scored against labels[t + 1]; -100 is ignored. To score every position against targets you already
            shifted (the seed's `targets`), pass `shift_labels=targets` instead.
        output_attentions / output_hidden_states (`bool`): each block's attention weights `(batch, n_head, T,
            cached + T)` (computed by `eager_attention` whatever the attn_implementation) / the residual stream.
        logits_to_keep (`int`): compute logits only for the last this-many positions (0 = all).
        crop_and_rerun (`bool`): what generate() passes past `block_size`. The input may then be longer than
            `block_size`, and each kept position (see `logits_to_keep`) is predicted from its own window of the last
            `block_size` characters, at positions `0..block_size-1`, as the seed's `idx[:, -block_size:]`. No cached
            key stays valid when the window slides, so the cache is not used, and an empty one is returned in its
            place (see `prepare_inputs_for_generation`).
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("TinyGPT: pass exactly one of input_ids or inputs_embeds")
        use_cache = (self.config.use_cache and not self.training) if use_cache is None else use_cache
        tok_emb = self.token_embedding(input_ids) if inputs_embeds is None else inputs_embeds  # (B, T, C)
        B = tok_emb.shape[0]
        if crop_and_rerun:  # one window per kept position, run as a batch of B * n: (B * n, block_size, C)
            tok_emb, attention_mask = self._windows(tok_emb, attention_mask, logits_to_keep)
            position_ids, logits_to_keep, cache = None, 1, None  # positions counted in each window; its last logits
            returned_cache, use_cache = DynamicCache() if use_cache else None, False
        if use_cache and cache is None:
            cache = DynamicCache(config=self.config)
        # None where SDPA's causal kernel is the mask (layer 0: every layer of the cache is full attention)
        mask = create_causal_mask(self.config, tok_emb, attention_mask, cache, position_ids, layer_idx=0)
        position_ids = self._position_ids(tok_emb, cache, attention_mask, position_ids)

        x = tok_emb + self.position_embedding(position_ids)  # (B, T, C)
        # generate() reads only the last position's logits: the last block then computes only that position (every
        # position's keys and values still reach the cache). Exact, and it saves 1/n_layer of the work where a whole
        # text runs again: past block_size, at every step. Not with a static cache (sdpa's causal kernel is what hides
        # its empty slots) nor when hidden states or attentions are recorded.
        recorded = {name: kwargs.get(name, getattr(self.config, name)) for name in ("output_hidden_states",
                                                                                   "output_attentions")}
        last = isinstance(logits_to_keep, int) and logits_to_keep == 1 and not getattr(cache, "is_compileable", False)
        last = last and not any(recorded.values())
        attention = attention_function(self.config, recorded["output_attentions"])
        hidden_states = attentions = None
        # transformers' output capture costs ~40 us a forward: only when asked for, or once its hooks are on the blocks
        # (the first request puts them there for good; they then need the capture's context, e.g. under compile)
        if any(recorded.values()) or getattr(self, "_output_capturing_hooks_installed", False):
            trunk = self._recorded_trunk(x, mask, cache, last, attention, return_dict=True, **kwargs)
            x, hidden_states, attentions = trunk.last_hidden_state, trunk.hidden_states, trunk.attentions
        else:
            x = self._trunk(x, mask, cache, last, attention, **kwargs)
        logits = self.head(slice_logits_to_keep(x, logits_to_keep))  # (B, T, vocab_size)

        loss = None
        if labels is not None or kwargs.get("shift_labels") is not None:
            loss = self.loss_function(logits, labels, vocab_size=self.config.vocab_size, **kwargs)
        if crop_and_rerun:  # each window's last logits, back in the input's batch: (B, n, vocab_size)
            logits, cache = logits.view(B, -1, logits.shape[-1]), returned_cache
        return CausalLMOutputWithPast(loss=loss, logits=logits, cache=cache, hidden_states=hidden_states,
                                      attentions=attentions)

    def _trunk(self, x, mask, cache, last, attention, **kwargs) -> torch.Tensor:
        """The blocks and `ln_f`: what a transformers model's base model computes (`LlamaModel`, GPT-2's
        `transformer`). `last`: the last block computes only the last position (see `forward`)."""
        for i, block in enumerate(self.blocks):
            last_only = last and i == len(self.blocks) - 1
            x = block(x, attention_mask=mask, cache=cache, last_only=last_only, attention=attention, **kwargs)
        return self.ln_f(x)  # (B, T, C)

    @capture_outputs
    def _recorded_trunk(self, x, mask, cache, last, attention, **kwargs) -> BaseModelOutputWithPast:
        """`_trunk` under transformers' output capture (output_hidden_states / output_attentions): it records each
        block's input and then `ln_f`'s output as `hidden_states` (the last one is what the head reads, as in every
        transformers language model), and each block's attention weights, so that `forward` returns exactly
        `CausalLMOutputWithPast`'s fields."""
        return BaseModelOutputWithPast(last_hidden_state=self._trunk(x, mask, cache, last, attention, **kwargs))

    def _position_ids(self, tok_emb, cache, attention_mask, position_ids):
        """transformers' default positions, checked against the block_size learned ones (a clear error, not an
        index error deep inside `nn.Embedding`).

        Explicit `position_ids` are checked by value: each must be < block_size, however long the row, so one row can
        pack many short texts whose positions restart at 0 (padding-free training; `create_causal_mask` keeps them
        apart). Positions counted here (no position_ids) are checked by count: more than block_size of them
        (cached + new) is an error that says how to crop. Shapes and a dynamic cache's length are Python ints and
        are always checked. Tensor values (a static cache's length, explicit position_ids) are checked in eager mode
        only: a compiled or exported graph must not branch on them (and on a GPU reading them would wait for the
        device at every step).
        """
        T, block_size = tok_emb.shape[1], self.position_embedding.num_embeddings  # config.block_size
        compiling = torch.compiler.is_compiling()
        if position_ids is not None:
            if not compiling and int(position_ids.max()) >= block_size:
                raise ValueError(f"TinyGPT: position_ids must be < block_size={block_size}, the number of learned "
                                 f"position embeddings; got {int(position_ids.max())}")
            return position_ids
        past = cache.get_seq_length() if cache is not None else 0  # an int, or a 0-d tensor for a static cache
        if not (compiling and isinstance(past, torch.Tensor)) and past + T > block_size:
            raise ValueError(
                f"TinyGPT: {int(past) + T} positions ({int(past)} cached + {T} new) exceed block_size={block_size}, "
                "the number of learned position embeddings. Crop the input to its last block_size characters "
                "(input_ids[:, -block_size:]) as the seed does, or use generate(), which slides the window for you "
                "(or pass position_ids that restart within the row, for packed texts)."
            )
        if attention_mask is not None and attention_mask.ndim == 2:  # as generate() counts them
            return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, -T:]
        return (torch.arange(T, device=tok_emb.device) + past).unsqueeze(0)

    def _windows(self, tok_emb, attention_mask, logits_to_keep):
        """`crop_and_rerun`: the seed's `idx[:, -block_size:]` for each of the last `logits_to_keep` positions.

        Position t is predicted from the block_size characters ending at t, each at positions 0..block_size-1 of its
        own window: n kept positions (all if 0) become n windows, run as one batch (one for plain decoding; assisted
        decoding checks several candidates at once). Windows that would start before the text are left-padded and
        masked, exactly as a short, left-padded prompt is. Returns the windows and their 2-D masks (or None).
        """
        if not isinstance(logits_to_keep, int):
            raise ValueError("TinyGPT: crop_and_rerun takes logits_to_keep as an int (the last positions to predict)")
        B, T, C = tok_emb.shape
        window = self.config.block_size
        n = logits_to_keep if 0 < logits_to_keep <= T else T
        span = window + n - 1  # the characters those n windows cover
        mask = attention_mask[:, -T:] if attention_mask is not None else None
        if span > T:
            mask = mask if mask is not None else torch.ones((B, T), dtype=torch.long, device=tok_emb.device)
            tok_emb, mask = F.pad(tok_emb, (0, 0, span - T, 0)), F.pad(mask, (span - T, 0))
        if n == 1:  # plain decoding: the last window itself
            return tok_emb[:, -window:], mask[:, -window:] if mask is not None else None
        # window i ends at the i-th kept position: (B, n, C, window) -> (B * n, window, C)
        windows = tok_emb[:, -span:].unfold(1, window, 1).transpose(2, 3).reshape(B * n, window, C)
        masks = mask[:, -span:].unfold(1, window, 1).reshape(B * n, window) if mask is not None else None
        return windows, masks

    def prepare_inputs_for_generation(
        self,
        input_ids,
        next_sequence_length=None,
        cache=None,
        attention_mask=None,
        inputs_embeds=None,
        is_first_iteration=False,
        position_ids=None,
        **kwargs,
    ):
        """The inputs of one generation step; past `block_size` the window slides as the seed's `idx[:, -block_size:]`.

        Within `block_size` this is transformers' usual step (see `GenerationMixin.prepare_inputs_for_generation`):
        only what the cache has not seen is computed. Past it, learned absolute positions mean every character moves
        to a new position when the window slides, so no cached key or value stays valid: `forward` runs the window
        again (`crop_and_rerun`) and hands back an empty dynamic cache, which generate() carries from then on. If
        decoding comes back within `block_size` (assisted decoding's candidates crossed it and were rejected), that
        cache is still empty and the whole text runs again to fill it.
        """
        # The text so far: input_ids, or a prompt given as embeddings followed by the generated ids (input_ids then
        # holds only those). generate() keeps position_ids (and the mask) as long as the whole text.
        length = (position_ids if position_ids is not None else input_ids).shape[-1]
        key, text = "input_ids", input_ids
        if inputs_embeds is not None and input_ids.shape[1] < length:
            key, text = "inputs_embeds", torch.cat([inputs_embeds, self.token_embedding(input_ids)], dim=1)
        elif inputs_embeds is not None and is_first_iteration:
            key, text = "inputs_embeds", inputs_embeds
        if cache is not None and not cache.is_compileable and cache.get_seq_length() == 0:
            next_sequence_length = None  # nothing cached (a first step, or the window slid): the whole text
        # generate()'s positions count from each row's first character; without a mask (no padding) they are the
        # model's own default, which then costs nothing to slice or check
        positions = position_ids if attention_mask is not None else None
        inputs = {key: text, "cache": cache, "attention_mask": attention_mask, "position_ids": positions}

        if length > self.config.block_size:  # the seed's crop: only the characters the new positions' windows cover
            if text.shape[1] < length:
                raise ValueError(
                    "TinyGPT: past block_size, generate() runs the last block_size characters again, so it needs all "
                    "of them: pass the whole input_ids with the cache, not only the new ones"
                )
            inputs.update(crop_and_rerun=True, position_ids=None)  # positions: 0..block_size-1 of each window
            keep = self.config.block_size + next_sequence_length - 1 if next_sequence_length else None
            names = (key, "attention_mask")
        else:  # only the new characters (the mask covers the cached ones too)
            keep, names = next_sequence_length, (key, "position_ids")
        for name in names if keep else ():
            if inputs[name] is not None:  # cloned: a slice's strides change with the length (a compiled forward would
                inputs[name] = inputs[name][:, -keep:].clone(memory_format=torch.contiguous_format)  # recompile for each)
        if attention_mask is not None and cache is not None and cache.is_compileable and "crop_and_rerun" not in inputs:
            # A static cache has a fixed length: transformers' 4-D mask of that length keeps a compiled forward's
            # shapes the same at every step (one graph, not one per length of the growing 2-D mask)
            shape = (*inputs[key].shape[:2], 0)  # create_causal_mask reads only the batch, length, dtype and device
            empty = torch.empty(shape, dtype=self.dtype, device=text.device)
            inputs["attention_mask"] = create_causal_mask(self.config, empty, attention_mask, cache, inputs["position_ids"])
        for name, value in kwargs.items():  # use_cache, output_attentions, logits_to_keep, ...
            if name not in ("labels", "shift_labels"):
                inputs.setdefault(name, value)
        return inputs

    def _maybe_initialize_input_ids_for_generation(self, inputs=None, bos_token_id=None, model_kwargs=None):
        # generate() with no input starts from the generation config's BOS, id 0 (the seed's torch.zeros((1, 1))).
        # That start is a character the model reads, never padding, even though the tokenizer pads with the same id
        # (the text-generation pipeline passes pad_token_id=0): without a mask, transformers would infer one from the
        # pad id and hide the start. So it gets an all-ones mask here, which `_prepare_attention_mask_for_generation`
        # keeps.
        ids = super()._maybe_initialize_input_ids_for_generation(inputs, bos_token_id, model_kwargs)
        if inputs is None and model_kwargs is not None and model_kwargs.get("attention_mask") is None:
            if "inputs_embeds" not in model_kwargs and ids.shape[-1] > 0:
                model_kwargs["attention_mask"] = torch.ones_like(ids)
        return ids

    def _prepare_attention_mask_for_generation(self, inputs_tensor, generation_config, model_kwargs):
        if model_kwargs.get("attention_mask") is not None:  # the start made above (a caller's mask never gets here)
            return model_kwargs["attention_mask"]
        return super()._prepare_attention_mask_for_generation(inputs_tensor, generation_config, model_kwargs)

    def _get_stopping_criteria(self, *args, **kwargs):
        # transformers warns once a sequence outgrows `max_position_embeddings` (our block_size); tinygpt slides its
        # window there by design, so that reminder would only mislead.
        criteria = super()._get_stopping_criteria(*args, **kwargs)
        for criterion in criteria:
            if isinstance(criterion, MaxLengthCriteria):
                criterion.max_position_embeddings = None
        return criteria


__all__ = ["TinyGPTForCausalLM", "TinyGPTPreTrainedModel"]
