// #/jobs: the tenant's jobs, newest first, refreshed every few seconds, with filters
// (status, strategy, model) kept in the address so a filtered list can be shared.

import { note, clear } from "../lib/dom.js";
import * as fmt from "../lib/format.js";

const POLL_MS = 3000;
const STATUSES = ["queued", "running", "completed", "failed", "cancelled"];

export async function render(root, params, { api, h, signal, setTitle }) {
  setTitle("Jobs");
  const query = params.query;
  const filters = {
    status: query.get("status") || "",
    strategy: query.get("strategy") || "",
    model: query.get("model") || "",
  };

  const status = h("select", { id: "f-status", "data-testid": "filter-status" },
    h("option", { value: "" }, "Any status"),
    STATUSES.map((s) => h("option", { value: s, selected: s === filters.status }, fmt.status(s).textContent)));
  const strategy = h("select", { id: "f-strategy", "data-testid": "filter-strategy" },
    h("option", { value: "" }, "Any strategy"));
  const model = h("select", { id: "f-model", "data-testid": "filter-model" },
    h("option", { value: "" }, "Any model"));
  const live = h("span", { class: "muted small", "aria-live": "polite", "data-testid": "jobs-live" });
  const body = h("div", { "data-testid": "jobs-body" }, note("loading", "Loading your jobs…"));
  const more = h("button", { type: "button", hidden: true, "data-testid": "jobs-more" }, "Show older jobs");

  root.append(
    h("div", { class: "pagehead" },
      h("h1", {}, "Jobs"),
      h("span", { class: "spacer" }),
      live,
      h("a", { class: "button primary", href: "#/playground", "data-testid": "new-job" }, "New job")),
    h("p", { class: "help" },
      "Each job runs one problem through a test-time-compute strategy on a model, within a budget, and keeps the best answer it finds. The list refreshes by itself."),
    h("div", { class: "card" },
      h("div", { class: "filters", role: "search" },
        h("div", {}, h("label", { for: "f-status" }, "Status"), status),
        h("div", {}, h("label", { for: "f-strategy" }, "Strategy"), strategy),
        h("div", {}, h("label", { for: "f-model" }, "Model"), model)),
      body,
      more),
  );

  // the filters' choices come from the catalog (failures here only leave "Any")
  api("/v1/strategies", { signal }).then((list) => {
    for (const s of list) {
      if (s.name !== filters.strategy) strategy.append(h("option", { value: s.name }, s.name));
    }
  }).catch(() => {});
  api("/v1/models", { signal }).then((list) => {
    for (const m of list) {
      if (m.kind === "chat" && m.name !== filters.model) model.append(h("option", { value: m.name }, m.name));
    }
  }).catch(() => {});
  if (filters.strategy) strategy.append(h("option", { value: filters.strategy, selected: true }, filters.strategy));
  if (filters.model) model.append(h("option", { value: filters.model, selected: true }, filters.model));

  let first = []; // the newest page, refreshed by the poll
  let older = []; // pages loaded with "Show older jobs" (not refreshed)
  let cursor = null;
  let timer = null;
  let generation = 0;

  function listPath(extra = {}) {
    const q = new URLSearchParams({ limit: "50" });
    for (const [k, v] of Object.entries({ ...filters, ...extra })) if (v) q.set(k, v);
    return `/v1/jobs?${q}`;
  }

  function draw() {
    const rows = [...first, ...older.filter((j) => !first.some((f) => f.id === j.id))];
    clear(body);
    if (!rows.length) {
      const filtered = filters.status || filters.strategy || filters.model;
      body.append(note("empty", filtered
        ? "No jobs match these filters. Choose “Any” to see all your jobs."
        : h("span", {}, "No jobs yet. A job is one problem, a strategy to attack it and a budget. ",
            h("a", { href: "#/playground" }, "Open the playground"), " to submit your first one.")));
      more.hidden = true;
      return;
    }
    body.append(table(rows));
    more.hidden = !cursor;
  }

  function table(rows) {
    return h("div", { class: "table-wrap" },
      h("table", { class: "stack", "data-testid": "jobs-table" },
        h("thead", {}, h("tr", {},
          h("th", {}, "Job"), h("th", {}, "Status"), h("th", {}, "Strategy"),
          h("th", { class: "hide-narrow" }, "Model"),
          h("th", { class: "num" }, "Tokens"),
          h("th", { class: "num hide-narrow" }, "Cost"),
          h("th", { class: "num" }, "Best"),
          h("th", { class: "hide-narrow" }, "Age"))),
        h("tbody", {}, rows.map(row))));
  }

  function row(job) {
    const best = job.result ? job.result.score : job.progress?.best_score;
    const verified = job.result ? job.result.verified : job.progress?.verified;
    return h("tr", { "data-testid": "job-row", "data-job-id": job.id, "data-status": job.status },
      h("td", {}, h("a", { href: `#/jobs/${job.id}`, class: "mono", title: job.id, "aria-label": `Job ${job.id}` }, fmt.shortId(job.id))),
      h("td", {}, fmt.status(job.status), job.cancel_requested && !["cancelled", "completed", "failed"].includes(job.status) ? h("span", { class: "muted small" }, " cancelling") : null),
      h("td", {}, job.strategy.name),
      h("td", { class: "hide-narrow" }, job.model),
      h("td", { class: "num", "data-label": "Tokens", title: `${fmt.count(job.usage.tokens)} of ${job.budget.max_tokens ? fmt.count(job.budget.max_tokens) : "no cap"}` },
        fmt.tokens(job.usage.tokens), h("span", { class: "muted" }, ` / ${job.budget.max_tokens ? fmt.tokens(job.budget.max_tokens) : "∞"}`)),
      h("td", { class: "num hide-narrow" }, fmt.cost(job.usage.cost_usd),
        job.budget.max_cost_usd ? h("span", { class: "muted" }, ` / ${fmt.cost(job.budget.max_cost_usd)}`) : null),
      h("td", { class: "num", "data-label": "Best" }, fmt.score(best), verified ? [" ", h("span", { class: "badge ok", title: "verified" }, "✓")] : null),
      h("td", { class: "hide-narrow", title: fmt.when(job.created_at) }, fmt.age(job.created_at)));
  }

  async function refresh() {
    const mine = generation;
    try {
      const page = await api(listPath(), { signal });
      if (mine !== generation || signal.aborted) return;
      first = page.data;
      if (!older.length) cursor = page.next_cursor;
      live.textContent = `Updated ${new Date().toLocaleTimeString()}`;
      draw();
    } catch (err) {
      if (signal.aborted || err.name === "AbortError") return;
      live.textContent = "";
      clear(body).append(note("error", `The jobs could not be loaded: ${err.detail || err.message} It will be tried again in a few seconds.`));
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
  signal.addEventListener("abort", () => clearTimeout(timer));

  function onFilter() {
    filters.status = status.value;
    filters.strategy = strategy.value;
    filters.model = model.value;
    const q = new URLSearchParams(Object.entries(filters).filter(([, v]) => v));
    history.replaceState(null, "", `#/jobs${q.toString() ? `?${q}` : ""}`);
    generation += 1;
    first = [];
    older = [];
    cursor = null;
    clear(body).append(note("loading", "Loading…"));
    refresh();
  }
  for (const el of [status, strategy, model]) el.addEventListener("change", onFilter);

  more.addEventListener("click", async () => {
    if (!cursor) return;
    more.disabled = true;
    try {
      const page = await api(listPath({ cursor }), { signal });
      older = [...older, ...page.data];
      cursor = page.next_cursor;
      draw();
    } catch (err) {
      if (!signal.aborted) body.append(note("error", `Older jobs could not be loaded: ${err.detail || err.message}`));
    } finally {
      more.disabled = false;
    }
  });

  await refresh();
  schedule();
}
