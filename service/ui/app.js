// The draw-a-digit page: pointer drawing on a canvas, uploads and drops, and the service's
// answer (/predict), the 28x28 image it saw (/preprocess) and its model (/model). With a model
// that has a digit detector, the answer also says whether the image looks like a digit at all.
// With "Several digits" ticked, the pad is three digits wide and the page asks /read_number:
// the number read, and the drawing or photo with each digit's box drawn on it.
// Plain browser JavaScript, no dependencies, so the page works offline from `bentoml serve`.
"use strict";

// index.html pins <base href="/ui/">, so the API is one level up, at the root.
const API = new URL("../", document.baseURI);
const LIVE_DELAY_MS = 150; // debounce while drawing: wait for a short pause in the stroke...
const LIVE_MAX_WAIT_MS = 500; // ...but refresh at least this often during a long stroke
const PAD_BACKGROUND = "#000"; // white ink on black, MNIST's polarity
const PAD_INK = "#fff";
const PAD_SIDE = 280; // one digit's pad; "Several digits" makes it three times as wide
const BOX_INK = "#f59e0b"; // each digit's box on the number read

const $ = (id) => document.getElementById(id);
const pad = $("pad");
const ctx = pad.getContext("2d");
const result = $("result");

let drawing = false; // a pointer is down on the pad
let last = null; // previous point of the current stroke, in canvas pixels
let upload = null; // the uploaded File while it is what is shown, else null (the pad is)
let inflight = null; // AbortController of the request whose answer we wait for
let seq = 0; // request counter: only the newest request's answer is shown
let liveTimer = null;
let liveSince = 0;
let seenUrl = null;
let photoUrl = null;
let regionUrl = null; // the upload with the region the service read drawn on it
let digitThreshold = null; // the digit threshold in force (GET /model), null: no detector
let numberMode = false; // "Several digits": /read_number instead of /predict

// --- API keys: with MNIST_API_KEYS set, every call needs one (service/server/security.py) ---------

const KEY_STORE = "mnist-api-key";
let apiKey = readKey(); // sent as X-API-Key once the user gives one; kept for this tab only

function readKey() {
  try {
    return sessionStorage.getItem(KEY_STORE) || "";
  } catch {
    return ""; // storage disabled: the key lives as long as the page
  }
}

function keyHeaders() {
  return apiKey ? { "X-API-Key": apiKey } : {};
}

function askForKey(message) {
  showError(message);
  $("key-form").hidden = false;
  $("api-key").focus();
}

$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  apiKey = $("api-key").value.trim();
  try {
    sessionStorage.setItem(KEY_STORE, apiKey);
  } catch {
    // storage disabled: keep it in memory
  }
  $("key-form").hidden = true;
  $("error").hidden = true;
  loadModel();
  classify();
});

// --- drawing -------------------------------------------------------------------------------

function resetPad() {
  ctx.fillStyle = PAD_BACKGROUND;
  ctx.fillRect(0, 0, pad.width, pad.height);
  // A 280 px high pad gives a 20 px pen: about 2 px at 28x28, MNIST's stroke width.
  ctx.lineWidth = pad.height / 14;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.strokeStyle = PAD_INK;
  ctx.fillStyle = PAD_INK;
}

function toPad(event) {
  const box = pad.getBoundingClientRect();
  return {
    x: ((event.clientX - box.left) * pad.width) / box.width,
    y: ((event.clientY - box.top) * pad.height) / box.height,
  };
}

function dot(p) {
  ctx.beginPath();
  ctx.arc(p.x, p.y, ctx.lineWidth / 2, 0, 2 * Math.PI);
  ctx.fill();
}

function segment(from, to) {
  ctx.beginPath();
  ctx.moveTo(from.x, from.y);
  ctx.lineTo(to.x, to.y);
  ctx.stroke();
}

pad.addEventListener("pointerdown", (event) => {
  if (event.pointerType === "mouse" && event.button !== 0) return;
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  if (upload) {
    // Drawing after an upload starts a fresh drawing.
    showPhoto(null);
    resetPad();
  }
  drawing = true;
  last = toPad(event);
  dot(last);
  scheduleLive();
});

pad.addEventListener("pointermove", (event) => {
  if (!drawing) return;
  // Coalesced events keep fast strokes smooth when the browser batches pointer moves.
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
  for (const e of events.length ? events : [event]) {
    const p = toPad(e);
    segment(last, p);
    last = p;
  }
  scheduleLive();
});

function endStroke() {
  if (!drawing) return;
  drawing = false;
  last = null;
  classifyNow();
}
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);

function scheduleLive() {
  const now = performance.now();
  if (liveTimer === null) liveSince = now;
  clearTimeout(liveTimer);
  const wait = Math.max(0, Math.min(LIVE_DELAY_MS, liveSince + LIVE_MAX_WAIT_MS - now));
  liveTimer = setTimeout(() => {
    liveTimer = null;
    classify();
  }, wait);
}

function cancelLive() {
  clearTimeout(liveTimer);
  liveTimer = null;
}

function classifyNow() {
  cancelLive();
  classify();
}

// --- uploads and drops ---------------------------------------------------------------------

function showPhoto(file) {
  const photo = $("photo");
  if (photoUrl) URL.revokeObjectURL(photoUrl);
  photoUrl = file ? URL.createObjectURL(file) : null;
  upload = file;
  photo.hidden = !file;
  if (file) photo.src = photoUrl;
  else photo.removeAttribute("src");
}

function useFile(file) {
  if (!file) return;
  cancelLive();
  resetPad();
  showPhoto(file); // the service judges the file: a non-image gets its 4xx, shown as an error
  classify();
}

$("photo").addEventListener("error", () => {
  $("photo").hidden = true; // not an image the browser can show; the service will say why
});

$("upload").addEventListener("change", (event) => {
  useFile(event.target.files[0]);
  event.target.value = ""; // choosing the same file again still triggers a change
});

// Drops anywhere on the page count, so that a near miss never navigates away to the file.
const dropzone = $("dropzone");
let dragDepth = 0;
document.addEventListener("dragenter", (event) => {
  event.preventDefault();
  dragDepth += 1;
  dropzone.classList.add("dragging");
});
document.addEventListener("dragover", (event) => event.preventDefault());
document.addEventListener("dragleave", () => {
  dragDepth = Math.max(0, dragDepth - 1);
  if (dragDepth === 0) dropzone.classList.remove("dragging");
});
document.addEventListener("drop", (event) => {
  event.preventDefault();
  dragDepth = 0;
  dropzone.classList.remove("dragging");
  useFile(event.dataTransfer && event.dataTransfer.files[0]);
});

// --- talking to the service ----------------------------------------------------------------

function padPng() {
  return new Promise((resolve, reject) => {
    pad.toBlob((blob) => (blob ? resolve(blob) : reject(new Error("could not encode the drawing"))), "image/png");
  });
}

async function post(path, blob, name, signal) {
  const body = new FormData();
  body.append("image", blob, name);
  let response;
  try {
    response = await fetch(new URL(path, API), { method: "POST", body, signal, headers: keyHeaders() });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new Error(`Could not reach the service at ${API.origin}: ${err.message}. Is it running?`);
  }
  if (!response.ok) {
    const failure = new Error();
    failure.needsKey = response.status === 401;
    failure.message = await describeFailure(response, path, failure);
    throw failure;
  }
  return response;
}

// The 422 of a server that refuses non-digits (MNIST_REJECT_NON_DIGITS): service/errors.py words it.
const NOT_A_DIGIT = /does not look like one handwritten digit/;

async function describeFailure(response, path, failure) {
  const status = `${response.status} ${response.statusText}`.trim();
  const text = await response.text();
  let body = null;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: fall through and show the start of the text
  }
  if (response.status < 500 && body && typeof body.error === "string") {
    if (response.status === 422 && NOT_A_DIGIT.test(body.error)) failure.notDigit = body.error;
    const accepted = body.accepted ? `\nAccepted: ${body.accepted}` : "";
    return `The service could not use this image: ${body.error}${accepted}`;
  }
  // A 5xx is the service's own failure, not the image's: say so, with whatever it told us.
  const said = body && typeof body.error === "string" ? body.error : text;
  const detail = (said || "no details").replace(/<[^>]*>/g, " ").replace(/\s+/g, " ").trim();
  return `The service failed on /${path} (HTTP ${status}): ${detail.slice(0, 300)}`;
}

async function classify() {
  const mine = ++seq;
  if (inflight) inflight.abort();
  const controller = new AbortController();
  inflight = controller;
  result.dataset.state = "busy";
  result.setAttribute("aria-busy", "true");
  try {
    const [blob, name] = upload ? [upload, upload.name || "upload"] : [await padPng(), "drawing.png"];
    const started = performance.now();
    if (numberMode) {
      const response = await post("read_number", blob, name, controller.signal);
      const answer = await response.json();
      const rttMs = performance.now() - started;
      const picture = await createImageBitmap(blob).catch(() => null);
      if (mine === seq) showNumber(answer, picture, rttMs);
      return;
    }
    const predicting = post("predict", blob, name, controller.signal).then(async (r) => {
      const prediction = await r.json();
      return { prediction, rttMs: performance.now() - started };
    });
    const preprocessing = post("preprocess", blob, name, controller.signal).then((r) => r.blob());
    // For a photo, also where in it the service found the digit (/preprocess?show=region); a
    // drawing is the digit already. Optional: the answer stands without it.
    const locating = upload
      ? post("preprocess?show=region", blob, name, controller.signal).then((r) => r.blob()).catch(() => null)
      : Promise.resolve(null);
    const [{ prediction, rttMs }, seen, region] = await Promise.all([predicting, preprocessing, locating]);
    if (mine === seq) {
      showPrediction(prediction, seen, rttMs);
      setRegion(region);
    }
  } catch (err) {
    if (err.name === "AbortError" || mine !== seq) return; // a newer request replaced this one
    controller.abort(); // stop the sibling request too
    if (err.notDigit) showRefusedNonDigit(err.notDigit);
    else if (err.needsKey) askForKey(apiKey ? "That API key was not accepted. " + err.message : err.message);
    else showError(err.message || String(err));
  } finally {
    if (mine === seq) {
      inflight = null;
      result.setAttribute("aria-busy", "false");
    }
  }
}

async function loadModel() {
  const out = $("model-version");
  try {
    const response = await fetch(new URL("model", API), { headers: keyHeaders() });
    if (response.status === 401) throw new Error("the service asks for an API key");
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const model = await response.json();
    const threshold = model.runtime && model.runtime.digit_threshold;
    digitThreshold = typeof threshold === "number" ? threshold : null;
    const accuracy = typeof model.test_accuracy === "number"
      ? ` (test accuracy ${(model.test_accuracy * 100).toFixed(2)}%)` : "";
    if (out.textContent === "–" || out.textContent.startsWith("unknown")) out.textContent = `${model.version}${accuracy}`;
  } catch (err) {
    out.textContent = `unknown (GET /model failed: ${err.message})`;
  }
}

// --- showing answers -----------------------------------------------------------------------

function buildBars() {
  const list = $("bars");
  for (let digit = 0; digit < 10; digit += 1) {
    const row = document.createElement("li");
    row.dataset.digit = String(digit);
    row.innerHTML =
      `<span class="d">${digit}</span>` +
      '<span class="track" aria-hidden="true"><span class="fill"></span></span>' +
      '<span class="p">–</span>';
    list.append(row);
  }
}

function setBars(probabilities) {
  const best = probabilities ? probabilities.indexOf(Math.max(...probabilities)) : -1;
  for (const row of $("bars").children) {
    const digit = Number(row.dataset.digit);
    const p = probabilities ? probabilities[digit] : 0;
    row.querySelector(".fill").style.width = `${(p * 100).toFixed(1)}%`;
    row.querySelector(".p").textContent = probabilities ? `${(p * 100).toFixed(1)}%` : "–";
    row.classList.toggle("best", digit === best);
  }
}

function setRegion(blob) {
  if (regionUrl) URL.revokeObjectURL(regionUrl);
  regionUrl = blob ? URL.createObjectURL(blob) : null;
  $("region-figure").hidden = !regionUrl;
  if (regionUrl) $("region").src = regionUrl;
  else $("region").removeAttribute("src");
}

function setSeen(blob) {
  if (seenUrl) URL.revokeObjectURL(seenUrl);
  seenUrl = blob ? URL.createObjectURL(blob) : null;
  if (seenUrl) $("seen").src = seenUrl;
  else $("seen").removeAttribute("src");
}

// Two decimals, or as many as it takes to tell a score from the threshold it missed.
function scoreText(score, threshold) {
  let places = 2;
  while (threshold !== null && places < 6 && score.toFixed(places) === threshold.toFixed(places)) places += 1;
  return score.toFixed(places);
}

function showDigitVerdict(prediction) {
  const score = prediction.digit_score;
  const notDigit = prediction.is_digit === false;
  $("not-digit").hidden = !notDigit;
  if (typeof score !== "number") {
    $("digit-score").textContent = "not measured (this model has no digit detector)";
    delete result.dataset.digit;
    return;
  }
  const shown = scoreText(score, digitThreshold);
  $("digit-score").textContent = `${shown} (${notDigit ? "not a digit" : "looks like a digit"})`;
  result.dataset.digit = notDigit ? "no" : "yes";
  if (notDigit) {
    const needs = digitThreshold === null ? "" : `, below the ${scoreText(digitThreshold, score)} a digit needs`;
    $("not-digit-detail").textContent =
      `Digit score ${shown}${needs}. The model's best guess is shown below anyway.`;
  }
}

function showPrediction(prediction, seen, rttMs) {
  $("error").hidden = true;
  $("key-form").hidden = true;
  $("placeholder").hidden = true;
  showDigitVerdict(prediction);
  $("digit").textContent = String(prediction.digit);
  $("confidence").textContent = `${(prediction.confidence * 100).toFixed(1)}% confident`;
  setBars(prediction.probabilities);
  setSeen(seen);
  $("model-version").textContent = prediction.model_version;
  $("rtt").textContent = `${rttMs.toFixed(0)} ms (POST /predict)`;
  result.dataset.source = upload ? "upload" : "drawing";
  result.dataset.state = "done";
}

function showNumber(answer, picture, rttMs) {
  $("error").hidden = true;
  $("key-form").hidden = true;
  $("placeholder").hidden = true;
  $("not-digit").hidden = true;
  $("number-answer").hidden = false;
  $("number").textContent = answer.number;
  $("number-confidence").textContent = `${(answer.confidence * 100).toFixed(1)}% sure of every digit`;
  drawBoxes(answer.digits, picture);
  const list = $("number-digits");
  list.replaceChildren();
  for (const d of answer.digits) {
    const item = document.createElement("li");
    item.dataset.digit = String(d.digit);
    item.dataset.isDigit = String(d.is_digit !== false);
    item.dataset.box = d.box.join(",");
    const what = d.is_digit === false ? " (not a digit)" : "";
    item.textContent = `${d.digit}: ${(d.confidence * 100).toFixed(1)}%${what}`;
    list.append(item);
  }
  $("model-version").textContent = answer.model_version;
  $("digit-score").textContent = "–";
  $("rtt").textContent = `${rttMs.toFixed(0)} ms (POST /read_number)`;
  result.dataset.source = upload ? "upload" : "drawing";
  result.dataset.state = "done";
}

// The drawing or photo as sent, each digit's box (upload pixels) drawn on it with its digit.
function drawBoxes(digits, picture) {
  const view = $("number-view");
  const vctx = view.getContext("2d");
  view.width = picture ? picture.width : pad.width;
  view.height = picture ? picture.height : pad.height;
  if (picture) vctx.drawImage(picture, 0, 0);
  const line = Math.max(2, Math.round(view.height / 100));
  vctx.lineWidth = line;
  vctx.strokeStyle = BOX_INK;
  vctx.fillStyle = BOX_INK;
  vctx.font = `bold ${Math.max(12, Math.round(view.height / 12))}px system-ui, sans-serif`;
  vctx.textBaseline = "bottom";
  for (const d of digits) {
    const [x, y, w, h] = d.box;
    vctx.strokeRect(x - line, y - line, w + 2 * line, h + 2 * line);
    vctx.fillText(d.is_digit === false ? "?" : String(d.digit), x, Math.max(y - line, 14));
  }
}

function clearNumber() {
  $("number-answer").hidden = true;
  $("number").textContent = "–";
  $("number-confidence").textContent = "";
  $("number-digits").replaceChildren();
  const view = $("number-view");
  view.width = 1;
  view.height = 1;
}

function setNumberMode(on) {
  numberMode = on;
  document.querySelector("main").classList.toggle("numbers", on);
  if (on) result.dataset.mode = "number";
  else delete result.dataset.mode;
  pad.width = on ? 3 * PAD_SIDE : PAD_SIDE;
  pad.height = PAD_SIDE;
  clearAll();
}

function showEmpty() {
  clearNumber();
  $("not-digit").hidden = true;
  $("digit-score").textContent = "–";
  delete result.dataset.digit;
  $("digit").textContent = "–";
  $("confidence").textContent = "";
  setBars(null);
  setSeen(null);
  setRegion(null);
  $("rtt").textContent = "–";
  $("placeholder").hidden = false;
  delete result.dataset.source;
}

function showError(message) {
  showEmpty();
  $("placeholder").hidden = true;
  const box = $("error");
  box.textContent = message;
  box.hidden = false;
  result.dataset.state = "error";
}

// This server refuses non-digits (422): say so as plainly as the flag, with the service's words.
function showRefusedNonDigit(error) {
  showEmpty();
  $("placeholder").hidden = true;
  $("error").hidden = true;
  $("not-digit-detail").textContent = `The service refused it: ${error}.`;
  $("not-digit").hidden = false;
  result.dataset.digit = "no";
  result.dataset.state = "error";
}

function clearAll() {
  cancelLive();
  seq += 1; // answers still on their way are for the old drawing
  if (inflight) inflight.abort();
  inflight = null;
  showPhoto(null);
  resetPad();
  showEmpty();
  $("error").hidden = true;
  $("key-form").hidden = true;
  result.setAttribute("aria-busy", "false");
  result.dataset.state = "empty";
}

$("clear").addEventListener("click", clearAll);
$("predict").addEventListener("click", classifyNow);
$("number-mode").addEventListener("change", (event) => setNumberMode(event.target.checked));

$("number-mode").checked = false; // a reload starts with one digit, whatever the browser kept
resetPad();
buildBars();
loadModel();
