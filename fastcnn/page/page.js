// fastcnn's draw-a-digit page: pointer events draw on the canvas; on each lifted stroke the
// canvas goes to POST /predict as a PNG, and the answer fills the digit, the bars, the 28x28
// image the network saw and the first convolution's maps.
"use strict";

const pad = document.getElementById("pad");
const ink = pad.getContext("2d");
const LINE_WIDTH = 18;  // of 280 px: MNIST's strokes are ~2 px of 20 once scaled into the box

// What the page did, for people and for the browser test: sequence numbers of sent and shown
// answers, the PNG of the last request, the last answer, the round trip in ms.
const state = {
  sent: 0, shown: 0, busy: false, dirty: false, generation: 0,
  lastPng: null, lastAnswer: null, roundTrip: null,
};
window.fastcnn = state;
state.resend = () => ask();  // the same drawing again (the browser test times an idle page)
// The last posted PNG as a data: URL (the test decodes it to run fastcnn predict on it).
state.lastPngDataUrl = () => new Promise((resolve) => {
  if (state.lastPng === null) { resolve(null); return; }
  const reader = new FileReader();
  reader.onload = () => resolve(reader.result);
  reader.readAsDataURL(state.lastPng);
});

function blank() {
  ink.fillStyle = "#fff";
  ink.fillRect(0, 0, pad.width, pad.height);
  ink.lineWidth = LINE_WIDTH;
  ink.lineCap = "round";
  ink.lineJoin = "round";
  ink.strokeStyle = "#000";
  ink.fillStyle = "#000";
}

const strokes = new Map();  // pointerId -> last point

function point(event) {
  const box = pad.getBoundingClientRect();
  return [
    (event.clientX - box.left) * pad.width / box.width,
    (event.clientY - box.top) * pad.height / box.height,
  ];
}

pad.addEventListener("pointerdown", (event) => {
  if (event.pointerType === "mouse" && event.button !== 0) return;
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  const [x, y] = point(event);
  ink.beginPath();
  ink.arc(x, y, LINE_WIDTH / 2, 0, 2 * Math.PI);
  ink.fill();
  strokes.set(event.pointerId, [x, y]);
  document.body.dataset.state = "drawing";
});

pad.addEventListener("pointermove", (event) => {
  let last = strokes.get(event.pointerId);
  if (last === undefined) return;
  event.preventDefault();
  // Coalesced events: a fast pen or finger gives several points per frame; draw them all.
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
  for (const e of events.length ? events : [event]) {
    const next = point(e);
    ink.beginPath();
    ink.moveTo(last[0], last[1]);
    ink.lineTo(next[0], next[1]);
    ink.stroke();
    last = next;
  }
  strokes.set(event.pointerId, last);
});

function lift(event) {
  if (!strokes.delete(event.pointerId)) return;
  if (strokes.size === 0) ask();
}
pad.addEventListener("pointerup", lift);
pad.addEventListener("pointercancel", lift);

// One request at a time: strokes lifted while one is on its way are sent together after it.
function ask() {
  if (state.busy) { state.dirty = true; return; }
  send();
}

// The canvas as a PNG Blob. toDataURL encodes at once; Chromium's toBlob waits for an idle
// moment, up to a second while the pointer keeps the page busy (measured: 1 s round trips).
function pngOf(canvas) {
  const bytes = atob(canvas.toDataURL("image/png").split(",")[1]);
  const array = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) array[i] = bytes.charCodeAt(i);
  return new Blob([array], { type: "image/png" });
}

async function send() {
  state.busy = true;
  state.dirty = false;
  document.body.dataset.state = "asking";
  const seq = ++state.sent;
  const generation = state.generation;
  const started = performance.now();
  try {
    const png = pngOf(pad);
    state.lastPng = png;
    const response = await fetch("predict", {
      method: "POST", headers: { "Content-Type": "image/png" }, body: png,
    });
    const answer = await response.json();
    if (generation === state.generation) {
      state.roundTrip = performance.now() - started;
      state.lastAnswer = answer;
      if (response.ok) show(answer); else showError(answer.error || response.statusText);
    }
  } catch (error) {
    showError(`no answer from the server (${error})`);
  }
  state.shown = seq;
  state.busy = false;
  if (state.dirty) send();
  else if (strokes.size === 0) document.body.dataset.state = "idle";
}

const digitOut = document.getElementById("digit");
const message = document.getElementById("message");
const timing = document.getElementById("timing");
const bars = document.getElementById("bars");
const seen = document.getElementById("seen");
const maps = document.getElementById("maps");

const fills = [];
for (let d = 0; d < 10; d++) {
  const bar = document.createElement("div");
  bar.className = "bar";
  const fill = document.createElement("div");
  fill.className = "fill";
  const label = document.createElement("span");
  label.textContent = String(d);
  bar.append(fill, label);
  bars.append(bar);
  fills.push(fill);
}

function show(answer) {
  digitOut.textContent = String(answer.digit);
  digitOut.dataset.digit = String(answer.digit);
  message.textContent = `confidence ${answer.confidence.toFixed(2)}`;
  timing.textContent = `answered in ${state.roundTrip.toFixed(0)} ms ` +
    `(server ${answer.milliseconds.toFixed(1)} ms)`;
  answer.confidences.forEach((value, d) => {
    fills[d].style.height = `${Math.max(0, Math.min(1, value)) * 100}%`;
    fills[d].parentElement.classList.toggle("best", d === answer.digit);
    fills[d].title = value.toFixed(4);
  });
  paint(seen, answer.image, 0, 1);
  maps.replaceChildren();
  for (const map of answer.maps || []) {
    const canvas = document.createElement("canvas");
    canvas.width = map[0].length;
    canvas.height = map.length;
    const flat = map.flat();
    paint(canvas, map, Math.min(...flat), Math.max(...flat));
    maps.append(canvas);
  }
}

function showError(text) {
  digitOut.textContent = "?";
  delete digitOut.dataset.digit;
  message.textContent = text;
  timing.textContent = "";
  fills.forEach((fill) => { fill.style.height = "0"; fill.parentElement.classList.remove("best"); });
  seen.getContext("2d").clearRect(0, 0, seen.width, seen.height);
  maps.replaceChildren();
}

// A 2-D array as grey levels, low..high -> black..white.
function paint(canvas, rows, low, high) {
  const context = canvas.getContext("2d");
  const image = context.createImageData(canvas.width, canvas.height);
  const scale = high > low ? 255 / (high - low) : 0;
  rows.forEach((row, i) => row.forEach((value, j) => {
    const k = 4 * (i * canvas.width + j);
    const grey = Math.round((value - low) * scale);
    image.data[k] = image.data[k + 1] = image.data[k + 2] = grey;
    image.data[k + 3] = 255;
  }));
  context.putImageData(image, 0, 0);
}

document.getElementById("clear").addEventListener("click", () => {
  state.generation++;  // an answer still on its way is for the old drawing: drop it
  state.dirty = false;
  strokes.clear();
  blank();
  showError("draw a digit");
  if (!state.busy) document.body.dataset.state = "idle";
});

blank();
