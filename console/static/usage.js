// The console's Usage view: GET /v1/usage over a date range, drawn as participant-minutes per
// day (bars) and peak concurrent participants (line) in inline SVG, with every figure of the
// chosen grouping in a table. Each chart point carries its figures in data attributes
// (data-day, data-minutes, data-peak).
import { api, query } from "./api.js";

const SVG = "http://www.w3.org/2000/svg";
const CHART = { width: 900, height: 260, left: 56, right: 48, top: 16, bottom: 40 };
const DAY_MS = 86_400_000;
let attempt = (action) => action();
let latest = 0; // only the newest request renders

/** An element (HTML, or SVG when `namespace` is given) with attributes and children. */
function el(tag, attributes = {}, children = [], namespace = null) {
  const element = namespace ? document.createElementNS(namespace, tag) : document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (value !== false && value != null) element.setAttribute(name, String(value));
  }
  element.append(...children.filter((child) => child != null));
  return element;
}
const svg = (tag, attributes = {}, children = []) => el(tag, attributes, children, SVG);

const isoDay = (date) => date.toISOString().slice(0, 10);
const round = (value, digits = 1) => (Number(value) || 0).toFixed(digits);

/** The form: a UTC date range (both days included), the grouping and an optional room. */
function form() {
  const today = new Date();
  const monthAgo = new Date(today.getTime() - 29 * DAY_MS);
  return el("form", { id: "usage-filter", class: "inline", onsubmit: (e) => { e.preventDefault(); loadUsage(); } }, [
    el("label", {}, ["From (UTC) ", el("input", { name: "start", type: "date", value: isoDay(monthAgo), required: true })]),
    el("label", {}, ["To (UTC) ", el("input", { name: "end", type: "date", value: isoDay(today), required: true })]),
    el("label", {}, ["Group by ", el("select", { name: "group_by" },
      ["day", "room", "identity"].map((value) => el("option", { value }, [value])))]),
    el("label", {}, ["Room ", el("input", { name: "room_name" })]),
    el("button", { type: "submit" }, ["Show"]),
  ]);
}

/** Build the view inside `section` once; `run` reports an action's failure (app.js's `attempt`). */
export function mountUsage(section, run) {
  attempt = run;
  section.replaceChildren(
    el("div", { class: "bar" }, [el("h2", {}, ["Usage"])]),
    form(),
    el("figure", { id: "usage-chart" }),
    el("table", { id: "usage-table" }, [el("thead"), el("tbody")]),
  );
}

/** The query of the form: RFC 3339 bounds, `end` the midnight after the last day. */
function params(groupBy) {
  const data = new FormData(document.querySelector("#usage-filter"));
  const end = new Date(`${data.get("end")}T00:00:00Z`);
  return {
    start: `${data.get("start")}T00:00:00Z`,
    end: new Date(end.getTime() + DAY_MS).toISOString().replace(".000Z", "Z"),
    group_by: groupBy ?? data.get("group_by"),
    room_name: data.get("room_name"),
  };
}

/** Fetch and draw: the chart always by day, the table by the chosen grouping. */
export async function loadUsage() {
  const request = ++latest;
  const chosen = params();
  const byDay = params("day");
  await attempt(async () => {
    const days = await api("GET", `/v1/usage${query(byDay)}`);
    const table = chosen.group_by === "day" ? days : await api("GET", `/v1/usage${query(chosen)}`);
    if (request !== latest) return;
    drawChart(days.items);
    drawTable(table.items, chosen.group_by);
  });
}

/** Bars of participant-minutes (left scale) and a line of peak concurrency (right scale). */
function drawChart(items) {
  const { width, height, left, right, top, bottom } = CHART;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const maxMinutes = Math.max(1, ...items.map((i) => i.participant_minutes));
  const maxPeak = Math.max(1, ...items.map((i) => i.peak_concurrent_participants));
  const slot = plotW / Math.max(items.length, 1);
  const x = (index) => left + slot * index + slot / 2;
  const yMinutes = (value) => top + plotH - (value / maxMinutes) * plotH;
  const yPeak = (value) => top + plotH - (value / maxPeak) * plotH;

  const axes = [
    svg("line", { x1: left, y1: top + plotH, x2: left + plotW, y2: top + plotH, stroke: "#94a3b8" }),
    svg("text", { x: left - 6, y: top + 10, "text-anchor": "end", "font-size": 11, fill: "#2563eb" }, [round(maxMinutes, 0)]),
    svg("text", { x: left - 6, y: top + plotH, "text-anchor": "end", "font-size": 11, fill: "#2563eb" }, ["0"]),
    svg("text", { x: left + plotW + 6, y: top + 10, "font-size": 11, fill: "#ea580c" }, [String(maxPeak)]),
    svg("text", { x: 4, y: top - 4, "font-size": 11, fill: "#2563eb" }, ["participant-minutes"]),
    svg("text", { x: width - 4, y: top - 4, "text-anchor": "end", "font-size": 11, fill: "#ea580c" }, ["peak concurrent"]),
  ];
  const labelEvery = Math.max(1, Math.ceil(items.length / 12));
  const bars = items.map((item, index) => {
    const barW = Math.max(slot * 0.7, 1);
    const y = yMinutes(item.participant_minutes);
    return svg("rect", {
      class: "usage-bar", x: x(index) - barW / 2, y, width: barW, height: top + plotH - y, fill: "#93c5fd",
      "data-day": item.key, "data-minutes": item.participant_minutes,
    }, [svg("title", {}, [`${item.key}: ${round(item.participant_minutes)} participant-minutes`])]);
  });
  const labels = items.map((item, index) => index % labelEvery ? null :
    svg("text", { x: x(index), y: top + plotH + 16, "text-anchor": "middle", "font-size": 10, fill: "#475569" },
      [String(item.key).slice(5)]));
  const path = items.map((item, index) => `${index ? "L" : "M"}${x(index)},${yPeak(item.peak_concurrent_participants)}`).join(" ");
  const line = items.length ? svg("path", { d: path, fill: "none", stroke: "#ea580c", "stroke-width": 2 }) : null;
  const points = items.map((item, index) =>
    svg("circle", {
      class: "usage-peak", cx: x(index), cy: yPeak(item.peak_concurrent_participants), r: 3.5, fill: "#ea580c",
      "data-day": item.key, "data-peak": item.peak_concurrent_participants,
    }, [svg("title", {}, [`${item.key}: peak ${item.peak_concurrent_participants} concurrent`])]));
  const chart = svg("svg", {
    viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img",
    "aria-label": "participant-minutes per day and peak concurrent participants",
  }, [...axes, ...bars, ...labels, line, ...points]);
  const figure = document.querySelector("#usage-chart");
  figure.replaceChildren(chart);
  if (!items.length) figure.append(el("figcaption", { class: "hint" }, ["no usage in this range"]));
}

const egressText = (byType) =>
  Object.entries(byType ?? {}).map(([type, minutes]) => `${type} ${round(minutes)}`).join(", ");
const egressTotal = (byType) => Object.values(byType ?? {}).reduce((sum, m) => sum + Number(m), 0);

/** `element`, kept on one line (CSSOM, which the Content-Security-Policy allows). */
function nowrap(element) {
  element.style.whiteSpace = "nowrap";
  return element;
}

/** One row per item with every figure the API gives. */
function drawTable(items, groupBy) {
  const head = ["day", "room", "identity"].includes(groupBy) ? groupBy : "key";
  const columns = [head, "Participant-minutes", "Sessions", "Peak concurrent", "Egress minutes", "Ingress minutes", "SIP minutes"];
  const table = document.querySelector("#usage-table");
  table.tHead.replaceChildren(el("tr", {}, columns.map((c) => el("th", {}, [c]))));
  table.tBodies[0].replaceChildren(...items.map((item) =>
    el("tr", { "data-key": item.key }, [
      nowrap(el("td", {}, [String(item.key)])),
      el("td", { class: "num" }, [round(item.participant_minutes)]),
      el("td", { class: "num" }, [String(item.sessions)]),
      el("td", { class: "num" }, [String(item.peak_concurrent_participants)]),
      el("td", { class: "num", title: egressText(item.egress_minutes) }, [
        round(egressTotal(item.egress_minutes)),
        egressText(item.egress_minutes) ? el("div", { class: "hint" }, [egressText(item.egress_minutes)]) : null,
      ]),
      el("td", { class: "num" }, [round(item.ingress_minutes)]),
      el("td", { class: "num" }, [round(item.sip_minutes)]),
    ])));
}
