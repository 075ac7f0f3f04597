// Choosing the next character from the model's logits, as the demo's server does (tinygpt/demo.py's SeededSampler,
// which applies transformers' TemperatureLogitsWarper, TopKLogitsWarper and TopPLogitsWarper in that order).
//
// Greedy (temperature 0) is the server's exactly: the highest logit, the lowest id on a tie (torch.argmax).
// Sampling shapes the same distribution, but draws with this file's seeded generator (sfc32), not PyTorch's
// Mersenne Twister: the same seed gives the same text in every browser, not the server's text.
//
// No DOM and no onnxruntime here: the worker imports it, and the tests run it in Node.

/** The index of the largest value; the first one on a tie, as torch.argmax. */
export function argmax(logits) {
  let best = 0;
  let bestValue = logits[0];
  for (let i = 1; i < logits.length; i++) {
    if (logits[i] > bestValue) {
      bestValue = logits[i];
      best = i;
    }
  }
  return best;
}

/**
 * The probabilities the server samples from: logits / temperature, then top-k (keep every logit >= the k-th
 * largest: ties with it stay, as in TopKLogitsWarper), then top-p (drop the least likely characters whose
 * probabilities add up to at most 1 - top_p, always keeping the likeliest, as in TopPLogitsWarper), then softmax.
 * topK 0 and topP 1 are off. Returns a Float64Array that sums to 1.
 */
export function probabilities(logits, temperature, topK, topP) {
  const n = logits.length;
  const scores = new Float64Array(n);
  for (let i = 0; i < n; i++) scores[i] = logits[i] / temperature;
  if (topK > 0 && topK < n) {
    const kth = Float64Array.from(scores).sort()[n - topK]; // ascending: the k-th largest
    for (let i = 0; i < n; i++) if (scores[i] < kth) scores[i] = -Infinity;
  }
  if (topP < 1) {
    const order = Array.from(scores.keys()).sort((a, b) => scores[a] - scores[b]); // ascending, as the warper
    const sorted = softmax(Float64Array.from(order, (i) => scores[i]));
    let cumulative = 0;
    for (let j = 0; j < n - 1; j++) { // the last (likeliest) one always stays
      cumulative += sorted[j];
      if (cumulative <= 1 - topP) scores[order[j]] = -Infinity;
    }
  }
  return softmax(scores);
}

function softmax(scores) {
  let max = -Infinity;
  for (const s of scores) if (s > max) max = s;
  const out = new Float64Array(scores.length);
  let sum = 0;
  for (let i = 0; i < scores.length; i++) {
    out[i] = scores[i] === -Infinity ? 0 : Math.exp(scores[i] - max);
    sum += out[i];
  }
  for (let i = 0; i < out.length; i++) out[i] /= sum;
  return out;
}

/** The index where a uniform draw u in [0, 1) falls in the cumulative distribution (never a zero-probability one). */
export function draw(probs, u) {
  let cumulative = 0;
  let last = 0;
  for (let i = 0; i < probs.length; i++) {
    if (probs[i] === 0) continue;
    cumulative += probs[i];
    last = i;
    if (u < cumulative) return i;
  }
  return last; // rounding left u just above the total
}

/**
 * A seeded uniform generator in [0, 1): sfc32 (Chris Doty-Humphrey's small fast counting generator, 128 bits of
 * state), its state filled from the 32-bit seed by splitmix32. Any seed from 0 to 2**32 - 1 (the server's range).
 */
export function seededRandom(seed) {
  let s = seed >>> 0;
  const splitmix32 = () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
  let a = splitmix32(), b = splitmix32(), c = splitmix32(), d = splitmix32();
  const next = () => {
    const t = (((a + b) >>> 0) + d) >>> 0;
    d = (d + 1) >>> 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) >>> 0;
    c = ((c << 21) | (c >>> 11)) >>> 0;
    c = (c + t) >>> 0;
    return t;
  };
  for (let i = 0; i < 12; i++) next(); // mix the seed through the state before the first draw
  return () => next() / 4294967296;
}

/**
 * A function (logits) -> the next id, for the demo's controls: temperature 0 is greedy (no random numbers drawn),
 * otherwise the warped distribution sampled with `seededRandom(seed)`.
 */
export function chooser({ temperature, topK, topP, seed }) {
  if (temperature === 0) return argmax;
  const random = seededRandom(seed);
  return (logits) => draw(probabilities(logits, temperature, topK, topP), random());
}
