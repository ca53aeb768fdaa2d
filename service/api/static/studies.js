// The studies page: a study's report (share of viewers per second for each emotion with its 95%
// band, attention, events, the best moment), its sessions, and a comparison of two studies.
// Only the public API is used: /v1/studies.
"use strict";

const percent = (v) => (v === null || v === undefined ? "–" : `${Math.round(v * 1000) / 10}%`);
const fixed = (v, digits = 3) => (v === null || v === undefined ? "–" : Number(v).toFixed(digits));

async function api(path, options = {}) {
  return answerOf(await fetch(path, { ...options, headers: { ...apiHeaders(), ...(options.headers || {}) } }));
}

// The ad's length as the browser reads it: the study's stimulus_duration_s.
function clipSeconds(file) {
  return new Promise((resolve, reject) => {
    const probe = document.createElement("video");
    probe.preload = "metadata";
    probe.onloadedmetadata = () => (URL.revokeObjectURL(probe.src), resolve(probe.duration));
    probe.onerror = () => reject(new Error("this file does not play as a video in this browser"));
    probe.src = URL.createObjectURL(file);
  });
}

// A study, its ad and a participant link, in three calls of the public API.
async function createAdTest() {
  const file = $("new-ad").files[0];
  if (!file) return setStatus("Choose the ad first.", true);
  const seconds = await clipSeconds(file);
  setStatus("Creating the study…");
  const json = { "Content-Type": "application/json" };
  const study = await api("/v1/studies", {
    method: "POST", headers: json,
    body: JSON.stringify({ name: $("new-name").value || file.name, stimulus_duration_s: Math.round(seconds * 1000) / 1000 }),
  });
  const form = new FormData();
  form.append("file", file);
  setStatus("Uploading the ad…");
  await api(`/v1/studies/${study.study_id}/stimulus`, { method: "PUT", body: form });
  const returnUrl = $("new-return").value.trim();
  const link = await api(`/v1/studies/${study.study_id}/links`, {
    method: "POST",
    headers: json,
    body: JSON.stringify({ mode: $("new-mode").value, ...(returnUrl ? { return_url: returnUrl } : {}) }),
  });
  $("link-url").value = `${location.origin}${link.url}?viewer={ID}`;
  $("link-line").hidden = false;
  await start(study.study_id);
  setStatus(`Study and link made: the link works until ${new Date(link.expires_at).toLocaleString()}.`);
}

// The 95% interval of one emotion's share, as a faint band around its curve.
function drawBand(ctx, rows, emotion, colour, x, y) {
  ctx.globalAlpha = 0.12; ctx.fillStyle = colour; ctx.beginPath();
  rows.forEach((s, i) => (i ? ctx.lineTo : ctx.moveTo).call(ctx, x(s.t + 0.5), y(s.emotions[emotion].share_ci[1])));
  [...rows].reverse().forEach((s) => ctx.lineTo(x(s.t + 0.5), y(s.emotions[emotion].share_ci[0])));
  ctx.fill(); ctx.globalAlpha = 1;
}

function drawReport(report) {
  const canvas = $("chart");
  const ctx = canvas.getContext("2d");
  const left = 50, right = 20, top = 20, bottom = 40;
  const width = canvas.width - left - right, height = canvas.height - top - bottom;
  const seconds = Math.max(report.seconds.length, 1);
  const x = (time) => left + (width * time) / seconds;
  const y = (share) => top + height * (1 - share);
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.font = "12px system-ui";
  ctx.strokeStyle = "#e4e7ec";
  ctx.fillStyle = "#5c6777";
  for (const share of [0, 0.25, 0.5, 0.75, 1]) {
    ctx.beginPath(); ctx.moveTo(left, y(share)); ctx.lineTo(left + width, y(share)); ctx.stroke();
    ctx.fillText(percent(share), 4, y(share) + 4);
  }
  const step = Math.max(1, Math.ceil(seconds / 15));
  for (let t = 0; t <= seconds; t += step) ctx.fillText(`${t}s`, x(t) - 6, top + height + 16);
  for (const event of report.events) {
    ctx.strokeStyle = "#777"; ctx.beginPath(); ctx.moveTo(x(event.time_s), top); ctx.lineTo(x(event.time_s), top + height); ctx.stroke();
    ctx.fillText(event.label, x(event.time_s) + 4, top + 12);
  }
  for (const [emotion, colour] of Object.entries(COLOURS)) {
    const rows = report.seconds.filter((s) => s.emotions[emotion] && s.emotions[emotion].share !== null);
    if (!rows.length) continue;
    if (rows.some((s) => s.emotions[emotion].share > 0)) drawBand(ctx, rows, emotion, colour, x, y); // none for an emotion nobody showed
    ctx.strokeStyle = colour; ctx.lineWidth = 2; ctx.beginPath();
    rows.forEach((s, i) => (i ? ctx.lineTo : ctx.moveTo).call(ctx, x(s.t + 0.5), y(s.emotions[emotion].share)));
    ctx.stroke(); ctx.lineWidth = 1;
  }
  const described = report.seconds.filter((s) => s.actions); // the face mesh's smile, beside happy
  ctx.setLineDash([2, 3]); ctx.strokeStyle = COLOURS.happy; ctx.lineWidth = 2; ctx.beginPath();
  described.forEach((s, i) => (i ? ctx.lineTo : ctx.moveTo).call(ctx, x(s.t + 0.5), y(s.actions.smile_share)));
  ctx.stroke(); ctx.setLineDash([]); ctx.lineWidth = 1;
  const attended = report.seconds.filter((s) => s.attention !== null);
  ctx.setLineDash([5, 4]); ctx.strokeStyle = "#1d2430"; ctx.beginPath();
  attended.forEach((s, i) => (i ? ctx.lineTo : ctx.moveTo).call(ctx, x(s.t + 0.5), y(s.attention)));
  ctx.stroke(); ctx.setLineDash([]);
  const best = report.best_moment;
  if (best) {
    ctx.strokeStyle = COLOURS[best.emotion]; ctx.lineWidth = 3; ctx.beginPath();
    ctx.arc(x(best.t + 0.5), y(best.share), 8, 0, 2 * Math.PI); ctx.stroke(); ctx.lineWidth = 1;
  }
  $("legend").innerHTML = "";
  const smile = described.length ? [["smile, face mesh (dotted)", COLOURS.happy]] : [];
  for (const [name, colour] of [...Object.entries(COLOURS), ...smile, ["attention (dashed)", "#1d2430"]]) {
    const item = document.createElement("span");
    item.style.setProperty("--swatch", colour);
    item.textContent = name;
    $("legend").append(item);
  }
}

function fillTable(table, header, rows) {
  table.innerHTML = "";
  const head = table.insertRow();
  for (const name of header) head.append(Object.assign(document.createElement("th"), { textContent: name }));
  for (const row of rows) {
    const line = table.insertRow();
    for (const value of row) line.insertCell().textContent = value;
  }
}

async function showStudy(studyId) {
  const threshold = $("threshold").value;
  const query = `?threshold=${encodeURIComponent(threshold)}`;
  const [report, sessions] = await Promise.all([
    api(`/v1/studies/${studyId}/report${query}`),
    api(`/v1/studies/${studyId}/sessions`),
  ]);
  $("title").textContent = `${report.name}: ${report.sessions.valid} viewers counted of ${report.sessions.uploaded}`;
  const best = report.best_moment;
  const clock = (t) => `${Math.floor(t / 60)}:${String(t % 60).padStart(2, "0")}`;
  const ci = best && report.seconds[best.t].emotions[best.emotion].share_ci;
  $("best").textContent = (best
    ? `At ${clock(best.t)}${best.t_to > best.t ? `–${clock(best.t_to)}` : ""}, ${percent(best.share)} of viewers smiled ` +
      `(95%: ${percent(ci[0])}–${percent(ci[1])}), ${best.n} viewers; in 95% of resamples of the viewers the peak falls ` +
      `between ${clock(best.t_ci[0])} and ${clock(best.t_ci[1])}`
    : `No best moment: ${report.best_moment_reason}`) +
    (report.attention_drop ? `. Attention falls most at ${clock(report.attention_drop.t)}.` : ".") +
    ` A viewer counts as smiling at a second when the model's probability of a happy expression is at least ${report.threshold}.` +
    (report.actions
      ? ` By the mouth's movement (face mesh), ${percent(report.actions.smile_ever_share)} of ${report.actions.viewers} ` +
        `recorded viewers smiled at some point; they blinked ${report.actions.blink_rate.toFixed(1)} times a minute.`
      : "");
  drawReport(report);
  fillTable($("sessions"), ["viewer", "status", "reason", "face found"], sessions.sessions.map((s) => [
    s.viewer || s.session_id.slice(0, 8), s.status, s.reason || "", percent(s.presence),
  ]));
  $("png").href = `/v1/studies/${studyId}/report.png${query}`;
  $("csv").href = `/v1/studies/${studyId}/report.csv${query}`;
  $("viewers-csv").href = `/v1/studies/${studyId}/viewers.csv${query}`;
  history.replaceState(null, "", `/studies/${studyId}`);
  setStatus(`Report computed with ${Object.values(report.models).map((m) => `${m.name}/${m.version}`).join(", ")}.`);
}

async function compare() {
  const a = $("study").value, b = $("other").value;
  if (!a || !b) return setStatus("Choose two studies to compare.", true);
  const result = await api(`/v1/studies/compare?a=${a}&b=${b}&threshold=${encodeURIComponent($("threshold").value)}`);
  fillTable($("comparison-table"), ["emotion", "ever reached (a, b)", "difference [95%]", "p", "mean (a, b)", "difference [95%]", "p", "seconds that differ"],
    Object.entries(result.emotions).map(([emotion, c]) => [
      emotion,
      `${percent(c.ever_share[0])}, ${percent(c.ever_share[1])}`,
      `${percent(c.ever_share_difference)} [${percent(c.ever_share_ci[0])}, ${percent(c.ever_share_ci[1])}]`,
      `${fixed(c.ever_share_p)} (${c.ever_share_test === "fisher" ? "Fisher exact" : "z-test"})`,
      `${fixed(c.mean[0])}, ${fixed(c.mean[1])}`,
      `${fixed(c.mean_difference)} [${fixed(c.mean_ci[0])}, ${fixed(c.mean_ci[1])}]`,
      `${fixed(c.mean_p)} (Mann-Whitney, ${c.mean_test})`,
      c.differing_seconds.map((d) => `${d.t}s`).join(" ") || "none",
    ]));
  $("comparison-viewers").textContent =
    `${result.viewers[0]} viewers against ${result.viewers[1]}, over the first ${result.seconds} s of both.`;
  const items = (lines) => lines.map((line) => {
    const item = document.createElement("li");
    item.textContent = line;
    return item;
  });
  $("comparison-warnings").replaceChildren(...items(result.warnings));
  $("comparison-verdicts").replaceChildren(...items(Object.entries(result.emotions).map(([emotion, c]) => {
    const [a, b] = c.ever_share.map((share, i) => Math.round(share * result.viewers[i]));
    const test = c.ever_share_test === "fisher" ? "Fisher exact" : "z-test";
    const verdict = c.ever_share_p < 0.05 ? `a difference (p = ${fixed(c.ever_share_p)}, ${test})`
      : `no difference shown (p = ${fixed(c.ever_share_p)}, ${test})`;
    return `${emotion}: ${a} of ${result.viewers[0]} viewers of a reached it, ${b} of ${result.viewers[1]} of b: ${verdict}`;
  })));
  $("comparison").hidden = false;
}

async function start(chosen) {
  const { studies } = await api("/v1/studies?limit=100");
  $("study").replaceChildren();
  $("other").replaceChildren(new Option("–", ""));
  for (const select of [$("study"), $("other")]) {
    for (const study of studies) select.append(new Option(`${study.name} (${study.study_id.slice(0, 8)})`, study.study_id));
  }
  const fromPath = location.pathname.split("/")[2];
  if (chosen || fromPath) $("study").value = chosen || fromPath;
  if ($("study").value) await showStudy($("study").value);
  else setStatus("No study yet: create one with POST /v1/studies.");
}

const guarded = (action) => () => action().catch((error) => setStatus(error.message, true));
$("study").addEventListener("change", guarded(() => showStudy($("study").value)));
$("threshold").addEventListener("change", guarded(() => showStudy($("study").value)));
$("compare").addEventListener("click", guarded(compare));
$("api-key").addEventListener("change", guarded(() => start()));
$("create-test").addEventListener("click", guarded(createAdTest));
$("copy-link").addEventListener("click", guarded(() => navigator.clipboard.writeText($("link-url").value)));
// While sessions arrive the report follows them (it is recomputed only when a session changed).
setInterval(() => $("study").value && !document.hidden && showStudy($("study").value).catch(() => {}), 5000);
guarded(() => start())();
