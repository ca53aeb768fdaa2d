// What the demo's pages share: the emotions' colours, the status line, the API key, API errors.
"use strict";

const COLOURS = {
  angry: "#dc2828", disgust: "#288c28", fear: "#963ca0", happy: "#ffc800",
  sad: "#1e78c8", surprise: "#ff8c00", neutral: "#aaaaaa",
};
const $ = (id) => document.getElementById(id);

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

function apiHeaders() {
  const key = $("api-key").value.trim();
  return key ? { "X-API-Key": key } : {};
}

// The body of an API answer, or an Error carrying the service's code and message.
async function answerOf(response) {
  const body = await response.json();
  if (!response.ok) throw new Error(body.error ? `${body.error.code}: ${body.error.message}` : response.statusText);
  return body;
}
