// The operator console: rooms, sessions and webhook events over the REST API (see api.js).
import { api, follow, key, query } from "./api.js";
import { loadUsage, mountUsage } from "./usage.js";
import "./recordings.js";
import { endpointsView } from "./endpoints.js";

const $ = (selector) => document.querySelector(selector);
const ROOMS_REFRESH_MS = 3000;
let allowed = new Set();
let currentRoom = null;
let roomsTimer = null;
let stopTail = null;
let sessionsToken = null;
let eventsToken = null;
const latest = { sessions: 0, events: 0 }; // only the newest request of a list renders

/** An element with attributes and children (strings become text: no HTML is parsed). */
function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (value === true) element.setAttribute(name, "");
    else if (value !== false && value != null) element.setAttribute(name, value);
  }
  element.append(...children.flat().filter((child) => child != null));
  return element;
}

function say(text, isError = false) {
  const status = $("#status");
  status.textContent = text;
  status.classList.toggle("error", isError);
}

/** Run an action, showing what the API answered (problem detail included) on failure. */
async function attempt(action, done) {
  try {
    const result = await action();
    if (done) say(done);
    return result;
  } catch (error) {
    say(error.message, true);
    return undefined;
  }
}

const time = (value) => (value ? new Date(value).toISOString().replace("T", " ").slice(0, 19) : "");
const seconds = (value) => (value ? time(Number(value) * 1000) : "");

/** A button enabled only when the key holds `scope` (shown disabled otherwise). */
function scoped(scope, label, onclick, extra = {}) {
  const button = h("button", { type: "button", "data-scope": scope, onclick, ...extra }, label);
  applyScope(button);
  return button;
}

function applyScope(element) {
  const scope = element.dataset.scope;
  const permitted = allowed.has(scope);
  element.disabled = !permitted;
  element.title = permitted ? "" : `needs the scope ${scope}`;
}

// --- sign-in -----------------------------------------------------------------------------

async function signIn(value) {
  key.set(value);
  try {
    const me = await api("GET", "/v1/auth/whoami");
    allowed = new Set(me.allowed);
    $("#who-name").textContent = `${me.name} (${me.scopes.join(", ") || "no scopes"})`;
  } catch (error) {
    key.clear();
    say(`sign-in refused: ${error.message}`, true);
    return;
  }
  say("");
  $("#sign-in").hidden = true;
  $("#tabs").hidden = false;
  $("#who").hidden = false;
  document.querySelectorAll("[data-scope]").forEach(applyScope);
  show("rooms");
}

function signOut() {
  key.clear();
  location.reload();
}

// --- tabs ----------------------------------------------------------------------------------

function show(tab) {
  for (const button of document.querySelectorAll("#tabs button")) {
    button.toggleAttribute("aria-current", button.dataset.tab === tab);
    if (button.dataset.tab === tab) button.setAttribute("aria-current", "page");
  }
  for (const section of document.querySelectorAll("section[data-needs]")) {
    section.hidden = section.id !== tab;
  }
  clearInterval(roomsTimer);
  const needs = $(`#${tab}`).dataset.needs;
  if (!allowed.has(needs)) {
    say(`this key lacks the scope ${needs}`, true);
    return;
  }
  say("");
  if (tab === "rooms") {
    loadRooms();
    roomsTimer = setInterval(loadRooms, ROOMS_REFRESH_MS);
  } else if (tab === "sessions") {
    loadSessions(false);
  } else if (tab === "usage") {
    loadUsage();
  } else if (tab === "events" && !stopTail) {
    loadEvents(false); // with the live tail on, the tail keeps the list current
  } else if (tab === "endpoints") {
    endpoints.load();
  }
}

// --- rooms ---------------------------------------------------------------------------------

async function loadRooms() {
  const page = await attempt(() => api("GET", "/v1/rooms"));
  if (!page) return;
  const rows = page.items
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((room) =>
      h("tr", { "data-room": room.name },
        h("td", {}, h("a", { href: "#", onclick: (e) => { e.preventDefault(); openRoom(room.name); } }, room.name)),
        h("td", { class: "num" }, String(room.num_participants ?? 0)),
        h("td", { class: "num" }, String(room.num_publishers ?? 0)),
        h("td", {}, seconds(room.creation_time)),
        h("td", { class: "id" }, room.sid)));
  $("#rooms-table tbody").replaceChildren(...rows);
  if (currentRoom) loadParticipants();
}

function openRoom(name) {
  currentRoom = name;
  $("#room").hidden = false;
  $("#room-name").textContent = name;
  loadParticipants();
}

async function loadParticipants() {
  const room = currentRoom;
  const page = await attempt(() => api("GET", `/v1/rooms/${encodeURIComponent(room)}/participants`));
  if (!page || room !== currentRoom) return;
  const path = (identity) =>
    `/v1/rooms/${encodeURIComponent(room)}/participants/${encodeURIComponent(identity)}`;
  const rows = page.items.map((p) =>
    h("tr", { "data-identity": p.identity },
      h("td", {}, p.identity),
      h("td", {}, p.name ?? ""),
      h("td", {}, p.state ?? ""),
      h("td", {},
        (p.tracks ?? []).map((track) =>
          h("div", { class: "track", "data-track": track.sid },
            `${track.source ?? track.type} ${track.sid}${track.muted ? " (muted)" : ""} `,
            scoped("rooms:write", track.muted ? "Unmute" : "Mute", () =>
              attempt(() => api("POST", `${path(p.identity)}/tracks/${encodeURIComponent(track.sid)}/mute`,
                { muted: !track.muted }), `${track.muted ? "unmuted" : "muted"} ${track.sid}`)
                .then(loadParticipants))))),
      h("td", {},
        scoped("rooms:write", "Remove", async () => {
          const done = await attempt(() => api("DELETE", path(p.identity)), `removed ${p.identity}`);
          if (done !== undefined) loadParticipants();
        }, { class: "danger", "data-action": "remove" }))));
  $("#participants-table tbody").replaceChildren(...rows);
}

async function updateMetadata(event) {
  event.preventDefault();
  const metadata = $("#room-metadata").value;
  await attempt(() => api("PATCH", `/v1/rooms/${encodeURIComponent(currentRoom)}`, { metadata }),
    `metadata of ${currentRoom} updated`);
}

async function dispatchAgent(event) {
  event.preventDefault();
  const body = { agent_name: $("#dispatch-agent").value, metadata: $("#dispatch-metadata").value };
  const created = await attempt(() =>
    api("POST", `/v1/rooms/${encodeURIComponent(currentRoom)}/dispatches`, body));
  if (created) say(`dispatched ${body.agent_name}: ${created.id ?? ""}`);
}

async function deleteRoom() {
  const room = currentRoom;
  if (!confirm(`Delete room ${room}? Every participant is disconnected.`)) return;
  const done = await attempt(() => api("DELETE", `/v1/rooms/${encodeURIComponent(room)}`), `deleted ${room}`);
  if (done !== undefined) {
    currentRoom = null;
    $("#room").hidden = true;
    loadRooms();
  }
}

// --- sessions ------------------------------------------------------------------------------

const utc = (local) => (local ? new Date(local).toISOString() : "");

async function loadSessions(more) {
  const form = new FormData($("#sessions-filter"));
  const params = {
    room_name: form.get("room_name"), active: form.get("active"),
    start: utc(form.get("start")), end: utc(form.get("end")), limit: 50,
    page_token: more ? sessionsToken : "",
  };
  const request = ++latest.sessions;
  const page = await attempt(() => api("GET", `/v1/sessions${query(params)}`));
  if (!page || request !== latest.sessions) return;
  sessionsToken = page.next_page_token;
  $("#sessions-more").hidden = !sessionsToken;
  const rows = page.items.map((s) =>
    h("tr", { "data-session": s.session_id },
      h("td", {}, s.room_name),
      h("td", { class: "id" }, h("a", { href: "#", onclick: (e) => { e.preventDefault(); openSession(s.session_id); } }, s.session_id)),
      h("td", {}, time(s.created_at)),
      h("td", {}, s.ended_at ? time(s.ended_at) : "live"),
      h("td", { class: "num" }, `${s.num_active_participants} / ${s.num_participants}`),
      h("td", {}, s.egress)));
  const body = $("#sessions-table tbody");
  if (more) body.append(...rows); else body.replaceChildren(...rows);
}

async function openSession(id) {
  const session = await attempt(() => api("GET", `/v1/sessions/${encodeURIComponent(id)}`));
  if (!session) return;
  $("#session").hidden = false;
  $("#session-id").textContent = `${session.session_id} (${session.room_name})`;
  const start = Date.parse(session.start_time);
  const end = Date.parse(session.end_time ?? new Date().toISOString());
  const span = Math.max(end - start, 1);
  const percent = (t) => `${Math.min(Math.max(((Date.parse(t) - start) / span) * 100, 0), 100)}%`;
  const rows = session.participants.map((p) =>
    h("div", { class: "lane", "data-identity": p.participant_identity },
      h("div", { class: "who" },
        h("strong", {}, p.participant_identity), ` ${p.participant_name} · ${p.duration_seconds.toFixed(0)} s · `,
        Object.entries(p.published_sources).filter(([, on]) => on).map(([name]) => name).join(", ") || "nothing published"),
      h("div", { class: "bars" },
        p.sessions.map((c) => {
          const left = percent(c.joined_at);
          const right = percent(c.left_at ?? new Date(end).toISOString());
          const segment = h("span", {
            class: c.left_at ? "segment" : "segment open",
            title: `${c.participant_sid}: ${time(c.joined_at)} → ${c.left_at ? time(c.left_at) : "now"}`,
          });
          segment.style.left = left; // CSSOM, which the Content-Security-Policy allows
          segment.style.width = `calc(${right} - ${left})`;
          return segment;
        }))));
  const egress = session.egress.map((e) =>
    h("div", { class: "egress" }, `egress ${e.egress_id} ${e.status} ${time(e.started_at)} → ${time(e.ended_at)}`));
  $("#timeline").replaceChildren(...rows, ...egress);
}

// --- events --------------------------------------------------------------------------------

function eventRow(e) {
  return h("tr", { "data-event": e.event, "data-id": e.id },
    h("td", {}, time(e.created_at)),
    h("td", {}, e.event),
    h("td", {}, e.room_name ?? ""),
    h("td", {}, e.participant_identity ?? ""),
    h("td", { class: "id" }, e.id));
}

function eventFilters() {
  const form = new FormData($("#events-filter"));
  return {
    event: form.get("event"), room_name: form.get("room_name"),
    participant_identity: form.get("participant_identity"),
  };
}

async function loadEvents(more) {
  const params = { ...eventFilters(), limit: 50, page_token: more ? eventsToken : "" };
  const request = ++latest.events;
  const page = await attempt(() => api("GET", `/v1/webhooks/events${query(params)}`));
  if (!page || request !== latest.events) return;
  eventsToken = page.next_page_token;
  $("#events-more").hidden = !eventsToken;
  const body = $("#events-table tbody");
  const rows = page.items.map(eventRow);
  if (more) body.append(...rows); else body.replaceChildren(...rows);
  if (stopTail) startTail();
}

function startTail() {
  if (stopTail) stopTail();
  const seen = new Set([...document.querySelectorAll("#events-table tbody tr")].map((r) => r.dataset.id));
  stopTail = follow(`/v1/webhooks/events/stream${query(eventFilters())}`, ({ data }) => {
    if (seen.has(data.id)) return;
    seen.add(data.id);
    $("#events-table tbody").prepend(eventRow(data));
  }, (state) => { $("#tail-state").textContent = state; });
}

function toggleTail() {
  if ($("#tail").checked) {
    startTail();
  } else if (stopTail) {
    stopTail();
    stopTail = null;
    $("#tail-state").textContent = "";
  }
}

// --- wiring --------------------------------------------------------------------------------

const endpoints = endpointsView({ h, say, attempt, scoped, time });

$("#sign-in-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const value = $("#key").value.trim();
  $("#key").value = "";
  signIn(value);
});
$("#sign-out").addEventListener("click", signOut);
for (const button of document.querySelectorAll("#tabs button")) {
  button.addEventListener("click", () => show(button.dataset.tab));
}
$("#rooms-refresh").addEventListener("click", loadRooms);
$("#room-metadata-form").addEventListener("submit", updateMetadata);
$("#dispatch-form").addEventListener("submit", dispatchAgent);
$("#room-delete").addEventListener("click", deleteRoom);
$("#sessions-filter").addEventListener("submit", (e) => { e.preventDefault(); loadSessions(false); });
$("#sessions-more").addEventListener("click", () => loadSessions(true));
$("#events-filter").addEventListener("submit", (e) => { e.preventDefault(); loadEvents(false); });
$("#events-more").addEventListener("click", () => loadEvents(true));
$("#tail").addEventListener("change", toggleTail);
mountUsage($("#usage"), attempt);

if (key.get()) signIn(key.get());
