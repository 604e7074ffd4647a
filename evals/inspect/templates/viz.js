/* The script of the `gen viz` page.
 * The script reads the JSON data block, builds one <span> per character once (text set with
 * ``textContent``, so text from samples or corpora can never become markup), and afterwards only
 * changes ``style.backgroundColor`` when the colouring changes: 20,000 characters stay fluid.
 * It marks ``<body data-ready="1" data-render-ms=...>`` when done and records any script error in
 * ``data-error`` (and a visible banner), which the headless-browser test reads back.
 * URL fragment: ``#cell=LAYER:KIND:INDEX`` colours by that cell, ``&pos=N`` opens the guesses strip.
 */
(function () {
"use strict";
var body = document.body;
window.onerror = function (msg, src, line) {
  body.setAttribute("data-error", String(msg));
  var e = document.getElementById("err");
  e.hidden = false; e.textContent = "Script error: " + msg + " (line " + line + ")";
};
var t0 = performance.now();
var D = JSON.parse(document.getElementById("data").textContent);
function bytes(b64) {
  var s = atob(b64), n = s.length, out = new Uint8Array(n);
  for (var i = 0; i < n; i++) out[i] = s.charCodeAt(i);
  return out;
}
var chars = Array.from(D.text);  // code points, as Python indexes the text
var T = chars.length, K = D.k, H = D.hidden;
var acts = bytes(D.acts), topP = bytes(D.top_p), topIds = new Uint16Array(bytes(D.top_ids).buffer);
var slots = {};
D.cells.forEach(function (c, s) { slots[c[0] + ":" + c[1] + ":" + c[2]] = s; });
function el(tag, cls, text) {
  var e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}
function vis(ch) { return ch === "\n" ? "\u21b5" : ch === " " ? "\u2423" : ch === "\t" ? "\u21e5" : ch; }
function pct(q) { return (q / 2.55).toFixed(q >= 25 ? 0 : 1) + "%"; }

// ---- controls ----
var bar = el("div"); bar.id = "controls";
function sel(label, options) {
  var s = el("select");
  options.forEach(function (o) { var op = el("option", "", o[1]); op.value = o[0]; s.appendChild(op); });
  if (label) bar.appendChild(el("span", "", label));
  bar.appendChild(s);
  return s;
}
var mode = sel("Colour by", [["loss", "loss per character"], ["cell", "cell activation"], ["none", "nothing"]]);
var layerSel = sel("layer", D.cells.length ? Array.from({length: D.layers}, function (_, i) { return [i, i]; }) : []);
var kindSel = sel("", D.kinds.map(function (k) { return [k, k === "c" ? "c (cell state)" : "h (hidden)"]; }));
var unit = el("input"); unit.type = "number"; unit.min = 0; unit.max = H - 1; unit.value = 0; unit.title = "unit";
bar.appendChild(el("span", "", "unit")); bar.appendChild(unit);
var prev = el("button", "", "\u2039"), next = el("button", "", "\u203a");
prev.title = "previous embedded cell"; next.title = "next embedded cell";
bar.appendChild(prev); bar.appendChild(next);
var pinSel = sel("", [["", D.pinned.length ? "cells of interest\u2026" : "(no cells of interest)"]]
  .concat(D.pinned.map(function (p) { return [p.cell, p.cell + "  " + p.label]; })));
var legend = el("span", "legend"), legendTxt = el("span", ""), legendBox = el("span", "legendbox");
legendBox.appendChild(legend); legendBox.appendChild(legendTxt); bar.appendChild(legendBox);
var info = el("span"); info.id = "cellinfo"; bar.appendChild(info);
body.appendChild(bar);
var strip = el("div"); strip.id = "strip"; strip.hidden = true; body.appendChild(strip);
var box = el("div"); box.id = "text"; body.appendChild(box);
var tip = el("div"); tip.id = "tip"; tip.hidden = true; body.appendChild(tip);

// ---- the text, built once ----
var spans = new Array(T), frag = document.createDocumentFragment();
for (var i = 0; i < T; i++) {
  var ch = chars[i], s = el("span", ch === "\n" ? "nl" : "", ch === "\n" ? "\u21b5" : ch);
  s._i = i; spans[i] = s; frag.appendChild(s);
  if (ch === "\n") frag.appendChild(document.createTextNode("\n"));
}
box.appendChild(frag);

// ---- colours ----
function diverging(x) {  // blue below zero, white at zero, red above
  var a = Math.min(1, Math.abs(x)).toFixed(3);
  return x >= 0 ? "rgba(214,39,40," + a + ")" : "rgba(31,119,180," + a + ")";
}
var sorted = D.loss.slice().sort(function (a, b) { return a - b; });
var lossCap = Math.max(1, sorted[Math.floor(0.99 * (sorted.length - 1))] || 1);
function lossColour(v) { return "rgba(255,80,0," + Math.min(1, v / lossCap).toFixed(3) + ")"; }
// one table for every cell: values are stored as round(v / max|v| * 127) + 128, so each cell
// uses the whole colour range whatever its scale (a counter in c reaching 20, an h within 0.3)
var cellColours = new Array(256);
for (var q = 0; q < 256; q++) cellColours[q] = diverging((q - 128) / 127);
function current() { return layerSel.value + ":" + kindSel.value + ":" + unit.value; }
function value(slot, i) { return (acts[slot * T + i] - 128) / 127 * D.cells[slot][3]; }
var colours = new Array(T);
function paint() {
  var m = mode.value, slot = slots[current()], j;
  if (m === "cell" && slot === undefined) {
    info.textContent = "cell " + current() + " is not in this page (" + D.cells.length + " of " +
      D.total_cells + " cells fit; rerun with a larger --max-mb)";
    m = "none";
  } else if (m === "cell") {
    var pin = D.pinned.filter(function (p) { return p.cell === current(); })[0];
    info.textContent = "cell " + current() + (pin ? " \u2014 " + pin.label : "") + "; colour scale \u00b1" +
      D.cells[slot][3].toFixed(2) + " (its largest |value| on this text)";
  } else info.textContent = m === "loss" ? "loss of each character given the text before it" : "";
  if (m === "cell") {
    var off = slot * T;
    for (j = 0; j < T; j++) colours[j] = cellColours[acts[off + j]];
    legend.style.background = "linear-gradient(to right,rgb(31,119,180),#fff,rgb(214,39,40))";
    legendTxt.textContent = "\u2212" + D.cells[slot][3].toFixed(2) + " \u2026 +" + D.cells[slot][3].toFixed(2);
  } else if (m === "loss") {
    for (j = 0; j < T; j++) colours[j] = lossColour(D.loss[j]);
    legend.style.background = "linear-gradient(to right,#fff,rgb(255,80,0))";
    legendTxt.textContent = "0 \u2026 " + lossCap.toFixed(1) + " nats";
  } else {
    for (j = 0; j < T; j++) colours[j] = "";
    legend.style.background = "none"; legendTxt.textContent = "";
  }
  for (j = 0; j < T; j++) spans[j].style.backgroundColor = colours[j];
  if (!strip.hidden) openStrip(stripPos);
  var hash = "#" + (mode.value === "cell" ? "cell=" + current() : "mode=" + mode.value) +
    (strip.hidden ? "" : "&pos=" + stripPos);
  if (location.hash !== hash) history.replaceState(null, "", hash);
}
function setCell(key) {
  var p = key.split(":");
  if (p.length !== 3) return;
  layerSel.value = p[0]; kindSel.value = p[1]; unit.value = p[2]; mode.value = "cell";
}
function step(d) {
  var keys = Object.keys(slots).map(function (k) { return [slots[k], k]; }).sort(function (a, b) { return a[0] - b[0]; });
  if (!keys.length) return;
  var s = slots[current()], n = s === undefined ? 0 : (s + d + keys.length) % keys.length;
  setCell(keys[n][1]); paint();
}

// ---- guesses: tooltip on hover, strip of columns on click ----
function guesses(i, into, nextCh) {
  for (var r = 0; r < K; r++) {
    var q = topP[i * K + r], g = D.vocab[topIds[i * K + r]];
    var row = el("div", "g" + (g === nextCh ? " hit" : ""));
    row.style.backgroundColor = "rgba(220,40,40," + (q / 255).toFixed(3) + ")";
    row.appendChild(el("span", "", vis(g)));
    if (into === tip) row.appendChild(el("span", "", pct(q)));
    else row.title = pct(q);
    into.appendChild(row);
  }
}
function showTip(i) {
  tip.textContent = "";
  var slot = mode.value === "cell" ? slots[current()] : undefined;
  tip.appendChild(el("div", "hdr", "#" + i + " " + JSON.stringify(chars[i]) + "  loss " + D.loss[i].toFixed(2) +
    (slot !== undefined ? "  cell " + value(slot, i).toFixed(3) : "")));
  tip.appendChild(el("div", "hdr", "next: " + (i + 1 < T ? JSON.stringify(chars[i + 1]) : "(end)")));
  guesses(i, tip, chars[i + 1]);
  var r = spans[i].getBoundingClientRect();
  tip.style.left = (window.scrollX + r.left) + "px"; tip.style.top = (window.scrollY + r.bottom + 4) + "px";
  tip.hidden = false;
}
var stripPos = -1, selSpan = null;
function openStrip(i) {
  stripPos = i; strip.textContent = ""; strip.hidden = false;
  strip.appendChild(el("div", "note", "Under each character: the model's 5 likeliest next characters, " +
    "redder = more probable; underlined = the character that came. Click the text to move; Esc closes."));
  var lo = Math.max(0, i - 30), hi = Math.min(T, i + 31);
  for (var j = lo; j < hi; j++) {
    var col = el("div", "col" + (j === i ? " here" : "")), c = el("div", "c" + (chars[j] === "\n" ? " nl" : ""), vis(chars[j]));
    c.style.backgroundColor = colours[j] || "";
    col.appendChild(c); guesses(j, col, chars[j + 1]); strip.appendChild(col);
  }
  if (selSpan) selSpan.classList.remove("sel");
  selSpan = spans[i]; selSpan.classList.add("sel");
}
box.addEventListener("mouseover", function (e) { if (e.target._i !== undefined) showTip(e.target._i); });
box.addEventListener("mouseout", function () { tip.hidden = true; });
box.addEventListener("click", function (e) { if (e.target._i !== undefined) { openStrip(e.target._i); paint(); } });
document.addEventListener("keydown", function (e) {
  if (e.key === "Escape") { strip.hidden = true; if (selSpan) selSpan.classList.remove("sel"); selSpan = null; paint(); }
});
[mode, layerSel, kindSel, unit].forEach(function (c) { c.addEventListener("change", paint); });
prev.addEventListener("click", function () { step(-1); });
next.addEventListener("click", function () { step(1); });
pinSel.addEventListener("change", function () { if (pinSel.value) { setCell(pinSel.value); paint(); } });

function fromHash() {
  var args = {};
  location.hash.slice(1).split("&").forEach(function (kv) {
    var p = kv.split("="); if (p.length === 2) args[p[0]] = decodeURIComponent(p[1]);
  });
  if (args.cell) setCell(args.cell);
  else if (args.mode) mode.value = args.mode;
  var pos = parseInt(args.pos, 10);
  if (pos >= 0 && pos < T) openStrip(pos);
  paint();
}
window.addEventListener("hashchange", fromHash);
fromHash();
body.setAttribute("data-render-ms", (performance.now() - t0).toFixed(1));
body.setAttribute("data-load-ms", performance.now().toFixed(1));
body.setAttribute("data-ready", "1");
})();
