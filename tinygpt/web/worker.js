// The visitor's browser writes here: a module worker that loads onnxruntime-web and the model's ONNX export, then
// runs the decoding loop off the page's thread (the page stays smooth while it writes).
//
// Messages in:  {type: "load", manifest}                     (the demo's /tinygpt-web/manifest.json, URLs absolute)
//               {type: "generate", id, ids, maxNew, temperature, topK, topP, seed}
//               {type: "stop", id}
// Messages out: {type: "ready", loadMs, threads, backend, warmUp: {steps, ms}}  |  {type: "failed", message}
//               {type: "chars", id, ids}   (new ids, batched: at most one message per ~30 ms)
//               {type: "done", id, count, ms, stopped}  |  {type: "error", id, message}

import { Decoder, windowShapes } from "./decoder.js";
import { chooser } from "./sampling.js";

const POST_EVERY_MS = 30; // the page redraws at most this often; a fast model's characters go out together
const YIELD_EVERY_MS = 20; // let a Stop message in at least this often (the loop otherwise never yields)

let decoder = null;
let latest = null; // the id of the newest request: an older one still running ends at its next yield
const stopped = new Set(); // ids whose Stop arrived
let line = Promise.resolve(); // generations run one after another on the one session

// A macrotask boundary that is not clamped like setTimeout(0): a MessageChannel round trip.
const channel = new MessageChannel();
const waiting = [];
channel.port1.onmessage = () => waiting.shift()();
const yieldToEvents = () => new Promise((resolve) => { waiting.push(resolve); channel.port2.postMessage(null); });

async function load(manifest) {
  const started = performance.now();
  const ort = await import(manifest.runtime.module);
  ort.env.wasm.wasmPaths = manifest.runtime.wasm_paths; // an absolute URL: the worker's own origin serves them
  ort.env.wasm.numThreads = manifest.threads ?? 1;
  ort.env.logLevel = "error";
  const options = { executionProviders: ["wasm"], graphOptimizationLevel: "all" };
  const [bytes, windowBytes] = await Promise.all([download(manifest.model.url), manifest.window && download(manifest.window.url)]);
  const session = await ort.InferenceSession.create(bytes, options);
  // Past block_size: the window's own graph where the server has one; else the decoder again, with the window's
  // shapes fixed, which lets onnxruntime fold the graph's shape arithmetic away (see windowShapes).
  let windowStep = { session, lean: false };
  if (windowBytes) {
    windowStep = { session: await ort.InferenceSession.create(windowBytes, options), lean: true };
  } else {
    const fixed = windowShapes(session, manifest.config.block_size);
    if (fixed) windowStep = { session: await ort.InferenceSession.create(bytes, { ...options, freeDimensionOverrides: fixed }), lean: false };
  }
  decoder = new Decoder(ort, session, manifest.config, windowStep);
  await decoder.prime();
  return { loadMs: performance.now() - started, threads: ort.env.wasm.numThreads, backend: "wasm", windowGraph: !!windowBytes };
}

async function download(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

async function generate({ id, ids, maxNew, temperature, topK, topP, seed }) {
  const cancelled = () => id !== latest || stopped.has(id);
  const choose = chooser({ temperature, topK, topP, seed });
  const started = performance.now();
  let pending = [];
  let lastPost = started;
  let lastYield = started;
  let count = 0;
  for await (const next of decoder.generate(ids, maxNew, choose)) {
    pending.push(next);
    count++;
    const now = performance.now();
    if (now - lastPost >= POST_EVERY_MS || count === 1) {
      postMessage({ type: "chars", id, ids: pending });
      pending = [];
      lastPost = now;
    }
    if (now - lastYield >= YIELD_EVERY_MS) {
      await yieldToEvents();
      lastYield = performance.now();
      if (cancelled()) break;
    }
  }
  if (pending.length) postMessage({ type: "chars", id, ids: pending });
  postMessage({ type: "done", id, count, ms: performance.now() - started, stopped: cancelled() });
  stopped.delete(id);
}

// WebAssembly starts in V8's baseline compiler and is recompiled, optimised, in background threads once a function
// has run a while: cold, a step of the sliding window takes several times as long as warm. So before it says it is
// ready the worker writes a throwaway text (the cache's steps, then the window's: most of any text) until the steps
// stop getting faster (a block of them no faster than the one before), for at most WARM_UP_MS; until then the server
// writes for the visitor, and afterwards the browser's first text comes at full speed.
const WARM_UP_BLOCK = 25; // steps timed together
const WARM_UP_MIN_STEPS = 150;
const WARM_UP_MAX_STEPS = 1000;
const WARM_UP_MS = 5000;

async function warmUp() {
  const started = performance.now();
  const ids = [0]; // as a real text goes: the cache's steps first, then the window's
  let steps = 0;
  let blockStart = started;
  let previous = Infinity; // ms per step of the block before
  for await (const _ of decoder.generate(ids, WARM_UP_MAX_STEPS, (logits) => steps++ % logits.length)) {
    if (steps % WARM_UP_BLOCK !== 0) continue;
    const now = performance.now();
    const perStep = (now - blockStart) / WARM_UP_BLOCK;
    if ((steps >= WARM_UP_MIN_STEPS && perStep > 0.95 * previous) || now - started > WARM_UP_MS) break;
    previous = Math.min(previous, perStep);
    blockStart = now;
  }
  return { steps, ms: performance.now() - started };
}

onmessage = async ({ data }) => {
  if (data.type === "load") {
    try {
      const loaded = await load(data.manifest);
      postMessage({ type: "ready", ...loaded, warmUp: await warmUp() });
    } catch (err) {
      postMessage({ type: "failed", message: String(err?.message ?? err) });
    }
  } else if (data.type === "generate") {
    latest = data.id; // a new request replaces the one under way, which ends at its next yield
    line = line.then(() => (latest === data.id ? generate(data) : undefined)).catch((err) => {
      postMessage({ type: "error", id: data.id, message: String(err?.message ?? err) });
    });
  } else if (data.type === "stop") {
    stopped.add(data.id);
  }
};
