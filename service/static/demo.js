// The demo page: a photo or webcam frames go to POST /v1/predict; faces are drawn on a canvas and
// each face's seven probabilities shown as bars. Only the public API is used.
"use strict";

const COLOURS = {
  angry: "#dc2828", disgust: "#288c28", fear: "#963ca0", happy: "#ffc800",
  sad: "#1e78c8", surprise: "#ff8c00", neutral: "#aaaaaa",
};
const EMOTIONS = Object.keys(COLOURS);

const $ = (id) => document.getElementById(id);
const view = $("view");
const ctx = view.getContext("2d");
let webcam = null; // {stream, timer, busy}

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

async function predict(blob, name) {
  const form = new FormData();
  form.append("files", blob, name);
  const headers = {};
  const key = $("api-key").value.trim();
  if (key) headers["X-API-Key"] = key;
  const started = performance.now();
  const response = await fetch("/v1/predict", { method: "POST", body: form, headers });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error ? `${body.error.code}: ${body.error.message}` : response.statusText);
  return { result: body.images[0], ms: performance.now() - started };
}

function drawFaces(source, faces) {
  view.width = source.videoWidth || source.naturalWidth || source.width;
  view.height = source.videoHeight || source.naturalHeight || source.height;
  ctx.drawImage(source, 0, 0, view.width, view.height);
  const line = Math.max(2, Math.round(Math.max(view.width, view.height) / 300));
  ctx.font = `bold ${Math.max(12, line * 6)}px system-ui, sans-serif`;
  faces.forEach((face, index) => {
    const colour = COLOURS[face.dominant_emotion];
    const { x, y, width, height } = face.box;
    ctx.lineWidth = line;
    ctx.strokeStyle = colour;
    ctx.strokeRect(x, y, width, height);
    ctx.fillStyle = colour;
    Object.values(face.landmarks).forEach((p) => { ctx.beginPath(); ctx.arc(p.x, p.y, line + 1, 0, 2 * Math.PI); ctx.fill(); });
    const label = `${index + 1}. ${face.dominant_emotion} ${Math.round(face.emotions[face.dominant_emotion] * 100)}%`;
    const textHeight = line * 6 + 6;
    const top = y > textHeight ? y - textHeight : y + height;
    ctx.fillRect(x, top, ctx.measureText(label).width + 8, textHeight);
    ctx.fillStyle = "#000";
    ctx.fillText(label, x + 4, top + textHeight - 5);
  });
}

function showBars(faces) {
  const list = $("faces");
  list.replaceChildren();
  faces.forEach((face, index) => {
    const item = document.createElement("li");
    item.className = "face";
    const title = document.createElement("h2");
    title.textContent = `Face ${index + 1}: ${face.dominant_emotion}`;
    item.append(title);
    EMOTIONS.forEach((emotion) => {
      const value = face.emotions[emotion];
      const row = document.createElement("div");
      row.className = "bar";
      row.dataset.emotion = emotion;
      row.innerHTML = `<span></span><span class="track"><span class="fill"></span></span><span class="value"></span>`;
      row.children[0].textContent = emotion;
      row.querySelector(".fill").style.width = `${(value * 100).toFixed(1)}%`;
      row.querySelector(".fill").style.background = COLOURS[emotion];
      row.children[2].textContent = `${(value * 100).toFixed(1)}%`;
      item.append(row);
    });
    list.append(item);
  });
}

async function analyseFile(file) {
  if (!file) return;
  setStatus(`Analysing ${file.name}…`);
  try {
    const image = await createImageBitmap(file, { imageOrientation: "from-image" });
    const { result, ms } = await predict(file, file.name);
    drawFaces(image, result.faces);
    showBars(result.faces);
    setStatus(`${result.faces.length} face(s) found in ${Math.round(ms)} ms.`);
  } catch (error) {
    setStatus(error.message, true);
  }
}

function frameBlob(video) {
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.85));
}

async function sendFrame() {
  if (!webcam || webcam.busy || !$("video").videoWidth) return; // skip a tick rather than queue frames
  webcam.busy = true;
  try {
    const video = $("video");
    const { result, ms } = await predict(await frameBlob(video), "frame.jpg");
    drawFaces(video, result.faces);
    showBars(result.faces);
    $("latency").textContent = `round trip: ${Math.round(ms)} ms`;
    setStatus(`${result.faces.length} face(s)`);
  } catch (error) {
    setStatus(error.message, true);
  } finally {
    if (webcam) webcam.busy = false;
  }
}

async function startWebcam() {
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 } });
    const video = $("video");
    video.srcObject = stream;
    await video.play();
    const fps = Math.min(10, Math.max(1, Number($("webcam-fps").value) || 4));
    webcam = { stream, busy: false, timer: setInterval(sendFrame, 1000 / fps) };
    $("webcam-start").disabled = true;
    $("webcam-stop").disabled = false;
    setStatus("Camera on.");
  } catch (error) {
    setStatus(`Camera unavailable: ${error.message}`, true);
  }
}

function stopWebcam() {
  if (!webcam) return;
  clearInterval(webcam.timer);
  webcam.stream.getTracks().forEach((track) => track.stop());
  webcam = null;
  $("webcam-start").disabled = false;
  $("webcam-stop").disabled = true;
  setStatus("Camera off.");
}

function selectMode(mode) {
  $("mode-photo").classList.toggle("active", mode === "photo");
  $("mode-webcam").classList.toggle("active", mode === "webcam");
  $("photo-panel").hidden = mode !== "photo";
  $("webcam-panel").hidden = mode !== "webcam";
  if (mode === "photo") stopWebcam();
}

$("file-input").addEventListener("change", (event) => analyseFile(event.target.files[0]));
const drop = $("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  analyseFile(event.dataTransfer.files[0]);
});
$("mode-photo").addEventListener("click", () => selectMode("photo"));
$("mode-webcam").addEventListener("click", () => selectMode("webcam"));
$("webcam-start").addEventListener("click", startWebcam);
$("webcam-stop").addEventListener("click", stopWebcam);
