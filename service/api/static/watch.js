// The participant page of an ad test: consent, a camera check, the ad with the webcam recorded or
// analysed on this device in step with the player's clock, the upload of the recording or of the
// per-second traces, then back to the panel with the respondent's status.
const settings = JSON.parse(document.getElementById("settings").textContent);
const base = `/watch/${settings.token}`;
const CHECK_EVERY_MS = 500;
const FACE_FOR_MS = 1000; // a face seen this long passes the camera check
const TAIL_MS = 600; // recorded after the ad ends, so the recording covers all of it
const MAX_FPS = 10; // on the device: frames analysed a second at most
const PROGRESS_EVERY_MS = 5000; // on the device: traces sent this often while the ad plays
const SPEED_FRAMES = 5; // on the device: the camera check judges the frame rate over this many frames
const OPEN_WITHIN_MS = 30000; // on the device: the runtime and graphs must be ready by then
const $ = (id) => document.getElementById(id);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// "on-device" or "upload": where the webcam's picture is analysed. An on-device-or-upload link starts on
// the device and falls back to an upload if this browser cannot keep up.
let analysis = settings.device ? "on-device" : "upload";
let step = null; // the face step, when analysing on the device

function show(id) {
  for (const section of document.querySelectorAll("main > section")) section.hidden = section.id !== id;
}

function finish(status, message) {
  if (message) $("done-text").textContent = message;
  $("done").dataset.status = status;
  show("done");
  if (settings.returnUrl) {
    const target = settings.returnUrl
      .replaceAll("{viewer}", encodeURIComponent(settings.viewer))
      .replaceAll("{status}", encodeURIComponent(status));
    setTimeout(() => window.location.assign(target), 1500);
  }
}

async function ended(status, message) {
  // A respondent who leaves without a session is counted on the link; nothing else is sent.
  await fetch(`${base}/outcome`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ status }),
  }).catch(() => {});
  finish(status, message);
}

function problem(text) {
  $("problem-text").textContent = text;
  show("problem");
}

// --- camera check -------------------------------------------------------------------------------
let camera = null;
let cameraOpenedAt = 0;

function brightness(context, width, height) {
  const pixels = context.getImageData(0, 0, width, height).data;
  let sum = 0;
  for (let i = 0; i < pixels.length; i += 16) sum += 0.299 * pixels[i] + 0.587 * pixels[i + 1] + 0.114 * pixels[i + 2];
  return sum / (pixels.length / 16);
}

async function faceCount(canvas) {
  const still = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.8));
  const answer = await fetch(`${base}/face`, { method: "POST", body: still });
  if (!answer.ok) return 0;
  return (await answer.json()).faces;
}

async function serverCheck(deadline) {
  const canvas = document.createElement("canvas");
  canvas.width = 320;
  canvas.height = 240;
  const context = canvas.getContext("2d", { willReadFrequently: true });
  let seenSince = null;
  while (performance.now() < deadline) {
    context.drawImage($("preview"), 0, 0, canvas.width, canvas.height);
    const light = brightness(context, canvas.width, canvas.height);
    $("lighting").textContent = light < 60 ? "It is rather dark: turn on a light in front of you." : light > 210 ? "It is very bright: move away from the light behind you." : "";
    const faces = await faceCount(canvas).catch(() => 0);
    if (faceSeen(faces > 0, seenSince)) return "passed";
    seenSince = faces > 0 ? seenSince ?? performance.now() : null;
    await sleep(CHECK_EVERY_MS);
  }
  return "no_face";
}

// Whether a face has now been seen for long enough, with the status line kept up to date.
function faceSeen(found, seenSince) {
  $("check-status").textContent = found ? "Face found." : "Looking for your face…";
  return found && seenSince !== null && performance.now() - seenSince >= FACE_FOR_MS;
}

// The camera check on this device: the face is looked for by the face step itself, which is timed on
// the way: "slow" if it cannot keep the minimum frame rate.
async function deviceCheck(deadline) {
  const spent = [];
  let seenSince = null;
  while (performance.now() < deadline) {
    const started = performance.now();
    const frame = await createImageBitmap($("preview"));
    const faces = await step.analyse(frame, frame.width, frame.height);
    frame.close();
    if (!spent.length) performance.mark("first-analysed-frame");
    spent.push(performance.now() - started);
    const recent = spent.slice(-SPEED_FRAMES);
    if (recent.length === SPEED_FRAMES && 1000 / median(recent) < settings.minFps) return "slow";
    if (faceSeen(faces.length > 0, seenSince) && spent.length >= SPEED_FRAMES) return "passed";
    seenSince = faces.length ? seenSince ?? performance.now() : null;
    await sleep(Math.max(0, 1000 / MAX_FPS - (performance.now() - started)));
  }
  return "no_face";
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1];
}

async function openStep() {
  try {
    const { FaceStep } = await import("/static/facestep.js");
    const late = sleep(OPEN_WITHIN_MS).then(() => Promise.reject(new Error("the analysis did not start in time")));
    step = await Promise.race([FaceStep.open(settings.device.detector, settings.device.emotion), late]);
    performance.mark("step-opened");
    return true;
  } catch (error) {
    return false;
  }
}

// On the device where it can keep up; otherwise an upload, where the link allows one.
function fallBack() {
  if (settings.mode !== "on-device-or-upload") return false;
  analysis = "upload";
  step = null;
  return true;
}

async function cameraCheck() {
  show("check-step");
  const opening = analysis === "on-device" ? openStep() : Promise.resolve(true);
  try {
    camera = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  } catch (error) {
    await ended("screened_out", "No camera could be used, so you cannot take part in this test.");
    return;
  }
  cameraOpenedAt = performance.now();
  $("preview").srcObject = camera;
  await new Promise((resolve) => ($("preview").readyState >= 2 ? resolve() : $("preview").addEventListener("loadeddata", resolve, { once: true })));
  const deadline = cameraOpenedAt + settings.cameraCheckS * 1000;
  let outcome = "slow";
  if (analysis === "on-device" && (await opening)) outcome = await deviceCheck(deadline);
  if (outcome === "slow" && (analysis === "upload" || fallBack())) outcome = await serverCheck(deadline);
  if (outcome === "passed") {
    $("continue").disabled = false;
    return;
  }
  camera.getTracks().forEach((track) => track.stop());
  if (outcome === "slow") {
    await ended("error", "This device cannot analyse the video quickly enough, so you cannot take part in this test.");
    return;
  }
  await ended("screened_out", "Your face could not be seen clearly enough, so you cannot take part in this test.");
}

// --- the ad and the recording ----------------------------------------------------------------------
function recorderFor(stream) {
  const type = ["video/webm;codecs=vp8", "video/webm"].find((t) => MediaRecorder.isTypeSupported(t));
  return new MediaRecorder(stream, { mimeType: type, videoBitsPerSecond: 1_000_000 });
}

// Play the ad once, start to end, measuring on the page's clock (from clockZero) when its first frame was
// presented (told to onStart as soon as known) and how much of it played with the tab visible.
async function playAd(clockZero, onStart = () => {}) {
  show("play-step");
  const ad = $("ad");
  let offset = null;
  const firstFrame = (now, frame) => {
    offset = (now - clockZero) / 1000 - (frame ? frame.mediaTime : 0);
    onStart(offset);
  };
  if ("requestVideoFrameCallback" in ad) ad.requestVideoFrameCallback(firstFrame);
  else ad.addEventListener("playing", () => offset ?? firstFrame(performance.now(), null), { once: true });

  // Retention: the seconds of the ad played while the tab was hidden.
  let hiddenSince = null;
  let hiddenMs = 0;
  const onVisibility = () => {
    if (document.hidden) hiddenSince = performance.now();
    else if (hiddenSince !== null) (hiddenMs += performance.now() - hiddenSince), (hiddenSince = null);
  };
  document.addEventListener("visibilitychange", onVisibility);

  // No seeking: the ad plays once, from start to end.
  let watched = 0;
  ad.addEventListener("timeupdate", () => (watched = Math.max(watched, ad.currentTime)));
  ad.addEventListener("seeking", () => Math.abs(ad.currentTime - watched) > 0.5 && (ad.currentTime = watched));

  const playedAt = performance.now();
  ad.src = `${base}/stimulus`;
  const finished = new Promise((resolve, reject) => {
    ad.addEventListener("ended", resolve, { once: true });
    ad.addEventListener("error", () => reject(new Error("the video could not be played")), { once: true });
  });
  await ad.play();
  await finished;
  await sleep(TAIL_MS);
  document.removeEventListener("visibilitychange", onVisibility);
  onVisibility();
  const playedMs = performance.now() - playedAt;
  return { offset: offset ?? 0, visibleShare: Math.max(0, Math.min(1, 1 - hiddenMs / Math.max(playedMs, 1))) };
}

async function record() {
  const chunks = [];
  const recorder = recorderFor(camera);
  recorder.ondataavailable = (event) => event.data.size && chunks.push(event.data);
  const stopped = new Promise((resolve) => (recorder.onstop = resolve));
  recorder.start(1000);
  const recordingFrom = performance.now();
  const played = await playAd(recordingFrom);
  recorder.stop();
  await stopped;
  camera.getTracks().forEach((track) => track.stop());
  const leadIn = (recordingFrom - cameraOpenedAt) / 1000;
  return { recording: new Blob(chunks, { type: "video/webm" }), leadIn, ...played };
}

// The ad with the webcam analysed here: frames as fast as this device allows (at most MAX_FPS), reduced
// to per-second traces, sent every few seconds and at the end. No frame leaves the page.
async function analyseOnDevice() {
  const { ViewerTrace } = await import("/static/facestep.js");
  const preview = $("preview");
  const trace = new ViewerTrace(preview.videoWidth, preview.videoHeight);
  const clockZero = performance.now();
  const measured = { trace, clockZero, leadIn: (clockZero - cameraOpenedAt) / 1000, offset: null };
  let running = true;
  const analysing = (async () => {
    while (running) {
      const started = performance.now();
      const frame = await createImageBitmap(preview);
      const faces = await step.analyse(frame, frame.width, frame.height);
      frame.close();
      trace.add(started - clockZero, faces);
      await sleep(Math.max(0, 1000 / MAX_FPS - (performance.now() - started)));
    }
  })();
  const progress = setInterval(() => measured.offset !== null && sendTraces(measured, false), PROGRESS_EVERY_MS);
  try {
    Object.assign(measured, await playAd(clockZero, (offset) => (measured.offset = offset)));
  } finally {
    running = false;
    clearInterval(progress);
    await analysing;
    camera.getTracks().forEach((track) => track.stop());
  }
  measured.recordingS = (performance.now() - clockZero) / 1000;
  return measured;
}

// What the page sends from the device: per-second summaries of the ad's seconds since the last post
// (all of them in the final post, the main face being chosen over the whole session), how they were
// made, and nothing else. Numbers are rounded to what the service keeps.
function traces(measured, final) {
  const sinceZero = (performance.now() - measured.clockZero) / 1000;
  const seconds = Math.max(1, Math.floor(settings.durationS + 1e-9));
  const count = final ? seconds : Math.max(0, Math.min(seconds, Math.floor(sinceZero - measured.offset)));
  const first = final ? 0 : Math.min(measured.sentSeconds ?? 0, count);
  measured.sentSeconds = count;
  const analysed = measured.trace.analysedMs;
  const analysedS = ((analysed.at(-1) ?? 0) - (analysed[0] ?? 0)) / 1000;
  const round = (value, places) => (value === null ? null : Number(value.toFixed(places)));
  return {
    viewer: settings.viewer,
    attributes: settings.attributes,
    final,
    model: { name: step.emotion.described.name, version: step.emotion.described.version },
    offset_s: round(Math.max(0, measured.offset), 3),
    lead_in_s: round(measured.leadIn, 3),
    recording_s: round(final ? measured.recordingS : sinceZero, 3),
    visible_share: round(measured.visibleShare ?? 1, 4),
    analysed_fps: analysedS > 0 ? round(Math.min(60, (analysed.length - 1) / analysedS), 2) : 0,
    first_second: first,
    seconds: measured.trace.seconds(measured.offset, count).slice(first).map((second) => ({
      ...second,
      probabilities: second.probabilities && second.probabilities.map((v) => round(v, 5)),
      yaw_deg: round(second.yaw_deg, 1),
      pitch_deg: round(second.pitch_deg, 1),
    })),
  };
}

function sendTraces(measured, final) {
  return fetch(`${base}/traces`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(traces(measured, final)),
  });
}

async function send(measured) {
  show("send-step");
  let answer;
  if (analysis === "on-device") {
    answer = await sendTraces(measured, true);
  } else {
    const form = new FormData();
    form.append("file", measured.recording, "session.webm");
    form.append("viewer", settings.viewer);
    form.append("attributes", JSON.stringify(settings.attributes));
    form.append("offset_s", measured.offset.toFixed(3));
    form.append("lead_in_s", measured.leadIn.toFixed(3));
    form.append("visible_share", measured.visibleShare.toFixed(4));
    answer = await fetch(`${base}/sessions`, { method: "POST", body: form });
  }
  if (answer.status === 202) return finish("complete", "Thank you: your session was received.");
  const code = (await answer.json().catch(() => ({}))).error?.code;
  if (code === "duplicate_viewer") return finish("screened_out", "You have already taken part in this test.");
  if (code === "link_full") return finish("screened_out", "This test has all the viewers it needs. Thank you.");
  await ended("error", "Your session could not be sent.");
}

// --- start --------------------------------------------------------------------------------------
if (settings.problem) problem(settings.problem);
else if (settings.already) finish("screened_out", "You have already taken part in this test.");
else if (settings.full) finish("screened_out", "This test has all the viewers it needs. Thank you.");
else {
  $("duration").textContent = Math.round(settings.durationS);
  const shown = { upload: ["upload"], "on-device": ["on-device"], "on-device-or-upload": ["on-device", "fallback"] };
  for (const item of document.querySelectorAll("[data-when]")) item.hidden = !shown[settings.mode].includes(item.dataset.when);
  show("consent-step");
  $("decline").addEventListener("click", () => ended("declined", "No problem: nothing was recorded."));
  $("consent").addEventListener("click", () => cameraCheck());
  $("continue").addEventListener("click", async () => {
    try {
      await send(await (analysis === "on-device" ? analyseOnDevice() : record()));
    } catch (error) {
      await ended("error", "Something went wrong while the video played.");
    }
  });
}
