// #/batches: the tenant's batches, newest first, each with its progress, refreshed while
// any of them runs.

import { note, clear } from "../lib/dom.js";
import * as fmt from "../lib/format.js";
import { stacked } from "../lib/tables.js";
import { batchLabel } from "./batch.js";

const POLL_MS = 4000;
const STATUSES = ["queued", "running", "completed", "cancelled"];

export async function render(root, params, { api, h, signal, setTitle }) {
  setTitle("Batches");
  const filters = { status: params.query.get("status") || "" };
  const status = h("select", { id: "b-status", "data-testid": "batches-filter-status" },
    h("option", { value: "" }, "Any status"),
    STATUSES.map((s) => h("option", { value: s, selected: s === filters.status }, fmt.status(s).textContent)));
  const live = h("span", { class: "muted small", "aria-live": "polite" });
  const body = h("div", { "data-testid": "batches-body" }, note("loading", "Loading your batches…"));
  const more = h("button", { type: "button", hidden: true, "data-testid": "batches-more" }, "Show older batches");

  root.append(
    h("div", { class: "pagehead" }, h("h1", {}, "Batches"), h("span", { class: "spacer" }), live),
    h("p", { class: "help" },
      "A batch runs many problems — its items — as jobs, a few at a time, and reports accuracy and spend per strategy. Open one to see its chart and download its results."),
    h("div", { class: "card" },
      h("div", { class: "filters", role: "search" }, h("div", {}, h("label", { for: "b-status" }, "Status"), status)),
      body,
      more),
  );

  let first = [];
  let older = [];
  let cursor = null;
  let timer = null;
  let generation = 0;
  signal.addEventListener("abort", () => clearTimeout(timer));

  function path(extra = {}) {
    const q = new URLSearchParams({ limit: "50" });
    for (const [k, v] of Object.entries({ ...filters, ...extra })) if (v) q.set(k, v);
    return `/v1/batches?${q}`;
  }

  function draw() {
    const rows = [...first, ...older.filter((b) => !first.some((f) => f.id === b.id))];
    clear(body);
    if (!rows.length) {
      body.append(note("empty", filters.status
        ? "No batch has this status. Choose “Any status” to see them all."
        : h("span", {}, "No batches yet. Create one with ", h("code", {}, "POST /v1/batches"),
          " (inline items, a JSON Lines file, a dataset such as ", h("code", {}, "game24"),
          ", or a re-run of past jobs) or ", h("code", {}, "ponder batches submit FILE"), "; a schedule also makes them.")));
      more.hidden = true;
      return;
    }
    body.append(h("div", { class: "table-wrap" },
      stacked(h("table", { "data-testid": "batches-table" },
        h("thead", {}, h("tr", {},
          h("th", {}, "Batch"), h("th", {}, "Status"), h("th", {}, "Progress"),
          h("th", { class: "hide-narrow" }, "Source"),
          h("th", { class: "num" }, "Tokens"), h("th", { class: "num hide-narrow" }, "Cost"),
          h("th", { class: "hide-narrow" }, "Created"))),
        h("tbody", {}, rows.map(row))))));
    more.hidden = !cursor;
  }

  function row(b) {
    const c = b.counts;
    const done = c.completed + c.failed + c.cancelled;
    return h("tr", { "data-testid": "batch-row", "data-batch-id": b.id, "data-status": b.status },
      h("td", {}, h("a", { href: `#/batches/${b.id}`, title: b.id, "aria-label": `Batch ${batchLabel(b)}` }, batchLabel(b))),
      h("td", {}, fmt.status(b.status)),
      h("td", {},
        h("progress", { max: String(Math.max(c.total, 1)), value: String(done), "aria-label": `${done} of ${c.total} items finished` }),
        h("span", { class: "small" }, ` ${fmt.count(done)} / ${fmt.count(c.total)}`),
        c.failed ? h("span", { class: "small muted" }, ` (${fmt.count(c.failed)} failed)`) : null),
      h("td", { class: "hide-narrow" }, b.source === "dataset" ? `dataset ${b.dataset}` : b.source.replace("_", " ")),
      h("td", { class: "num" }, fmt.tokens(b.usage.tokens)),
      h("td", { class: "num hide-narrow" }, fmt.cost(b.usage.cost_usd)),
      h("td", { class: "hide-narrow", title: fmt.when(b.created_at) }, fmt.age(b.created_at)));
  }

  async function refresh() {
    const mine = generation;
    try {
      const page = await api(path(), { signal });
      if (mine !== generation || signal.aborted) return;
      first = page.data;
      if (!older.length) cursor = page.next_cursor;
      live.textContent = first.some((b) => b.status === "queued" || b.status === "running")
        ? `Updated ${new Date().toLocaleTimeString()}` : "";
      draw();
    } catch (err) {
      if (signal.aborted || err.name === "AbortError") return;
      clear(body).append(note("error", `Your batches could not be loaded: ${err.detail || err.message} It will be tried again in a few seconds.`));
    }
  }

  function schedule() {
    clearTimeout(timer);
    if (signal.aborted) return;
    timer = setTimeout(async () => {
      if (!document.hidden) await refresh();
      schedule();
    }, POLL_MS);
  }

  status.addEventListener("change", () => {
    filters.status = status.value;
    history.replaceState(null, "", `#/batches${filters.status ? `?status=${filters.status}` : ""}`);
    generation += 1;
    first = [];
    older = [];
    cursor = null;
    clear(body).append(note("loading", "Loading…"));
    refresh();
  });

  more.addEventListener("click", async () => {
    if (!cursor) return;
    more.disabled = true;
    try {
      const page = await api(path({ cursor }), { signal });
      older = [...older, ...page.data];
      cursor = page.next_cursor;
      draw();
    } catch (err) {
      if (!signal.aborted) body.append(note("error", `Older batches could not be loaded: ${err.detail || err.message}`));
    } finally {
      more.disabled = false;
    }
  });

  await refresh();
  schedule();
}
