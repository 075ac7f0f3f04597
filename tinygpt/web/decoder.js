// The seed's decoding loop on onnxruntime-web, as PyTorch's generate() runs it (tinygpt.onnx_export's contract).
//
// While the text fits the context (block_size characters), each step feeds only the new character and the key/value
// cache to the decoder `tinygpt export onnx` writes. Past it, the window of the last block_size characters slides,
// every character moves to a new learned position, no cached key stays valid, and each step runs the whole window
// again with an empty cache. That second phase is most of a long text, so its step is made cheap: it runs on the
// window's own graph where the server has one (tinygpt.browser_export: the window in, the last logits out), else on
// the decoder with the window's shapes fixed; its input tensors are built once and refilled in place, and only
// `logits` is copied out.

export class Decoder {
  /**
   * @param ort the onnxruntime-web module
   * @param session an InferenceSession of the decoder (onnx/model.onnx)
   * @param config {n_layer, n_head, n_embd, block_size, vocab_size} (the model's config.json)
   * @param windowStep {session, lean}: lean, a session of the window's own graph (input_ids [1, block_size] ->
   *   logits [1, vocab_size]); else the decoder, best with the window's shapes fixed (see windowShapes)
   */
  constructor(ort, session, config, windowStep = { session, lean: false }) {
    this.ort = ort;
    this.session = session;
    this.windowSession = windowStep.session;
    this.layers = config.n_layer;
    this.heads = config.n_head;
    this.headDim = config.n_embd / config.n_head;
    this.block = config.block_size;
    this.vocab = config.vocab_size;
    const empty = new ort.Tensor("float32", new Float32Array(0), [1, this.heads, 0, this.headDim]);
    this.emptyPast = {};
    for (let i = 0; i < this.layers; i++) {
      this.emptyPast[`past_key_values.${i}.key`] = empty;
      this.emptyPast[`past_key_values.${i}.value`] = empty;
    }
    // The sliding window's feeds: ids refilled in place each step; for the decoder, positions 0..block-1, a mask of
    // ones and the empty cache, all fixed.
    this.window = new BigInt64Array(this.block);
    const ids = new ort.Tensor("int64", this.window, [1, this.block]);
    this.windowFeeds = windowStep.lean ? { input_ids: ids } : {
      input_ids: ids,
      position_ids: new ort.Tensor("int64", BigInt64Array.from({ length: this.block }, (_, i) => BigInt(i)), [1, this.block]),
      attention_mask: new ort.Tensor("int64", new BigInt64Array(this.block).fill(1n), [1, this.block]),
      ...this.emptyPast,
    };
    this.logitsOnly = ["logits"];
  }

  /**
   * Runs each session once on throwaway input: a first run compiles the WebAssembly it needs and sets up
   * onnxruntime's kernels and buffers, hundreds of milliseconds the first character would otherwise wait for.
   */
  async prime() {
    const ids = Array.from({ length: this.block + 1 }, (_, i) => i % this.vocab);
    for await (const _ of this.generate(ids.slice(0, 2), 1, () => 0)); // the cache's step
    for await (const _ of this.generate(ids, 1, () => 0)); // the window's
  }

  /**
   * Yields `maxNew` next ids after `ids` (the prompt's; [0] for an empty prompt), each chosen by `choose(logits)`
   * from the last position's logits (a Float32Array of vocab_size). Stop early by not asking for the next one.
   */
  async *generate(ids, maxNew, choose) {
    ids = Array.from(ids);
    let past = this.emptyPast;
    let cached = 0; // how many of `ids` the cache holds
    for (let step = 0; step < maxNew; step++) {
      const length = ids.length;
      let logits;
      if (length <= this.block) { // the cache is valid: feed only what it has not seen
        const fresh = ids.slice(cached);
        const feeds = {
          input_ids: new this.ort.Tensor("int64", BigInt64Array.from(fresh, BigInt), [1, fresh.length]),
          position_ids: new this.ort.Tensor("int64", BigInt64Array.from(fresh, (_, i) => BigInt(cached + i)), [1, fresh.length]),
          attention_mask: new this.ort.Tensor("int64", new BigInt64Array(length).fill(1n), [1, length]),
          ...past,
        };
        const out = await this.session.run(feeds);
        past = {};
        for (let i = 0; i < this.layers; i++) {
          past[`past_key_values.${i}.key`] = out[`present.${i}.key`];
          past[`past_key_values.${i}.value`] = out[`present.${i}.value`];
        }
        cached = length;
        logits = out.logits;
      } else { // the window slides: run the last block_size ids again, no cache
        const start = length - this.block;
        for (let i = 0; i < this.block; i++) this.window[i] = BigInt(ids[start + i]);
        logits = (await this.windowSession.run(this.windowFeeds, this.logitsOnly)).logits;
      }
      const data = logits.data;
      const next = choose(data.subarray(data.length - this.vocab));
      logits.dispose?.();
      ids.push(next);
      yield next;
    }
  }
}

/**
 * onnxruntime's `freeDimensionOverrides` for the sliding window's step (batch 1, block_size new ids, an empty
 * cache), read from the session's named input dimensions; null if the names do not allow it (one name used for
 * two different sizes, or none named).
 */
export function windowShapes(session, block) {
  const sizes = {};
  const want = {
    input_ids: [1, block], position_ids: [1, block], attention_mask: [1, block],
  };
  for (const input of session.inputMetadata ?? []) {
    const shape = input.shape ?? [];
    const target = want[input.name] ?? (input.name.startsWith("past_key_values.") ? [1, null, 0, null] : null);
    if (!target || shape.length !== target.length) return null;
    for (let i = 0; i < shape.length; i++) {
      if (typeof shape[i] !== "string" || target[i] === null) continue;
      if (shape[i] in sizes && sizes[shape[i]] !== target[i]) return null;
      sizes[shape[i]] = target[i];
    }
  }
  return Object.keys(sizes).length ? sizes : null;
}
