// The participant page of an ad test: consent, a camera check, the ad with the webcam recorded in step
// with the player's clock, the upload, then back to the panel with the respondent's status.
const settings = JSON.parse(document.getElementById("settings").textContent);
const base = `/watch/${settings.token}`;
const CHECK_EVERY_MS = 500;
const FACE_FOR_MS = 1000; // a face seen this long passes the camera check
const TAIL_MS = 600; // recorded after the ad ends, so the recording covers all of it
const $ = (id) => document.getElementById(id);

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

async function cameraCheck() {
  show("check-step");
  try {
    camera = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  } catch (error) {
    await ended("screened_out", "No camera could be used, so you cannot take part in this test.");
    return;
  }
  cameraOpenedAt = performance.now();
  $("preview").srcObject = camera;
  const canvas = document.createElement("canvas");
  canvas.width = 320;
  canvas.height = 240;
  const context = canvas.getContext("2d", { willReadFrequently: true });
  const deadline = cameraOpenedAt + settings.cameraCheckS * 1000;
  let seenSince = null;
  while (performance.now() < deadline) {
    context.drawImage($("preview"), 0, 0, canvas.width, canvas.height);
    const light = brightness(context, canvas.width, canvas.height);
    $("lighting").textContent = light < 60 ? "It is rather dark: turn on a light in front of you." : light > 210 ? "It is very bright: move away from the light behind you." : "";
    const faces = await faceCount(canvas).catch(() => 0);
    if (faces > 0) {
      seenSince ??= performance.now();
      $("check-status").textContent = "Face found.";
      if (performance.now() - seenSince >= FACE_FOR_MS) {
        $("continue").disabled = false;
        return;
      }
    } else {
      seenSince = null;
      $("check-status").textContent = "Looking for your face…";
    }
    await new Promise((resolve) => setTimeout(resolve, CHECK_EVERY_MS));
  }
  camera.getTracks().forEach((track) => track.stop());
  await ended("screened_out", "Your face could not be seen clearly enough, so you cannot take part in this test.");
}

// --- the ad and the recording ----------------------------------------------------------------------
function recorderFor(stream) {
  const type = ["video/webm;codecs=vp8", "video/webm"].find((t) => MediaRecorder.isTypeSupported(t));
  return new MediaRecorder(stream, { mimeType: type, videoBitsPerSecond: 1_000_000 });
}

async function watch() {
  show("play-step");
  const ad = $("ad");
  const chunks = [];
  const recorder = recorderFor(camera);
  recorder.ondataavailable = (event) => event.data.size && chunks.push(event.data);
  const stopped = new Promise((resolve) => (recorder.onstop = resolve));
  recorder.start(1000);
  const recordingFrom = performance.now();
  const leadIn = (recordingFrom - cameraOpenedAt) / 1000;

  // The offset comes from the player's clock: the moment its first frame was presented.
  let offset = null;
  const firstFrame = (now, frame) => {
    offset = (now - recordingFrom) / 1000 - (frame ? frame.mediaTime : 0);
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
  await new Promise((resolve) => setTimeout(resolve, TAIL_MS));
  recorder.stop();
  await stopped;
  document.removeEventListener("visibilitychange", onVisibility);
  onVisibility();
  camera.getTracks().forEach((track) => track.stop());
  const playedMs = performance.now() - playedAt;
  const visibleShare = Math.max(0, Math.min(1, 1 - hiddenMs / Math.max(playedMs, 1)));
  return { recording: new Blob(chunks, { type: "video/webm" }), offset: offset ?? 0, leadIn, visibleShare };
}

async function send(measured) {
  show("send-step");
  const form = new FormData();
  form.append("file", measured.recording, "session.webm");
  form.append("viewer", settings.viewer);
  form.append("attributes", JSON.stringify(settings.attributes));
  form.append("offset_s", measured.offset.toFixed(3));
  form.append("lead_in_s", measured.leadIn.toFixed(3));
  form.append("visible_share", measured.visibleShare.toFixed(4));
  const answer = await fetch(`${base}/sessions`, { method: "POST", body: form });
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
  show("consent-step");
  $("decline").addEventListener("click", () => ended("declined", "No problem: nothing was recorded."));
  $("consent").addEventListener("click", () => cameraCheck());
  $("continue").addEventListener("click", async () => {
    try {
      await send(await watch());
    } catch (error) {
      await ended("error", "Something went wrong while the video played.");
    }
  });
}
