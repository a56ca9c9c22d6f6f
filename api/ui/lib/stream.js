// Server-Sent Events read over fetch, so the Authorization header goes along
// (EventSource cannot send it). Resumes with Last-Event-ID after a dropped connection;
// stops when `signal` is aborted, when a final event arrives, or when the server ends
// the stream with nothing new.

import { authHeaders, errorOf, ApiError } from "./api.js";

const FINAL = new Set(["completed", "failed", "cancelled"]);

/** Parse SSE text into messages; returns [messages, rest] (rest: an unfinished one). */
export function parseSse(text) {
  const messages = [];
  const blocks = text.split(/\r?\n\r?\n/);
  const rest = blocks.pop();
  for (const block of blocks) {
    const msg = { id: null, event: "message", data: "" };
    const data = [];
    for (const line of block.split(/\r?\n/)) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "id") msg.id = value;
      else if (field === "event") msg.event = value;
      else if (field === "data") data.push(value);
    }
    if (!data.length) continue;
    msg.data = data.join("\n");
    messages.push(msg);
  }
  return [messages, rest];
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}

/**
 * Follow `path` (an SSE endpoint). `onEvent({id, event, data})` gets each message, with
 * `data` parsed as JSON when it is JSON. `onState(state)` hears "open", "retrying" and
 * "ended". Resolves when the stream is over; throws ApiError on an error status (401
 * also signs out).
 */
export async function stream(path, { signal, onEvent, onState = () => {}, lastEventId = null, isFinal = (m) => FINAL.has(m.event) } = {}) {
  let last = lastEventId;
  let failures = 0;
  while (!signal?.aborted) {
    let received = 0;
    let finished = false;
    try {
      const headers = authHeaders({ Accept: "text/event-stream" });
      if (last !== null && last !== undefined) headers["Last-Event-ID"] = String(last);
      const res = await fetch(path, { headers, signal, cache: "no-store" });
      if (!res.ok) throw await errorOf(res);
      onState("open");
      failures = 0;
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        const [messages, rest] = parseSse(buffer);
        buffer = rest;
        for (const msg of messages) {
          let data = msg.data;
          try { data = JSON.parse(msg.data); } catch { /* plain text */ }
          const parsed = { id: msg.id, event: msg.event, data };
          if (msg.id !== null) last = msg.id;
          received += 1;
          onEvent?.(parsed);
          if (isFinal(parsed)) finished = true;
        }
      }
    } catch (err) {
      if (signal?.aborted || err.name === "AbortError") return;
      if (err instanceof ApiError && err.status !== 0 && err.status < 500) throw err;
      failures += 1;
      onState("retrying");
      await sleep(Math.min(1000 * 2 ** Math.min(failures - 1, 4), 15000), signal);
      continue;
    }
    // a clean end: the job ended (its final event came) or nothing was left to say
    if (finished || received === 0) break;
  }
  if (!signal?.aborted) onState("ended");
}
