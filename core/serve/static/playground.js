// gen serve's playground: generate with streaming, pick the next character from the model's top
// 5 (a stateful session fed as the user types), and the domain's checks of the text beside it.
// Talks only to this server's /v1 API; no third-party code.
"use strict";
const $ = (id) => document.getElementById(id);
let key = localStorage.getItem("gen-api-key") || "";
let models = {}, session = null, sessionText = "", abort = null;

function headers() {
  const h = { "content-type": "application/json" };
  if (key) h.authorization = `Bearer ${key}`;
  return h;
}

async function api(path, body, method = "POST") {
  const r = await fetch(path, { method, headers: headers(), body: body ? JSON.stringify(body) : undefined });
  const data = await r.json();
  if (!r.ok) throw new Error(data.error ? data.error.message : `HTTP ${r.status}`);
  return data;
}

async function loadModels() {
  const r = await fetch("/v1/models", { headers: headers() });
  if (r.status === 401) { $("keybox").hidden = false; return; }
  const list = (await r.json()).data;
  $("model").innerHTML = "";
  for (const m of list) {
    models[m.id] = m;
    $("model").add(new Option(`${m.id} (${m.domain}, ${m.layers}x${m.hidden} ${m.cell})`, m.id));
  }
  modelChanged();
  document.body.dataset.ready = "1";
}

function modelChanged() {
  const m = models[$("model").value];
  if (!m) return;
  $("info").textContent = `corpus ${m.corpus}, ${m.vocab_size} characters` +
    (m.best_val_loss != null ? `, validation ${m.best_val_loss.toFixed(4)} nats/char` : "");
  $("guided").disabled = !m.guided;
  if (!m.guided) $("guided").checked = false;
  session = null;
  if (mode() === "pick") refreshPicks();
}

const mode = () => document.querySelector("input[name=mode]:checked").value;

function options() {
  const seed = $("seed").value.trim();
  return { temperature: +$("temperature").value, top_k: +$("topk").value || 0, max_tokens: Math.max(1, +$("length").value || 400),
    guided: $("guided").checked, ...(seed !== "" ? { seed: +seed } : {}) };
}

// streamed completion: Server-Sent Events read from fetch's body (EventSource cannot POST)
async function generate() {
  const prime = $("prime").value, model = $("model").value;
  $("outprime").textContent = prime; $("outgen").textContent = "";
  $("go").disabled = true; $("stop").disabled = false; $("status").textContent = "";
  document.body.dataset.done = "";
  abort = new AbortController();
  const t0 = performance.now(); let first = null, n = 0, reason = "";
  try {
    const r = await fetch("/v1/completions", { method: "POST", headers: headers(), signal: abort.signal,
      body: JSON.stringify({ model, prompt: prime, stream: true, ...options() }) });
    if (!r.ok) throw new Error((await r.json()).error.message);
    const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let m;  // events end with a blank line; SSE allows \r\n, \r or \n line ends
      while ((m = /\r?\n\r?\n/.exec(buf)) !== null) {
        const event = buf.slice(0, m.index); buf = buf.slice(m.index + m[0].length);
        const data = event.split(/\r?\n/).filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("\n");
        if (!data || data === "[DONE]") continue;
        const msg = JSON.parse(data);
        if (msg.error) throw new Error(msg.error.message);
        for (const c of msg.choices) {
          if (c.text) { if (first === null) first = performance.now() - t0; n += c.text.length; $("outgen").textContent += c.text; }
          if (c.finish_reason) reason = c.finish_reason;
        }
      }
    }
    const secs = (performance.now() - t0) / 1000;
    $("status").textContent = `${n} characters in ${secs.toFixed(2)} s (${Math.round(n / secs)} chars/s), ` +
      `first after ${first === null ? "-" : first.toFixed(0)} ms; finish: ${reason}`;
  } catch (e) {
    $("status").innerHTML = ""; const s = document.createElement("span"); s.className = "err";
    s.textContent = e.name === "AbortError" ? "stopped" : e.message; $("status").appendChild(s);
  }
  $("go").disabled = false; $("stop").disabled = true;
  document.body.dataset.done = "1";
  check(prime + $("outgen").textContent);
}

// pick mode: one session follows the box; typing appends what was added (O(1) per character),
// anything else starts a new session
async function refreshPicks() {
  const model = $("model").value, text = $("prime").value;
  try {
    if (!session || !text.startsWith(sessionText) || session.model !== model) {
      session = await api("/v1/sessions", { model, prompt: text }); sessionText = text;
    } else if (text.length > sessionText.length) {
      await api(`/v1/sessions/${session.id}/append`, { text: text.slice(sessionText.length) }); sessionText = text;
    }
    const odds = await api(`/v1/sessions/${session.id}/next`, { top_k: 5 });
    $("choices").innerHTML = "";
    for (const c of odds.next) {
      const b = document.createElement("button");
      b.textContent = JSON.stringify(c.char).slice(1, -1) || " ";
      const p = document.createElement("span"); p.className = "p"; p.textContent = `${(100 * c.prob).toFixed(1)}%`;
      b.appendChild(p);
      b.onclick = () => { $("prime").value += c.char; refreshPicks(); };
      $("choices").appendChild(b);
    }
    $("outprime").textContent = text; $("outgen").textContent = "";
    document.body.dataset.picked = String(text.length);
    check(text);
  } catch (e) { $("status").textContent = e.message; session = null; }
}

async function check(text) {
  if (!text) return;
  try {
    const r = await api("/v1/check", { model: $("model").value, text });
    const box = $("checkbody"); box.innerHTML = "";
    if (r.unclosed) {
      const u = document.createElement("div");
      u.innerHTML = "still open, closed by: "; const s = document.createElement("span"); s.className = "unclosed";
      s.textContent = r.unclosed; u.appendChild(s); box.appendChild(u);
    }
    const t = document.createElement("table");
    for (const [k, v] of Object.entries(r.metrics)) {
      const row = t.insertRow(); row.insertCell().textContent = k;
      const c = row.insertCell(); c.className = "v"; c.textContent = v == null ? "-" : (+v).toFixed(3).replace(/\.?0+$/, "");
    }
    box.appendChild(t);
    const h = document.createElement("div"); h.textContent = `${r.issue_count} issue(s)`; box.appendChild(h);
    for (const i of r.issues.slice(0, 12)) {
      const d = document.createElement("div"); d.className = "issue";
      d.textContent = `${i.kind}: ${i.message} `; const c = document.createElement("code"); c.textContent = i.excerpt;
      d.appendChild(c); box.appendChild(d);
    }
  } catch (e) { $("checkbody").textContent = e.message; }
}

$("temperature").addEventListener("input", () => { $("tval").textContent = $("temperature").value; });
$("model").addEventListener("change", modelChanged);
$("go").addEventListener("click", generate);
$("stop").addEventListener("click", () => abort && abort.abort());
$("usekey").addEventListener("click", () => { key = $("key").value; localStorage.setItem("gen-api-key", key); $("keybox").hidden = true; loadModels(); });
for (const r of document.querySelectorAll("input[name=mode]")) {
  r.addEventListener("change", () => {
    const pick = mode() === "pick";
    $("picks").hidden = !pick; $("go").hidden = pick; $("stop").hidden = pick;
    if (pick) refreshPicks();
  });
}
let typing = null;
$("prime").addEventListener("input", () => {
  if (mode() !== "pick") return;
  clearTimeout(typing); typing = setTimeout(refreshPicks, 150);
});
loadModels();
