// The demo page. Photo: POST /v1/predict. Video: POST /v1/video, then the clip plays with each
// person boxed from the returned timeline and their emotions charted below. Webcam: frames go over
// the /v1/stream WebSocket and the tracked, smoothed answers are drawn as they come. Only the
// public API is used.
"use strict";

const EMOTIONS = Object.keys(COLOURS);
// One colour per person (track), so a box keeps its colour while its label changes.
const PERSON_COLOURS = ["#2f6fde", "#e0457b", "#1aa37a", "#f08c00", "#7b5cd6", "#0f9bb5", "#b5651d", "#5f7d1a"];

const view = $("view");
const ctx = view.getContext("2d");
let webcam = null; // {stream, socket, timer, answered, started}
let clipResult = null;

async function postFile(path, field, blob, name) {
  const form = new FormData();
  form.append(field, blob, name);
  const started = performance.now();
  const response = await fetch(path, { method: "POST", body: form, headers: apiHeaders() });
  const body = await answerOf(response);
  return { body, ms: performance.now() - started };
}

const personColour = (face) => PERSON_COLOURS[(face.track_id - 1) % PERSON_COLOURS.length];

// Boxes, landmarks and a label per face on a 2D context whose pixels are the image's pixels.
function drawBoxes(context, width, height, faces, colourOf, labelOf) {
  const line = Math.max(2, Math.round(Math.max(width, height) / 300));
  context.font = `bold ${Math.max(12, line * 6)}px system-ui, sans-serif`;
  faces.forEach((face, index) => {
    const colour = colourOf(face);
    const { x, y, width: w, height: h } = face.box;
    context.lineWidth = line;
    context.strokeStyle = colour;
    context.strokeRect(x, y, w, h);
    context.fillStyle = colour;
    Object.values(face.landmarks).forEach((p) => { context.beginPath(); context.arc(p.x, p.y, line + 1, 0, 2 * Math.PI); context.fill(); });
    const label = labelOf(face, index);
    const textHeight = line * 6 + 6;
    const top = y > textHeight ? y - textHeight : y + h;
    context.fillRect(x, top, context.measureText(label).width + 8, textHeight);
    context.fillStyle = "#000";
    context.fillText(label, x + 4, top + textHeight - 5);
  });
}

const percent = (face) => Math.round(face.emotions[face.dominant_emotion] * 100);

function drawFaces(source, faces, tracked = false) {
  view.width = source.videoWidth || source.naturalWidth || source.width;
  view.height = source.videoHeight || source.naturalHeight || source.height;
  ctx.drawImage(source, 0, 0, view.width, view.height);
  const colourOf = tracked ? personColour : (face) => COLOURS[face.dominant_emotion];
  const labelOf = tracked
    ? (face) => `#${face.track_id} ${face.dominant_emotion} ${percent(face)}%`
    : (face, index) => `${index + 1}. ${face.dominant_emotion} ${percent(face)}%`;
  drawBoxes(ctx, view.width, view.height, faces, colourOf, labelOf);
}

function showBars(faces, tracked = false) {
  const list = $("faces");
  list.replaceChildren();
  faces.forEach((face, index) => {
    const item = document.createElement("li");
    item.className = "face";
    const title = document.createElement("h2");
    title.textContent = tracked ? `Person #${face.track_id}: ${face.dominant_emotion}` : `Face ${index + 1}: ${face.dominant_emotion}`;
    if (tracked) title.style.color = personColour(face);
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
    const { body, ms } = await postFile("/v1/predict", "files", file, file.name);
    const result = body.images[0];
    drawFaces(image, result.faces);
    showBars(result.faces);
    setStatus(`${result.faces.length} face(s) found in ${Math.round(ms)} ms.`);
  } catch (error) {
    setStatus(error.message, true);
  }
}

// --- Video: analyse once, then play with the timeline drawn over the clip ---------------------

async function analyseClip(file) {
  if (!file) return;
  setStatus(`Analysing ${file.name}…`);
  $("tracks").replaceChildren();
  clipResult = null;
  try {
    const { body, ms } = await postFile("/v1/video", "file", file, file.name);
    clipResult = body;
    const clip = $("clip");
    clip.src = URL.createObjectURL(file);
    document.querySelector(".player").hidden = false;
    body.tracks.forEach((track) => $("tracks").append(trackChart(track, body.video.duration_ms)));
    const people = body.summary.people;
    setStatus(`${people} ${people === 1 ? "person" : "people"} in ${body.video.frames_analysed} frames, analysed in ${Math.round(ms)} ms.`);
    clip.play().catch(() => {}); // autoplay may be refused; the controls remain
  } catch (error) {
    setStatus(error.message, true);
  }
}

// Each track's timeline entry nearest to `ms`, if it is within NEAREST_MS (between two analysed frames).
const NEAREST_MS = 400;
function facesAt(result, ms) {
  const faces = [];
  result.tracks.forEach((track) => {
    let best = null;
    for (const entry of track.timeline) {
      if (!best || Math.abs(entry.time_ms - ms) < Math.abs(best.time_ms - ms)) best = entry;
    }
    if (best && Math.abs(best.time_ms - ms) <= NEAREST_MS) faces.push({ ...best, track_id: track.track_id });
  });
  return faces;
}

function drawClipFrame() {
  const clip = $("clip");
  const overlay = $("clip-overlay");
  if (clipResult && clip.videoWidth) {
    overlay.width = clip.videoWidth;
    overlay.height = clip.videoHeight;
    const context = overlay.getContext("2d");
    context.clearRect(0, 0, overlay.width, overlay.height);
    const ms = clip.currentTime * 1000;
    const faces = facesAt(clipResult, ms);
    drawBoxes(context, overlay.width, overlay.height, faces, personColour, (face) => `#${face.track_id} ${face.dominant_emotion} ${percent(face)}%`);
    $("clip-now").textContent = `${(ms / 1000).toFixed(1)} s: ${faces.length} face(s)`;
    document.querySelectorAll("#tracks canvas").forEach((canvas) => drawChart(canvas, ms));
  }
  requestAnimationFrame(drawClipFrame);
}

function trackChart(track, durationMs) {
  const item = document.createElement("li");
  const title = document.createElement("h2");
  title.style.color = personColour(track);
  title.textContent = `Person #${track.track_id}: mostly ${track.dominant_emotion}, ${(track.first_ms / 1000).toFixed(1)}–${(track.last_ms / 1000).toFixed(1)} s`;
  const canvas = document.createElement("canvas");
  canvas.width = 720;
  canvas.height = 140;
  canvas.track = track;
  canvas.durationMs = Math.max(durationMs, track.last_ms, 1);
  const legend = document.createElement("div");
  legend.className = "legend";
  EMOTIONS.forEach((emotion) => {
    const swatch = document.createElement("span");
    swatch.style.setProperty("--swatch", COLOURS[emotion]);
    swatch.textContent = emotion;
    legend.append(swatch);
  });
  item.append(title, canvas, legend);
  drawChart(canvas, 0);
  return item;
}

// One line per emotion (smoothed probability over time) and the playhead.
function drawChart(canvas, playheadMs) {
  const context = canvas.getContext("2d");
  const { width, height, track, durationMs } = canvas;
  const x = (ms) => (ms / durationMs) * width;
  const y = (p) => height - 4 - p * (height - 8);
  context.clearRect(0, 0, width, height);
  context.strokeStyle = "#e3e7ee";
  context.lineWidth = 1;
  [0, 0.5, 1].forEach((p) => { context.beginPath(); context.moveTo(0, y(p)); context.lineTo(width, y(p)); context.stroke(); });
  EMOTIONS.forEach((emotion) => {
    context.strokeStyle = COLOURS[emotion];
    context.lineWidth = 2;
    context.beginPath();
    track.timeline.forEach((entry, i) => {
      const method = i === 0 ? "moveTo" : "lineTo";
      context[method](x(entry.time_ms), y(entry.emotions[emotion]));
    });
    context.stroke();
  });
  context.strokeStyle = "#1d2430";
  context.beginPath();
  context.moveTo(x(playheadMs), 0);
  context.lineTo(x(playheadMs), height);
  context.stroke();
}

// --- Webcam: frames over the stream, newest answered --------------------------------------------

function frameBlob(video) {
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.85));
}

async function sendFrame() {
  const video = $("video");
  if (!webcam || webcam.socket.readyState !== WebSocket.OPEN || !video.videoWidth) return;
  // Sent at the chosen rate whatever the answers: the service analyses the newest and drops the rest.
  webcam.socket.send(await frameBlob(video));
}

function onAnswer(event) {
  const answer = JSON.parse(event.data);
  if (answer.error) {
    setStatus(`frame ${answer.frame}: ${answer.error.code}: ${answer.error.message}`, true);
    return;
  }
  webcam.answered += 1;
  const seconds = (performance.now() - webcam.started) / 1000;
  const fps = webcam.answered / Math.max(seconds, 0.001);
  $("latency").textContent = `fps: ${fps.toFixed(1)} · latency: ${Math.round(answer.latency_ms)} ms · dropped: ${answer.dropped}`;
  drawFaces($("video"), answer.faces, true);
  showBars(answer.faces, true);
  setStatus(`${answer.faces.length} face(s)`);
}

// --- Webcam on this device: the service's detector and emotion-fast graphs run in the page ---------

const LANDMARKS = ["left_eye", "right_eye", "nose", "mouth_left", "mouth_right"];

// A face of the browser's face step in the shape the API answers, for the same drawing and bars.
function asAnswered(face, classes) {
  const [x1, y1, x2, y2] = face.box;
  const emotions = Object.fromEntries(classes.map((c, i) => [c, face.probabilities[i]]));
  const dominant = classes[face.probabilities.indexOf(Math.max(...face.probabilities))];
  const landmarks = Object.fromEntries(LANDMARKS.map((name, i) => [name, { x: face.landmarks[i][0], y: face.landmarks[i][1] }]));
  return { box: { x: x1, y: y1, width: x2 - x1, height: y2 - y1 }, landmarks, emotions, dominant_emotion: dominant };
}

async function startOnDevice(stream, fps) {
  setStatus("Loading the models into this page…");
  const { FaceStep } = await import("/static/facestep.js");
  const step = await FaceStep.open("/v1/models/retinaface/browser", "/v1/models/emotion-fast/browser", apiHeaders());
  webcam = { stream, socket: null, timer: null, answered: 0, started: performance.now() };
  const session = webcam;
  const video = $("video");
  const tick = async () => {
    if (webcam !== session) return;
    const began = performance.now();
    const faces = (await step.analyse(video, video.videoWidth, video.videoHeight)).map((f) => asAnswered(f, step.classes));
    session.answered += 1;
    const took = performance.now() - began;
    const seconds = (performance.now() - session.started) / 1000;
    $("latency").textContent = `on this device · fps: ${(session.answered / seconds).toFixed(1)} · analysis: ${Math.round(took)} ms`;
    drawFaces(video, faces);
    showBars(faces);
    setStatus(`${faces.length} face(s), analysed on this device`);
    session.timer = setTimeout(tick, Math.max(0, 1000 / fps - took));
  };
  tick();
}

async function startWebcam() {
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 } });
    const video = $("video");
    video.srcObject = stream;
    await video.play();
    if ($("webcam-on-device").checked) {
      $("webcam-start").disabled = true;
      $("webcam-stop").disabled = false;
      await startOnDevice(stream, Math.min(30, Math.max(1, Number($("webcam-fps").value) || 10)));
      return;
    }
    const key = $("api-key").value.trim();
    // A browser cannot set headers on a WebSocket: the key travels as a subprotocol, never in the URL.
    const protocols = key ? ["emotion-stream", `key.${key}`] : ["emotion-stream"];
    const socket = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/stream`, protocols);
    const fps = Math.min(30, Math.max(1, Number($("webcam-fps").value) || 10));
    webcam = { stream, socket, timer: null, answered: 0, started: performance.now() };
    socket.onopen = () => {
      socket.send(JSON.stringify({ smoothing: 1.0 }));
      webcam.timer = setInterval(sendFrame, 1000 / fps);
    };
    socket.onmessage = onAnswer;
    socket.onclose = (event) => {
      if (webcam && webcam.socket === socket) {
        stopWebcam();
        if (event.code !== 1000) setStatus(`Stream closed (${event.code}): ${event.reason || "connection lost"}`, true);
      }
    };
    $("webcam-start").disabled = true;
    $("webcam-stop").disabled = false;
    setStatus("Camera on.");
  } catch (error) {
    stopWebcam();
    setStatus(`Could not start: ${error.message}`, true);
  }
}

function stopWebcam() {
  if (!webcam) return;
  const { timer, stream, socket } = webcam;
  webcam = null;
  clearInterval(timer);
  clearTimeout(timer);
  stream.getTracks().forEach((track) => track.stop());
  if (socket && socket.readyState <= WebSocket.OPEN) socket.close(1000);
  $("webcam-start").disabled = false;
  $("webcam-stop").disabled = true;
  setStatus("Camera off.");
}

function selectMode(mode) {
  ["photo", "video", "webcam"].forEach((name) => {
    $(`mode-${name}`).classList.toggle("active", mode === name);
    $(`${name}-panel`).hidden = mode !== name;
  });
  document.querySelector(".result").hidden = mode === "video";
  if (mode !== "webcam") stopWebcam();
  if (mode !== "video") $("clip").pause();
}

$("file-input").addEventListener("change", (event) => analyseFile(event.target.files[0]));
$("video-input").addEventListener("change", (event) => analyseClip(event.target.files[0]));
const drop = $("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  analyseFile(event.dataTransfer.files[0]);
});
["photo", "video", "webcam"].forEach((mode) => $(`mode-${mode}`).addEventListener("click", () => selectMode(mode)));
$("webcam-start").addEventListener("click", startWebcam);
$("webcam-stop").addEventListener("click", stopWebcam);
requestAnimationFrame(drawClipFrame);
