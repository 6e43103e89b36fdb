// The console's only way to the service: its REST routes, with the service key as the
// Bearer header. The key lives in this tab's sessionStorage, never in a URL or a cookie.

const KEY = "livekit-control-plane.key";

export const key = {
  get: () => sessionStorage.getItem(KEY),
  set: (value) => sessionStorage.setItem(KEY, value),
  clear: () => sessionStorage.removeItem(KEY),
};

/** An error response of the API: `status`, and the problem document's `code`/`detail`. */
export class ApiError extends Error {
  constructor(status, problem) {
    const detail = problem?.detail ?? problem?.title ?? "request failed";
    super(`${status} ${problem?.code ?? ""}: ${detail}`.replace(" : ", ": "));
    this.status = status;
    this.code = problem?.code;
    this.detail = detail;
  }
}

function headers(extra = {}) {
  const value = key.get();
  return value ? { Authorization: `Bearer ${value}`, ...extra } : extra;
}

/** `fetch` a JSON route: resolves to the body (null for 204), rejects with an ApiError. */
export async function api(method, path, body) {
  const init = { method, headers: headers(), credentials: "omit", cache: "no-store" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (response.status === 204) return null;
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { detail: text }; }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

/** A query string from an object, without empty values. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.append(name, value);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

/**
 * Follow a Server-Sent Events route with the Bearer header (EventSource cannot send one),
 * reconnecting after a drop with `Last-Event-ID` so no event is missed.
 * `onEvent({event, id, data})` gets each event; `onState(text)` "live", "reconnecting" ...
 * Returns a function that stops following.
 */
export function follow(path, onEvent, onState) {
  const controller = new AbortController();
  let lastId = null;
  let retryMs = 1000;

  async function connect() {
    while (!controller.signal.aborted) {
      try {
        const extra = { Accept: "text/event-stream" };
        if (lastId) extra["Last-Event-ID"] = lastId;
        const response = await fetch(path, {
          headers: headers(extra), signal: controller.signal, credentials: "omit", cache: "no-store",
        });
        if (!response.ok) {
          const problem = await response.json().catch(() => null);
          throw new ApiError(response.status, problem);
        }
        await read(response.body); // "live" once the first frame says the stream follows
        onState("reconnecting");
      } catch (error) {
        if (controller.signal.aborted) return;
        if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
          onState(`stopped: ${error.message}`);
          return;
        }
        onState("reconnecting");
      }
      await new Promise((resolve) => setTimeout(resolve, retryMs));
    }
  }

  async function read(body) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let frame = {};
    let following = false;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let newline;
      while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + (buffer.startsWith("\r\n", newline) ? 2 : 1));
        if (line === "") {
          if (!following) {
            following = true; // the server fixed where it follows from (its first frame)
            onState("live");
          }
          if (frame.retry && /^\d+$/.test(frame.retry)) retryMs = Number(frame.retry);
          if (frame.id) lastId = frame.id;
          if (frame.data !== undefined) {
            onEvent({ event: frame.event ?? "message", id: frame.id, data: JSON.parse(frame.data) });
          }
          frame = {};
        } else if (!line.startsWith(":")) {
          const colon = line.indexOf(":");
          const name = colon < 0 ? line : line.slice(0, colon);
          const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          frame[name] = name === "data" && frame.data !== undefined ? `${frame.data}\n${value}` : value;
        }
      }
    }
  }

  connect();
  return () => controller.abort();
}
