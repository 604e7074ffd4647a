// gen's browser sampler: one recurrent step over an exported model's weights, in plain JavaScript.
//
// Reads ../config.json and ../model.safetensors (an export folder served by any static file
// server), rebuilds the model's step in PyTorch's gate order (LSTM: i, f, g, o; GRU: r, z, n)
// and samples from it. No dependencies and no server-side code. Chosen over ONNX Runtime Web by
// measurement (evals/BENCHMARKS.md, "2026-12-05, evening"): that runs model.onnx faster per
// character, but ships megabytes of wasm where this file is a few kilobytes, shows its first
// character later, and comes from npm, which gen cannot bundle: a Python install could not
// export it offline.
"use strict";

const GATES = { lstm: 4, gru: 3, rnn: 1 };

// safetensors: 8-byte little-endian header length, a JSON header, then the raw tensors
function parseSafetensors(buf) {
  const view = new DataView(buf);
  const n = Number(view.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 8, n)));
  const base = 8 + n;
  const out = {};
  for (const [name, t] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    if (t.dtype !== "F32") throw new Error(`${name}: dtype ${t.dtype}, expected F32`);
    const [a, b] = t.data_offsets;
    // a copy when the tensor is not 4-byte aligned in the file (Float32Array needs alignment)
    const data = (base + a) % 4 === 0 ? new Float32Array(buf, base + a, (b - a) / 4)
      : new Float32Array(buf.slice(base + a, base + b));
    out[name] = { shape: t.shape, data };
  }
  return out;
}

// y (rows) = W (rows x cols, row-major) . x (cols), added onto y (four partial sums per row
// measured no faster in Chromium: the loads, not the additions, bound it)
function matvecAdd(y, W, x, rows, cols) {
  for (let r = 0; r < rows; r++) {
    let s = 0;
    const o = r * cols;
    for (let c = 0; c < cols; c++) s += W[o + c] * x[c];
    y[r] += s;
  }
}

const sigmoid = (v) => 1 / (1 + Math.exp(-v));

class CharModel {
  constructor(config, tensors) {
    const a = config.model_args;
    this.config = config;
    this.cell = a.cell; this.L = a.n_layer; this.H = a.n_hidden; this.V = a.vocab_size; this.E = a.n_embd;
    this.G = GATES[a.cell] * a.n_hidden;
    this.chars = config.vocab.chars;
    this.stoi = new Map(this.chars.map((c, i) => [c, i]));
    const t = (name) => tensors[name].data;
    for (const [name, want] of Object.entries(this.expectedShapes())) {
      const have = tensors[name] && tensors[name].shape.join("x");
      if (have !== want.join("x")) throw new Error(`${name}: shape ${have}, config says ${want.join("x")}`);
    }
    this.layers = [];
    for (let k = 0; k < this.L; k++) {
      this.layers.push({ wih: t(`rnn.weight_ih_l${k}`), whh: t(`rnn.weight_hh_l${k}`),
        bih: t(`rnn.bias_ih_l${k}`), bhh: t(`rnn.bias_hh_l${k}`) });
    }
    // layer 0's input projection of every character, once: (V, G) = embed @ W_ih^T + b_ih
    const emb = t("embed.weight"), l0 = this.layers[0], G = this.G, E = this.E;
    this.table0 = new Float32Array(this.V * G);
    for (let v = 0; v < this.V; v++) {
      const row = this.table0.subarray(v * G, (v + 1) * G);
      row.set(l0.bih);
      matvecAdd(row, l0.wih, emb.subarray(v * E, (v + 1) * E), G, E);
    }
    this.headW = t("head.weight"); this.headB = t("head.bias");
  }

  expectedShapes() {
    const s = { "embed.weight": [this.V, this.E], "head.weight": [this.V, this.H], "head.bias": [this.V] };
    for (let k = 0; k < this.L; k++) {
      s[`rnn.weight_ih_l${k}`] = [this.G, k === 0 ? this.E : this.H];
      s[`rnn.weight_hh_l${k}`] = [this.G, this.H];
      s[`rnn.bias_ih_l${k}`] = [this.G]; s[`rnn.bias_hh_l${k}`] = [this.G];
    }
    return s;
  }

  // per layer h (and c after it for an LSTM): the layout of model.onnx's state
  initState() {
    const rows = this.L * (this.cell === "lstm" ? 2 : 1);
    return Array.from({ length: rows }, () => new Float32Array(this.H));
  }

  // feed one character id; updates state in place and returns the logits (V)
  step(id, state) {
    const H = this.H, G = this.G;
    let x = null;
    for (let k = 0; k < this.L; k++) {
      const lay = this.layers[k];
      const gi = new Float32Array(G);  // input part (with b_ih)
      if (k === 0) gi.set(this.table0.subarray(id * G, (id + 1) * G));
      else { gi.set(lay.bih); matvecAdd(gi, lay.wih, x, G, H); }
      const gh = new Float32Array(lay.bhh);  // hidden part (with b_hh)
      if (this.cell === "lstm") {
        const h = state[2 * k], c = state[2 * k + 1];
        matvecAdd(gh, lay.whh, h, G, H);
        for (let j = 0; j < H; j++) {
          const i = sigmoid(gi[j] + gh[j]), f = sigmoid(gi[H + j] + gh[H + j]);
          const g = Math.tanh(gi[2 * H + j] + gh[2 * H + j]), o = sigmoid(gi[3 * H + j] + gh[3 * H + j]);
          c[j] = f * c[j] + i * g;
          h[j] = o * Math.tanh(c[j]);
        }
        x = h;
      } else if (this.cell === "gru") {
        const h = state[k];
        matvecAdd(gh, lay.whh, h, G, H);
        for (let j = 0; j < H; j++) {
          const r = sigmoid(gi[j] + gh[j]), z = sigmoid(gi[H + j] + gh[H + j]);
          const n = Math.tanh(gi[2 * H + j] + r * gh[2 * H + j]);
          h[j] = n + z * (h[j] - n);
        }
        x = h;
      } else {
        const h = state[k];
        matvecAdd(gh, lay.whh, h, G, H);
        for (let j = 0; j < H; j++) h[j] = Math.tanh(gi[j] + gh[j]);
        x = h;
      }
    }
    const logits = new Float32Array(this.headB);
    matvecAdd(logits, this.headW, x, this.V, H);
    return logits;
  }

  encode(text) {
    const fallback = this.stoi.get(this.config.vocab.fallback) ?? 0;
    return Array.from(text, (ch) => this.stoi.get(ch) ?? fallback);
  }
}

// a small seeded generator (mulberry32): the same seed gives the same sample in every browser
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pick(logits, temperature, topK, random) {
  const V = logits.length;
  if (temperature <= 1e-3) return logits.indexOf(Math.max(...logits));
  let order = null;
  if (topK > 0 && topK < V) order = Array.from(logits.keys()).sort((a, b) => logits[b] - logits[a]).slice(0, topK);
  const ids = order || Array.from(logits.keys());
  let max = -Infinity;
  for (const i of ids) max = Math.max(max, logits[i] / temperature);
  const p = ids.map((i) => Math.exp(logits[i] / temperature - max));
  let u = random() * p.reduce((s, v) => s + v, 0);
  for (let j = 0; j < ids.length; j++) { u -= p[j]; if (u <= 0) return ids[j]; }
  return ids[ids.length - 1];
}

async function loadModel(base = "..") {
  const [config, buf] = await Promise.all([
    fetch(`${base}/config.json`).then((r) => { if (!r.ok) throw new Error(`config.json: HTTP ${r.status}`); return r.json(); }),
    fetch(`${base}/model.safetensors`).then((r) => { if (!r.ok) throw new Error(`model.safetensors: HTTP ${r.status}`); return r.arrayBuffer(); }),
  ]);
  return new CharModel(config, parseSafetensors(buf));
}

// sample: reads the corpus separator then the prime, then calls onChar(ch) per new character;
// yields to the page every `chunk` characters so the text appears as it is sampled
async function generate(model, { prime = "", length = 500, temperature = 0.8, topK = 0, seed = 1, onChar, chunk = 8 }) {
  const state = model.initState();
  const sep = model.config.separator;
  const context = (sep && model.stoi.has(sep[sep.length - 1]) ? sep[sep.length - 1] : "") + prime;
  const ids = model.encode(context || model.config.vocab.fallback);
  let logits = null;
  for (const id of ids) logits = model.step(id, state);
  const random = rng(seed), stop = model.config.stop || "";
  let out = "";
  for (let n = 0; n < length; n++) {
    const id = pick(logits, temperature, topK, random);
    out += model.chars[id];
    if (stop && out.endsWith(stop)) { out = out.slice(0, -stop.length); break; }
    if (onChar) onChar(model.chars[id]);
    logits = model.step(id, state);
    if (n % chunk === chunk - 1) await new Promise((r) => setTimeout(r, 0));
  }
  return out;
}

window.gen = { loadModel, generate, parseSafetensors, CharModel };
