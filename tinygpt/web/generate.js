// The Generate tab's browser side (tinygpt/browser_generate.py serves it; gradio's js_on_load calls `mount`).
//
// When the visitor's browser can run the model (WebAssembly, module workers, the server's manifest says the runtime
// and the model's ONNX export are there, and they load), a click on Generate is handled here: the prompt is
// encoded with the model's tokenizer.json, worker.js writes the characters, and they stream into the output box.
// Everywhere else the click goes on to gradio, and the server writes: the switch set to "the server", the runtime
// or the export missing, a load error, a model trained in the Train tab (it lives on the server), and a request the
// browser should not judge (characters the model does not know, a prompt or setting out of range: the server's
// error message says what is wrong). The status line under the switch always says which one writes.

const SERVER = "server";
const BROWSER = "browser";

export async function mount(element, base) {
  const page = new BrowserGenerate(element, base);
  window.tinygptBrowser = page; // for the tests and the benchmark: its state and timings
  await page.start();
  return page;
}

class BrowserGenerate {
  constructor(element, base) {
    this.element = element;
    this.base = base;
    this.status = element.querySelector(".tinygpt-where-status");
    this.radios = Array.from(element.querySelectorAll('input[name="tinygpt-where"]'));
    this.state = "loading"; // loading | ready | unavailable
    this.reason = "";
    this.manifest = null;
    this.worker = null;
    this.vocab = null; // {stoi: Map(char -> id), itos: [char]}
    this.job = null; // the generation under way: {id, text, count, started, firstMs}
    this.nextId = 1;
    this.timings = { mountedAt: performance.now() }; // ms since the page's navigation started
    for (const radio of this.radios) radio.addEventListener("change", () => this.onSwitch());
    // gradio (Svelte) handles clicks at the root of its app, after they bubble up from the button: a listener on the
    // button itself sees the click first and can keep it from gradio. The button is found (and found again if
    // gradio draws a new one) when a click starts on its way down from the document.
    document.addEventListener("click", (event) => {
      const target = event.target instanceof Element ? event.target : null;
      const button = target?.closest("#generate-btn");
      if (button && !button.tinygptListening) {
        button.tinygptListening = true;
        button.addEventListener("click", (click) => this.onGenerate(click));
      }
      if (target?.closest("#stop-btn")) this.stop(); // gradio's own handler then stops a server generation, if any
    }, true);
  }

  get choice() {
    return this.radios.find((r) => r.checked)?.value ?? SERVER;
  }

  say(text) {
    this.status.textContent = text;
  }

  async start() {
    const missing = this.missingFeature();
    if (missing) return this.unavailable(`your browser has no ${missing}`);
    this.say("Loading the model into your browser… until it is ready, the server writes.");
    try {
      const response = await fetch(new URL("manifest.json", this.base));
      if (!response.ok) throw new Error(`the server's manifest answered HTTP ${response.status}`);
      this.manifest = await response.json();
    } catch (err) {
      return this.unavailable(`its manifest did not load (${err.message ?? err})`);
    }
    if (!this.manifest.available) return this.unavailable(this.manifest.reason);
    const m = this.manifest;
    const absolute = (path) => new URL(path, new URL("manifest.json", this.base)).href;
    try {
      const tokenizer = await (await fetch(absolute(m.tokenizer))).json();
      this.vocab = vocabulary(tokenizer);
      const ready = await this.startWorker({
        runtime: { module: absolute(m.runtime.module), wasm_paths: absolute(m.runtime.wasm_paths) },
        model: { url: absolute(m.model.url) },
        window: m.window && { url: absolute(m.window.url) },
        config: m.config,
        threads: m.threads,
      });
      this.timings.readyAt = performance.now();
      this.timings.loadMs = ready.loadMs; // runtime, model and sessions; then the warm-up (see worker.js)
      this.timings.warmUp = ready.warmUp;
      this.state = "ready";
      const bytes = m.model.bytes + (m.window?.bytes ?? 0);
      this.timings.windowGraph = ready.windowGraph;
      this.loaded = `the model's ONNX export (${(bytes / 1e6).toFixed(2)} MB) on ${m.runtime.package} ` +
        `${m.runtime.version}, WebAssembly, ${ready.threads} thread${ready.threads === 1 ? "" : "s"}`;
      this.onSwitch();
    } catch (err) {
      this.worker?.terminate();
      this.worker = null;
      return this.unavailable(`loading the model in your browser failed (${err.message ?? err})`);
    }
  }

  missingFeature() {
    if (typeof WebAssembly !== "object" || typeof WebAssembly.instantiate !== "function") return "WebAssembly";
    if (typeof Worker !== "function") return "Web Workers";
    if (typeof BigInt64Array !== "function") return "64-bit integer arrays";
    return "";
  }

  startWorker(manifest) {
    return new Promise((resolve, reject) => {
      const worker = new Worker(new URL("page/worker.js", this.base), { type: "module" });
      this.worker = worker;
      worker.onerror = (event) => reject(new Error(event.message || "the worker did not start"));
      worker.onmessage = ({ data }) => {
        if (data.type === "ready") {
          worker.onmessage = ({ data: message }) => this.onWorkerMessage(message);
          worker.onerror = (event) => this.onWorkerFailure(event.message || "the worker stopped");
          resolve(data);
        } else if (data.type === "failed") {
          reject(new Error(data.message));
        }
      };
      worker.postMessage({ type: "load", manifest });
    });
  }

  unavailable(reason) {
    this.state = "unavailable";
    this.reason = reason;
    const browser = this.radios.find((r) => r.value === BROWSER);
    if (browser) browser.disabled = true;
    const server = this.radios.find((r) => r.value === SERVER);
    if (server) server.checked = true;
    this.say(`The server writes the text: ${reason}.`);
  }

  onSwitch() {
    if (this.state !== "ready") return;
    if (this.choice === SERVER) {
      this.stop();
      this.say(`The server writes the text (your browser could: ${this.loaded}).`);
    } else {
      const seconds = (this.timings.loadMs + (this.timings.warmUp?.ms ?? 0)) / 1000;
      this.say(`Your browser writes the text: ${this.loaded}, ready in ${seconds.toFixed(1)} s.`);
    }
  }

  // -- a click on Generate

  onGenerate(event) {
    const request = this.request();
    if (!request) {
      this.stop(); // the server writes this one: a browser generation must not write over it
      return;
    }
    event.stopPropagation(); // gradio never sees this click: no request reaches the server
    this.generate(request);
  }

  /** The request the browser writes, or null where the server does (saying why on the status line). */
  request() {
    if (this.state !== "ready" || this.choice !== BROWSER) return null;
    const trained = document.querySelector('#model-choice input[value="trained"]');
    if (trained?.checked) {
      this.say("The server writes the text: your model trained in this tab lives on the server (only the served " +
        "model has a browser export).");
      return null;
    }
    const prompt = document.querySelector("#prompt textarea")?.value ?? "";
    const limits = this.manifest.limits;
    const number = (id) => { // a slider's or a number box's typed value (gradio keeps them in step)
      const box = document.querySelector(`#${id} input[type=number]`) ?? document.querySelector(`#${id} input`);
      return box && box.value !== "" ? Number(box.value) : NaN;
    };
    const settings = {
      maxNew: number("max-new-tokens"), temperature: number("temperature"), topK: number("top-k"),
      topP: number("top-p"), seed: number("seed"),
    };
    const valid = Number.isInteger(settings.maxNew) && settings.maxNew >= 1 && settings.maxNew <= limits.max_new_tokens
      && Number.isFinite(settings.temperature) && settings.temperature >= 0
      && Number.isInteger(settings.topK) && settings.topK >= 0
      && Number.isFinite(settings.topP) && settings.topP > 0 && settings.topP <= 1
      && Number.isInteger(settings.seed) && settings.seed >= 0 && settings.seed <= limits.max_seed;
    const chars = Array.from(prompt); // code points, as Python counts characters
    const ids = chars.map((c) => this.vocab.stoi.get(c));
    if (!valid || chars.length > limits.max_prompt_chars || ids.some((id) => id === undefined)) {
      this.say("The server writes this one: it checks the prompt and the settings, and says what is wrong.");
      return null; // its error names the unknown characters, or the value out of range
    }
    return { prompt, ids: ids.length ? ids : [0], ...settings }; // empty: the seed's torch.zeros((1, 1))
  }

  generate(request) {
    this.stop();
    const id = this.nextId++;
    const job = { id, text: request.prompt, count: 0, started: performance.now(), firstMs: null };
    this.job = job;
    this.write(job.text, true);
    this.say("Your browser is writing…");
    this.worker.postMessage({
      type: "generate", id, ids: request.ids, maxNew: request.maxNew, temperature: request.temperature,
      topK: request.topK, topP: request.topP, seed: request.seed,
    });
  }

  stop() {
    if (!this.job) return;
    this.worker?.postMessage({ type: "stop", id: this.job.id });
    this.job.stopped = true;
  }

  onWorkerMessage(message) {
    const job = this.job;
    if (!job || message.id !== job.id) return; // a stopped or replaced generation's last words
    if (message.type === "chars") {
      if (job.stopped) return;
      if (job.firstMs === null) {
        job.firstMs = performance.now() - job.started;
        this.timings.firstCharAt ??= performance.now();
      }
      job.text += message.ids.map((i) => this.vocab.itos[i]).join("");
      job.count += message.ids.length;
      this.write(job.text);
    } else if (message.type === "done") {
      this.job = null;
      this.write(job.text, true);
      const seconds = message.ms / 1000;
      const rate = message.count / Math.max(seconds, 1e-9);
      this.last = { count: message.count, ms: message.ms, firstMs: job.firstMs, stopped: message.stopped || job.stopped };
      this.say(`Written in your browser: ${message.count.toLocaleString("en-US")} characters in ` +
        `${seconds.toFixed(2)} s (${Math.round(rate).toLocaleString("en-US")} a second)` +
        `${this.last.stopped ? ", stopped" : ""}.`);
    } else if (message.type === "error") {
      this.job = null;
      this.write(job.text, true);
      this.unavailable(`your browser failed while writing (${message.message}); press Generate again`);
    }
  }

  onWorkerFailure(message) {
    this.job = null;
    this.worker?.terminate();
    this.worker = null;
    this.unavailable(`the browser's worker stopped (${message})`);
  }

  /**
   * Puts the text in the output box. `final`: also the way typing would (an input event), so that gradio's copy of
   * the value follows (its copy button, a later server text); while the text grows only the box changes, which
   * keeps gradio's reactive updates out of every redraw.
   */
  write(text, final = false) {
    const box = document.querySelector("#output textarea");
    if (!box) return;
    box.value = text;
    if (final) box.dispatchEvent(new Event("input", { bubbles: true }));
    box.scrollTop = box.scrollHeight;
  }
}

/** {stoi, itos} from tinygpt's character tokenizer.json (`model.vocab`: character -> id). */
function vocabulary(tokenizer) {
  const vocab = tokenizer?.model?.vocab;
  if (!vocab || typeof vocab !== "object") throw new Error("tokenizer.json has no model.vocab");
  const stoi = new Map(Object.entries(vocab));
  const itos = [];
  for (const [char, id] of stoi) itos[id] = char;
  return { stoi, itos };
}
