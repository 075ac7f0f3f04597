"""TinyGPT: the blog series' character-level GPT as a transformers model.

A reader of the series finds every piece under its own name, in data-flow order:

    Head + MultiHeadAttention (posts 38-39)  ->  MultiHeadAttention
    FeedForward (post 40)                    ->  FeedForward
    Block (post 41)                          ->  Block
    GPT (the final post)                     ->  TinyGPTForCausalLM

What changes is how it is computed, never what: with the default config the logits equal the seed's
(to float rounding). The additions are the transformers contract: a key/value cache so `generate()` does not
re-run the whole context for every character, `attention_mask`/`position_ids` for padded batches, labels that are
shifted inside the model, and safetensors save/load.

There is one model class and no separate base model: `base_model_prefix = ""`, so the embeddings, blocks and head
are attributes of `TinyGPTForCausalLM` itself and there is no `AutoModel` (headless) class to load, only
`AutoModelForCausalLM`. For hidden states, pass `output_hidden_states=True`.

Past `block_size` the seed crops its input to the last `block_size` characters and runs them again, and so does
`generate()` here, on every path transformers offers (greedy, sampling, beam search, assisted and prompt-lookup
decoding, dynamic and static caches): see `TinyGPTForCausalLM.prepare_inputs_for_generation`.

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
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import CausalLMOutputWithPast
from transformers.utils.deprecation import deprecate_kwarg

from .configuration_tinygpt import TinyGPTConfig


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
        self.n_head = config.n_head
        self.head_size = config.n_embd // config.n_head
        self.layer_idx = layer_idx  # which layer of the cache this attention reads and writes
        # The seed's Head: `wei = q @ k.transpose(-2, -1) * C**-0.5`, C = n_embd (see TinyGPTConfig.attn_scale).
        self.scale = (config.n_embd if config.attn_scale == "n_embd" else self.head_size) ** -0.5
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=False)
        self.proj = nn.Linear(config.n_embd, config.n_embd)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x, mask=None, causal=True, cache=None, need_weights=False, last_only=False):
        B, T, C = x.shape
        # every head's query, key and value at once: (B, T, 3 * C) -> three tensors of shape (B, nh, T, hs)
        q, k, v = self.qkv(x).view(B, T, 3, self.n_head, self.head_size).permute(2, 0, 3, 1, 4)
        if cache is not None:
            # Keys and values of earlier characters come from the cache: (B, nh, S, hs), S = past + T (or a static
            # cache's fixed length, whose empty slots the mask hides)
            k, v = cache.update(k, v, self.layer_idx)
        if last_only:  # only the last character asks (see TinyGPTForCausalLM.forward); it may look at every key
            q, T, causal = q[:, :, -1:], 1, False
            mask = mask[..., -1:, :] if mask is not None else None

        wei = None
        if not need_weights:
            # One fused kernel for the seed's scores -> mask -> softmax -> weighted sum. `causal` (no mask, nothing
            # cached) means the keys are exactly the queries' positions, so SDPA's built-in causal mask is the seed's
            # `tril`; with no mask and not causal, one new character looks at every key before it.
            is_causal = True if causal and mask is None else False  # a plain bool, also when traced with symbolic shapes
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal, scale=self.scale)
        else:
            # The seed's Head, written out: used for output_attentions=True and attn_implementation="eager"
            S = k.shape[2]
            if mask is None:  # the seed's `tril` (causal), or all keys for one new character
                mask = torch.ones(T, S, dtype=torch.bool, device=x.device).tril(diagonal=0 if causal else S - T)
            wei = q @ k.transpose(-2, -1) * self.scale  # (B, nh, T, S)
            wei = wei.masked_fill(~mask, float("-inf"))
            wei = F.softmax(wei, dim=-1)
            out = wei @ v  # (B, nh, T, hs)
        out = out.transpose(1, 2).reshape(B, T, C)  # heads concatenated, as torch.cat([h(x) for h in heads], -1)
        out = self.dropout(self.proj(out))
        return out, wei


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

    def forward(self, x, mask=None, causal=True, cache=None, need_weights=False, last_only=False):
        attn_out, wei = self.sa(self.ln1(x), mask, causal, cache, need_weights, last_only)
        x = x[:, -1:] if last_only else x
        x = x + attn_out
        x = x + self.ffwd(self.ln2(x))
        return x, wei


class TinyGPTPreTrainedModel(PreTrainedModel):
    """The transformers contract: config class, weight init, what may be compiled, checkpointed or split."""

    config: TinyGPTConfig
    config_class = TinyGPTConfig
    base_model_prefix = ""  # no separate base model (and so no AutoModel): see the module docstring
    main_input_name = "input_ids"
    _no_split_modules = ["Block"]
    _supports_sdpa = True
    _supports_attention_backend = False
    supports_gradient_checkpointing = True  # the unit is a Block
    _can_compile_fullgraph = True  # the forward has no branch on tensor values (see TinyGPTForCausalLM.forward)

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

    def get_input_embeddings(self):
        return self.token_embedding

    def set_input_embeddings(self, value):
        self.token_embedding = value

    def get_output_embeddings(self):
        return self.head

    def set_output_embeddings(self, value):
        self.head = value

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        crop_and_rerun: bool = False,
        **kwargs,
    ) -> CausalLMOutputWithPast | tuple:
        r"""
        input_ids (`torch.LongTensor` of shape `(batch, T)`): character ids. With a `cache`, only the new ones.
        cache (`Cache`): keys/values of earlier characters, filled in place; returned as `output.cache`.
        attention_mask (`torch.Tensor` of shape `(batch, past + T)`): 1 for real characters, 0 for (left) padding.
        position_ids (`torch.LongTensor` of shape `(batch, T)`): positions in `[0, block_size)`; by default counted
            from the first real character of each row (so left padding does not shift positions).
        labels (`torch.LongTensor` of shape `(batch, T)`): usually `input_ids`; shifted inside the model, so position
            t is scored against labels[t + 1]; -100 is ignored. To score every position against targets you already
            shifted (the seed's `targets`), pass `shift_labels=targets` instead.
        output_attentions (`bool`): also return each block's attention weights, `(batch, n_head, T, past + T)`.
            Past `block_size`, generate() runs the window again (see `crop_and_rerun`), so there they have the
            window's shape, `(batch, n_head, block_size, block_size)`, not the growing sequence's.
        logits_to_keep (`int`): compute logits only for the last this-many positions (0 = all).
        crop_and_rerun (`bool`): what generate() passes past `block_size`: the input may then be longer than
            `block_size`, and each kept position (see `logits_to_keep`) is predicted from its own window of the
            last `block_size` characters, at positions `0..block_size-1`, as the seed's `idx[:, -block_size:]`.
            The cache is returned as given (emptied by generate(): no cached key stays valid when the window slides).
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("TinyGPT: pass exactly one of input_ids or inputs_embeds")
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        return_dict = self.config.return_dict if return_dict is None else return_dict
        use_cache = (self.config.use_cache and not self.training) if use_cache is None else use_cache
        if use_cache and cache is None:
            cache = DynamicCache(config=self.config)
        elif not use_cache:
            cache = None
        if attention_mask is not None and attention_mask.ndim != 2:
            raise ValueError("TinyGPT: attention_mask must be 2-D (batch, past + T): 1 for characters, 0 for padding")

        tok_emb = self.token_embedding(input_ids) if inputs_embeds is None else inputs_embeds  # (B, T, C)
        B, T = tok_emb.shape[:2]
        if crop_and_rerun:
            return self._crop_and_rerun(tok_emb, cache, attention_mask, logits_to_keep, output_attentions,
                                        output_hidden_states, return_dict)
        # Characters already in the cache: an int, or for a static cache a 0-d tensor (so a compiled graph stays valid
        # as it grows); and how many keys attention will see (a static cache has a fixed length, empty slots masked).
        past = cache.get_seq_length() if cache is not None else 0
        S = cache.get_mask_sizes(T, 0)[0] if cache is not None else T
        self._check_positions(past, T, position_ids)
        if position_ids is None:
            if attention_mask is not None:  # count positions from each row's first real character
                # the new characters' entries: the mask may run past them (a static cache's, padded to its length)
                counted = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
                position_ids = counted[:, torch.arange(T, device=tok_emb.device) + past]
            else:
                position_ids = (torch.arange(T, device=tok_emb.device) + past).unsqueeze(0)
        mask = self._attention_mask(attention_mask, T, past, S, tok_emb.device)
        causal = mask is None and not isinstance(past, torch.Tensor) and past == 0  # keys are exactly the queries

        pos_emb = self.position_embedding(position_ids)  # (1 or B, T, C)
        x = tok_emb + pos_emb  # (B, T, C)
        all_hidden_states = (x,) if output_hidden_states else None
        all_attentions = () if output_attentions else None
        need_weights = output_attentions or self.config._attn_implementation == "eager"
        # generate() reads only the last position's logits (logits_to_keep=1). Then the last block computes only
        # that position; its keys and values for every position still go to the cache. Exact, and it saves
        # 1/n_layer of the work where it matters most: past block_size, when the whole window is run again.
        last_only = isinstance(logits_to_keep, int) and logits_to_keep == 1
        last_only = last_only and not (output_hidden_states or output_attentions)
        for i, block in enumerate(self.blocks):
            x, wei = block(x, mask=mask, causal=causal, cache=cache, need_weights=need_weights,
                           last_only=last_only and i == len(self.blocks) - 1)
            if output_hidden_states:
                all_hidden_states += (x,)
            if output_attentions:
                all_attentions += (wei,)
        x = self.ln_f(x)  # (B, T, C)
        if output_hidden_states:  # transformers convention: the last hidden state is the normalised one
            all_hidden_states = all_hidden_states[:-1] + (x,)

        if isinstance(logits_to_keep, int) and logits_to_keep > 0:
            x = x[:, -logits_to_keep:, :]
        elif isinstance(logits_to_keep, torch.Tensor):
            x = x[:, logits_to_keep, :]
        logits = self.head(x)  # (B, T, vocab_size)

        loss = None
        if labels is not None or kwargs.get("shift_labels") is not None:
            loss = self.loss_function(logits, labels, vocab_size=self.config.vocab_size, **kwargs)

        output = CausalLMOutputWithPast(
            loss=loss, logits=logits, cache=cache, hidden_states=all_hidden_states, attentions=all_attentions
        )
        return output if return_dict else output.to_tuple()

    def _check_positions(self, past, T, position_ids):
        """A clear error for positions the model has no embedding for.

        Shapes and a dynamic cache's length are Python ints and are always checked. Tensor values (a static cache's
        length, explicit position_ids) are checked in eager mode only: a compiled or exported graph must not branch
        on them (and on a GPU reading them would wait for the device at every step).
        """
        block_size = self.config.block_size
        compiling = torch.compiler.is_compiling()
        if not (compiling and isinstance(past, torch.Tensor)) and past + T > block_size:
            raise ValueError(
                f"TinyGPT: {int(past) + T} positions ({int(past)} cached + {T} new) exceed block_size={block_size}, "
                "the number of learned position embeddings. Crop the input to its last block_size characters "
                "(input_ids[:, -block_size:]) as the seed does, or use generate(), which slides the window for you."
            )
        if position_ids is not None and not compiling and int(position_ids.max()) >= block_size:
            raise ValueError(f"TinyGPT: position_ids must be < block_size={block_size}")

    @staticmethod
    def _attention_mask(attention_mask, T, past, S, device):
        """The (B or 1, 1, T, S) boolean mask, True where a query may look at a key; None where SDPA needs none.

        Decided from shapes alone, never from values: None when no padding mask is given and the S keys are exactly
        the past + T characters (not a static cache's fixed length) with either nothing cached (SDPA's causal kernel
        is the seed's `tril`) or one new character (it may look at every key). generate() drops an all-ones mask,
        so unpadded generation always takes that fast path.
        """
        if attention_mask is None and not isinstance(past, torch.Tensor) and S == past + T and (past == 0 or T == 1):
            return None
        q_pos = torch.arange(T, device=device)[:, None] + past  # (T, 1): the new characters' places in the cache
        k_pos = torch.arange(S, device=device)[None, :]  # (1, S)
        mask = k_pos <= q_pos  # (T, S): the seed's `tril`, offset by the cached keys; hides a static cache's empty slots
        if attention_mask is None:
            return mask[None, None]
        # Padding keys are hidden from every query. A padding query still sees itself, so no row is all -inf
        # (softmax of that is NaN, which would leak into real positions through 0 * NaN).
        keep = attention_mask[:, None, None, :].bool()  # (B, 1, 1, past + T)
        if keep.shape[-1] < S:  # a static cache: the slots after the text are already hidden by `mask`
            keep = F.pad(keep, (0, S - keep.shape[-1]), value=True)
        return (mask & keep[..., -S:]) | (k_pos == q_pos)

    def _crop_and_rerun(self, tok_emb, cache, attention_mask, logits_to_keep, output_attentions, output_hidden_states,
                        return_dict):
        """`forward` past block_size: the seed's `idx[:, -block_size:]` and a fresh run, for each kept position.

        Position t is predicted from the block_size characters ending at t, each at positions 0..block_size-1 of its
        own window. The last `logits_to_keep` positions (all if 0) become that many windows, run as one batch (one
        window for plain decoding; assisted decoding checks several candidates at once). Windows that would start
        before the text are left-padded and masked, exactly as a short, left-padded prompt is.
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
            windows, masks = tok_emb[:, -window:], mask[:, -window:] if mask is not None else None
        else:  # window i ends at the i-th kept position: (B, n, C, window) -> (B * n, window, C)
            windows = tok_emb[:, -span:].unfold(1, window, 1).transpose(2, 3).reshape(B * n, window, C)
            masks = mask[:, -span:].unfold(1, window, 1).reshape(B * n, window) if mask is not None else None
        out = self(inputs_embeds=windows, attention_mask=masks, use_cache=False, logits_to_keep=1,
                   output_attentions=output_attentions, output_hidden_states=output_hidden_states, return_dict=True)
        output = CausalLMOutputWithPast(
            logits=out.logits.view(B, n, -1), cache=cache, hidden_states=out.hidden_states, attentions=out.attentions
        )
        return output if return_dict else output.to_tuple()

    def prepare_inputs_for_generation(
        self,
        input_ids,
        next_sequence_length=None,
        cache=None,
        attention_mask=None,
        inputs_embeds=None,
        is_first_iteration=False,
        **kwargs,
    ):
        """The inputs of one generation step; past `block_size` the window slides as the seed's `idx[:, -block_size:]`.

        Within `block_size` this is transformers' usual step: only what the cache has not seen is computed (the new
        character, the candidates of assisted decoding, or the uncached tail of a prompt that continues a returned
        cache, given as ids or as embeddings). Past it, learned absolute positions mean every character moves to a
        new position when the window slides, so no cached key or value stays valid: the cache is emptied but kept
        (the same object, so beam search can reorder it and assisted decoding can crop it) and `forward` runs the
        window again (`crop_and_rerun`).

        Written out rather than delegated to transformers' generic version, which also inspects the forward
        signature on every step (a large share of a step for a model this small).
        """
        # Positions come from the cache or the mask in `forward`: generate()'s running position_ids keep counting
        # past block_size. They still tell whether a prompt was given as embeddings: input_ids then holds only the
        # generated characters (unless ids were passed as well).
        position_ids = kwargs.pop("position_ids", None)
        if attention_mask is not None:
            known = attention_mask.shape[1]
        else:
            known = position_ids.shape[-1] if position_ids is not None else input_ids.shape[1]
        embedded_prompt = inputs_embeds is not None and input_ids.shape[1] < known
        if embedded_prompt:
            length = inputs_embeds.shape[1] + input_ids.shape[1]
        else:
            length = attention_mask.shape[1] if attention_mask is not None else input_ids.shape[1]
        use_embeds = inputs_embeds is not None and is_first_iteration

        model_inputs = {"cache": cache, "attention_mask": attention_mask}
        if length > self.config.block_size:
            if cache is not None:
                cache.reset()  # what it held is invalid now; it stays empty while the window slides
                cache.tinygpt_emptied = True
            if embedded_prompt:  # the whole text: the prompt's embeddings, then the new characters'
                model_inputs["inputs_embeds"] = torch.cat([inputs_embeds, self.token_embedding(input_ids)], dim=1)
            elif use_embeds:
                model_inputs["inputs_embeds"] = inputs_embeds
            elif input_ids.shape[1] < length:
                raise ValueError(
                    "TinyGPT: past block_size, generate() runs the last block_size characters again, so it needs all "
                    "of them: pass the whole input_ids with the cache, not only the new ones"
                )
            else:
                model_inputs["input_ids"] = input_ids
            if next_sequence_length:  # only the characters the new positions' windows cover: a fixed shape
                span = self.config.block_size + next_sequence_length - 1
                for key in ("input_ids", "inputs_embeds"):
                    if key in model_inputs:
                        model_inputs[key] = model_inputs[key][:, -span:].clone(memory_format=torch.contiguous_format)
                if attention_mask is not None:  # contiguous too: a slice's strides change with the length
                    model_inputs["attention_mask"] = attention_mask[:, -span:].clone(memory_format=torch.contiguous_format)
            model_inputs["crop_and_rerun"] = True
        elif getattr(cache, "tinygpt_emptied", False):
            # Back within block_size after the window slid (assisted decoding's candidates crossed it and were
            # rejected): the cache holds nothing valid, so the whole text runs again and fills it.
            cache.reset()  # also undoes a crop of the emptied cache
            cache.tinygpt_emptied = False
            if embedded_prompt:
                model_inputs["inputs_embeds"] = torch.cat([inputs_embeds, self.token_embedding(input_ids)], dim=1)
            else:
                model_inputs["input_ids"] = input_ids
        elif use_embeds:
            model_inputs["inputs_embeds"] = inputs_embeds[:, -next_sequence_length:] if next_sequence_length else inputs_embeds
        else:
            # cloned: a slice's strides change with the length, and a compiled forward would recompile for each
            new_ids = input_ids[:, -next_sequence_length:] if next_sequence_length else input_ids
            model_inputs["input_ids"] = new_ids.clone(memory_format=torch.contiguous_format)
        if (
            not model_inputs.get("crop_and_rerun")
            and attention_mask is not None
            and cache is not None
            and cache.is_compileable
        ):
            # A static cache has a fixed length: give the mask that length too (zeros after the text, which the
            # causal mask hides anyway), so that a compiled forward sees the same shapes at every step instead of
            # recompiling for each new mask length.
            slots = cache.get_mask_sizes(1, 0)[0]
            model_inputs["attention_mask"] = F.pad(attention_mask, (0, slots - attention_mask.shape[1]))
        for key, value in kwargs.items():  # use_cache, output_attentions, logits_to_keep, ...
            if key not in ("labels", "shift_labels"):
                model_inputs.setdefault(key, value)
        return model_inputs

    def _get_stopping_criteria(self, *args, **kwargs):
        # transformers warns once a sequence outgrows `max_position_embeddings` (our block_size); tinygpt slides its
        # window there by design, so that reminder would only mislead.
        criteria = super()._get_stopping_criteria(*args, **kwargs)
        for criterion in criteria:
            if isinstance(criterion, MaxLengthCriteria):
                criterion.max_position_embeddings = None
        return criteria


__all__ = ["TinyGPTForCausalLM", "TinyGPTPreTrainedModel"]
