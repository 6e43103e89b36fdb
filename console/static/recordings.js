// The console's Recordings view: the recordings catalog (GET /v1/recordings) by room and
// session, each playable in the browser's own <audio>/<video> element from its presigned
// download link, and deletable (object, then entry) with recordings:write.
import { api, query } from "./api.js";

const $ = (selector) => document.querySelector(selector);
const VIDEO = /\.(mp4|webm|mkv|m3u8)$/i;
let nextToken = null;
let request = 0; // only the newest list request renders
let mayDelete = false;

function say(text, isError = false) {
  const status = $("#status");
  status.textContent = text;
  status.classList.toggle("error", isError);
}

function cell(text, className) {
  const td = document.createElement("td");
  if (className) td.className = className;
  td.textContent = text;
  return td;
}

function button(label, onclick, attributes = {}) {
  const element = document.createElement("button");
  element.type = "button";
  element.textContent = label;
  element.addEventListener("click", onclick);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  return element;
}

const time = (value) => (value ? new Date(value).toISOString().replace("T", " ").slice(0, 19) : "");
const size = (bytes) => (bytes >= 1048576 ? `${(bytes / 1048576).toFixed(1)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`);

async function load(more) {
  const form = new FormData($("#recordings-filter"));
  const params = {
    room_name: form.get("room_name"), session_id: form.get("session_id"), limit: 50,
    page_token: more ? nextToken : "",
  };
  const mine = ++request;
  let page;
  try {
    page = await api("GET", `/v1/recordings${query(params)}`);
  } catch (error) {
    say(error.message, true);
    return;
  }
  if (mine !== request) return;
  nextToken = page.next_page_token;
  $("#recordings-more").hidden = !nextToken;
  const rows = page.items.map((r) => {
    const row = document.createElement("tr");
    row.dataset.recording = r.recording_id;
    const actions = document.createElement("td");
    actions.append(button("Play", () => play(r.recording_id), { "data-action": "play" }));
    const remove = button("Delete", () => deleteRecording(r), { class: "danger", "data-action": "delete" });
    remove.disabled = !mayDelete;
    remove.title = mayDelete ? "" : "needs the scope recordings:write";
    actions.append(" ", remove);
    row.append(cell(r.room_name ?? ""), cell(r.session_id ?? "", "id"), cell(r.kind),
      cell(r.filename), cell(size(r.size_bytes), "num"), cell(`${r.duration_seconds.toFixed(1)} s`, "num"),
      cell(time(r.ended_at)), cell(r.status), actions);
    return row;
  });
  const body = $("#recordings-table tbody");
  if (more) body.append(...rows); else body.replaceChildren(...rows);
}

async function play(id) {
  let recording;
  try {
    recording = await api("GET", `/v1/recordings/${encodeURIComponent(id)}`);
  } catch (error) {
    say(error.message, true);
    return;
  }
  if (!recording.download_url) {
    say(`${recording.filename} is not in the recordings bucket: no link to play`, true);
    return;
  }
  const media = document.createElement(VIDEO.test(recording.filename) ? "video" : "audio");
  media.controls = true;
  media.autoplay = true;
  media.src = recording.download_url;
  media.dataset.recording = id;
  const title = document.createElement("p");
  title.textContent = `${recording.room_name ?? ""} · ${recording.filename}`;
  $("#recording-player").replaceChildren(title, media);
  $("#recording-player").hidden = false;
  say("");
}

async function deleteRecording(recording) {
  if (!confirm(`Delete ${recording.filename}? The object and its entry are deleted.`)) return;
  try {
    await api("DELETE", `/v1/recordings/${encodeURIComponent(recording.recording_id)}`);
  } catch (error) {
    say(error.message, true);
    return;
  }
  const player = $("#recording-player");
  if (player.querySelector(`[data-recording="${recording.recording_id}"]`)) {
    player.replaceChildren();
    player.hidden = true;
  }
  say(`deleted ${recording.filename}`);
  load(false);
}

async function open() {
  // app.js's tab handler runs first: it shows the section when the key may read recordings
  if ($("#recordings").hidden) return;
  try {
    const me = await api("GET", "/v1/auth/whoami");
    mayDelete = me.allowed.includes("recordings:write");
  } catch {
    mayDelete = false;
  }
  load(false);
}

$("#tabs button[data-tab=recordings]").addEventListener("click", () => setTimeout(open));
$("#recordings-filter").addEventListener("submit", (e) => { e.preventDefault(); load(false); });
$("#recordings-more").addEventListener("click", () => load(true));
