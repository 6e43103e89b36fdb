// The Endpoints view: the app's webhook endpoints (the relay of stored events), each one's
// recent deliveries, and its actions (test, replay the last hour, rotate the secret,
// enable or disable, delete). Its section is built here; app.js shows it as a tab.
import { api, query } from "./api.js";

const REPLAY_WINDOW_MS = 3600 * 1000;
const DELIVERIES_SHOWN = 20;

/**
 * The view, given the console's helpers `{ h, say, attempt, scoped, time }` (see app.js).
 * Returns `{ load }`: render the section `#endpoints` and list the endpoints.
 */
export function endpointsView({ h, say, attempt, scoped, time }) {
  const section = document.querySelector("#endpoints");
  let opened = null; // the endpoint whose deliveries are shown

  function build() {
    if (section.childElementCount) return;
    const form = h("form", { id: "endpoint-form", class: "inline", onsubmit: create },
      h("label", {}, "URL ", h("input", { name: "url", type: "url", required: true, size: 40 })),
      h("label", {}, "Events ", h("input", { name: "event_types", placeholder: "all (or room_started, ...)" })),
      h("label", {}, "Rooms ", h("input", { name: "room_name_pattern", placeholder: "all (or lobby-*)" })),
      scoped("webhooks:write", "Add endpoint", null, { type: "submit" }));
    section.append(
      h("div", { class: "bar" }, h("h2", {}, "Webhook endpoints"),
        h("button", { type: "button", id: "endpoints-refresh", onclick: load }, "Refresh")),
      form,
      h("p", { id: "endpoint-secret", class: "hint", hidden: true }),
      h("table", { id: "endpoints-table" },
        h("thead", {}, h("tr", {}, ["URL", "Events", "Rooms", "State", "Id", ""].map((t) => h("th", {}, t)))),
        h("tbody")),
      h("div", { id: "deliveries", hidden: true },
        h("h3", {}, "Deliveries of ", h("span", { id: "deliveries-of" })),
        h("table", { id: "deliveries-table" },
          h("thead", {}, h("tr", {}, ["Event", "Status", "Attempts", "Last status", "Last error", "Next attempt", "Id"]
            .map((t) => h("th", {}, t)))),
          h("tbody"))));
  }

  /** Show a signing secret once (creation, rotation): it is never shown again. */
  function showSecret(endpoint) {
    const box = section.querySelector("#endpoint-secret");
    box.hidden = false;
    box.replaceChildren(`Signing secret of ${endpoint.id} (shown once): `,
      h("code", { class: "secret" }, endpoint.signing_secret));
  }

  async function create(event) {
    event.preventDefault();
    const form = new FormData(event.target);
    const types = String(form.get("event_types") || "").split(",").map((t) => t.trim()).filter(Boolean);
    const body = { url: form.get("url"), event_types: types, room_name_pattern: form.get("room_name_pattern") || "" };
    const created = await attempt(() => api("POST", "/v1/webhooks/endpoints", body), "endpoint added");
    if (!created) return;
    event.target.reset();
    showSecret(created);
    opened = created.id;
    await load();
  }

  const path = (id, tail = "") => `/v1/webhooks/endpoints/${encodeURIComponent(id)}${tail}`;

  function row(e) {
    const act = (label, scope, run, done, extra = {}) =>
      scoped(scope, label, async () => {
        const result = await attempt(run, done);
        if (result !== undefined) {
          if (result?.signing_secret) showSecret(result);
          opened = e.id;
          await load();
        }
      }, extra);
    const since = () => new Date(Date.now() - REPLAY_WINDOW_MS).toISOString();
    return h("tr", { "data-endpoint": e.id },
      h("td", {}, h("a", { href: "#", onclick: (ev) => { ev.preventDefault(); openDeliveries(e.id); } }, e.url)),
      h("td", {}, e.event_types.join(", ") || "all"),
      h("td", {}, e.room_name_pattern || "all"),
      h("td", { class: "state" }, e.enabled ? "enabled" : `disabled${e.disabled_reason ? `: ${e.disabled_reason}` : ""}`),
      h("td", { class: "id" }, e.id),
      h("td", {},
        act("Test", "webhooks:write", () => api("POST", path(e.id, "/test")), `test event queued for ${e.id}`,
          { "data-action": "test" }),
        act("Replay 1 h", "webhooks:write", () => api("POST", path(e.id, "/replay"), { since: since() }),
          `replay of the last hour queued for ${e.id}`, { "data-action": "replay" }),
        act("Rotate secret", "webhooks:write", () => api("POST", path(e.id, "/rotate-secret")),
          `secret of ${e.id} rotated; the old one signs for 24 h`, { "data-action": "rotate" }),
        act(e.enabled ? "Disable" : "Enable", "webhooks:write",
          () => api("PATCH", path(e.id), { enabled: !e.enabled }),
          `${e.id} ${e.enabled ? "disabled" : "enabled"}`, { "data-action": "toggle" }),
        act("Delete", "webhooks:write", () => api("DELETE", path(e.id)), `deleted ${e.id}`,
          { class: "danger", "data-action": "delete" })));
  }

  async function load() {
    build();
    const page = await attempt(() => api("GET", `/v1/webhooks/endpoints${query({ limit: 100 })}`));
    if (!page) return;
    section.querySelector("#endpoints-table tbody").replaceChildren(...page.items.map(row));
    if (opened && page.items.some((e) => e.id === opened)) await openDeliveries(opened);
    else section.querySelector("#deliveries").hidden = true;
  }

  async function openDeliveries(id) {
    opened = id;
    const page = await attempt(() => api("GET", path(id, `/deliveries${query({ limit: DELIVERIES_SHOWN })}`)));
    if (!page || opened !== id) return;
    section.querySelector("#deliveries").hidden = false;
    section.querySelector("#deliveries-of").textContent = id;
    const rows = page.items.map((d) =>
      h("tr", { "data-delivery": d.id, "data-status": d.status },
        h("td", {}, `${d.event} ${d.event_id}`),
        h("td", {}, d.status),
        h("td", { class: "num" }, String(d.attempts)),
        h("td", { class: "num" }, d.last_status_code == null ? "" : String(d.last_status_code)),
        h("td", {}, d.last_error ?? ""),
        h("td", {}, time(d.next_attempt_at)),
        h("td", { class: "id" }, d.id)));
    section.querySelector("#deliveries-table tbody").replaceChildren(...rows);
  }

  return { load };
}
