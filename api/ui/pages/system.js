// #/system: what the deployment is doing now (GET /v1/system), refreshed every few
// seconds: workers and the jobs they run, jobs waiting by priority, each model's
// concurrency in use, and the tenant's webhook deliveries.

import { note, clear } from "../lib/dom.js";
import * as fmt from "../lib/format.js";
import { stacked } from "../lib/tables.js";

const POLL_MS = 5000;

/** Seconds between two ISO times (b defaults to now). */
function secondsSince(iso, nowIso) {
  return iso ? Math.max(0, (Date.parse(nowIso) - Date.parse(iso)) / 1000) : null;
}

function gauge(h, used, limit, label, testid) {
  const share = limit ? Math.min(1, used / limit) : 0;
  const fill = h("div", { class: `fill${share >= 1 ? " full" : share >= 0.8 ? " high" : ""}` });
  fill.style.width = `${Math.round(share * 100)}%`; // CSSOM, allowed by the page's policy
  return h("div", { class: "gauge", "data-testid": testid },
    h("div", { class: "bar", role: "meter", "aria-valuemin": "0", "aria-valuemax": String(limit || 0), "aria-valuenow": String(used), "aria-label": label }, fill),
    h("span", { class: "small" }, `${fmt.count(used)} of ${fmt.count(limit)}`));
}

export async function render(root, params, { api, h, signal, setTitle }) {
  setTitle("System");
  const auto = h("input", { type: "checkbox", id: "sys-auto", checked: true, "data-testid": "system-auto" });
  const live = h("span", { class: "muted small", "aria-live": "polite", "data-testid": "system-live" });
  const refreshBtn = h("button", { type: "button", "data-testid": "system-refresh" }, "Refresh now");
  const body = h("div", { "data-testid": "system-body" }, note("loading", "Loading what the service is doing…"));
  root.append(
    h("div", { class: "pagehead" },
      h("h1", {}, "System"),
      h("span", { class: "spacer" }),
      live,
      h("label", { class: "inline", for: "sys-auto" }, auto, "Refresh every 5 s"),
      refreshBtn),
    h("p", { class: "help" },
      "What the Ponder service is doing right now. Workers run jobs; jobs wait in the queue until a worker is free. Numbers about workers, the queue and models count every user of this service; job ids and webhook deliveries shown are only yours."),
    body,
  );

  let timer = null;
  let last = null;
  signal.addEventListener("abort", () => clearTimeout(timer));

  function draw(s) {
    clear(body).append(
      overview(s),
      workersCard(s),
      h("div", { class: "grid2" }, queueCard(s), webhooksCard(s)),
      modelsCard(s),
    );
  }

  function overview(s) {
    const alive = s.workers.filter((w) => w.alive);
    const capacity = alive.reduce((n, w) => n + (w.max_jobs || 0), 0);
    const waited = secondsSince(s.queue.oldest_since, s.now);
    return h("div", { class: "gauges card", "data-testid": "system-overview" },
      h("div", {}, h("div", { class: "what" }, "Workers running"),
        h("div", { class: "big", "data-testid": "overview-workers" }, fmt.count(alive.length)),
        h("div", { class: "small muted" }, alive.length ? `${fmt.count(capacity)} job slots in all` : "no worker is running")),
      h("div", {}, h("div", { class: "what" }, "Jobs running"),
        h("div", { class: "big", "data-testid": "overview-running" }, fmt.count(s.queue.running)),
        h("div", { class: "small muted" }, `${fmt.count(s.queue.your_running)} of them yours`)),
      h("div", {}, h("div", { class: "what" }, "Jobs waiting"),
        h("div", { class: "big", "data-testid": "overview-waiting" }, fmt.count(s.queue.waiting + s.queue.held)),
        h("div", { class: "small muted" }, waited === null ? "nothing waits" : `the longest for ${fmt.duration(waited)}`)),
      h("div", {}, h("div", { class: "what" }, "Your webhooks pending"),
        h("div", { class: "big", "data-testid": "overview-webhooks" }, fmt.count(s.webhooks.pending)),
        h("div", { class: "small muted" }, s.webhooks.retrying ? `${fmt.count(s.webhooks.retrying)} retrying after a failure` : "none failing")));
  }

  function workersCard(s) {
    const card = h("div", { class: "card" }, h("h2", {}, "Workers"));
    if (!s.workers.length) {
      card.append(note("empty", h("span", {}, "No worker is running, so jobs wait in the queue. Start one with ",
        h("code", {}, "ponder worker"), " (it shows here within seconds).")));
      return card;
    }
    card.append(h("div", { class: "table-wrap" }, stacked(h("table", { "data-testid": "workers-table" },
      h("thead", {}, h("tr", {},
        h("th", {}, "Worker"), h("th", {}, "State"), h("th", {}, "Jobs running"),
        h("th", { class: "hide-narrow" }, "Started"), h("th", { class: "hide-narrow" }, "Last heartbeat"),
        h("th", {}, "Your jobs on it"))),
      h("tbody", {}, s.workers.map((w) =>
        h("tr", { "data-testid": "worker-row", "data-worker-id": w.id, "data-alive": String(w.alive) },
          h("td", {}, h("span", { class: "mono" }, w.hostname), h("span", { class: "muted small" }, w.pid ? ` pid ${w.pid}` : "")),
          h("td", {}, w.alive
            ? h("span", { class: "badge ok" }, "Running")
            : h("span", { class: "badge bad", title: "no heartbeat for longer than a lease: the process stopped without saying so; its jobs go to other workers" }, "Not responding")),
          h("td", {}, w.max_jobs ? gauge(h, w.slices, w.max_jobs, `Job slices on ${w.id}`, "worker-slices") : fmt.count(w.slices)),
          h("td", { class: "hide-narrow", title: fmt.when(w.started_at) }, w.started_at ? fmt.age(w.started_at) : "—"),
          h("td", { class: "hide-narrow", title: fmt.when(w.last_seen_at) },
            w.last_seen_at ? `${fmt.duration(secondsSince(w.last_seen_at, s.now))} ago` : "known from its jobs' leases"),
          h("td", {}, w.your_jobs.length
            ? h("ul", { class: "plain" }, w.your_jobs.map((j) =>
              h("li", {}, h("a", { href: `#/jobs/${j.job_id}`, class: "mono", "data-testid": "worker-job", "aria-label": `Job ${j.job_id}` }, fmt.shortId(j.job_id)),
                h("span", { class: "muted small" }, ` ${j.strategy} on ${j.model}`))))
            : h("span", { class: "muted" }, w.your_slices ? `${w.your_slices}` : "none")))))))));
    return card;
  }

  function queueCard(s) {
    const q = s.queue;
    const card = h("div", { class: "card" }, h("h2", {}, "Queue"),
      h("p", { class: "help" }, "Jobs waiting for a worker, by priority (9 runs first). Held jobs wait in the database until their batch's turn or until their owner has fewer jobs queued."));
    const rows = q.by_priority.filter((p) => p.waiting || p.held);
    if (!rows.length) {
      card.append(note("empty", "No job is waiting: every job sent so far has been taken by a worker."));
    } else {
      card.append(h("div", { class: "table-wrap" }, stacked(h("table", { "data-testid": "queue-table" },
        h("thead", {}, h("tr", {},
          h("th", { class: "num" }, "Priority"), h("th", { class: "num" }, "Waiting"),
          h("th", { class: "num" }, "Held"), h("th", { class: "num" }, "Yours"), h("th", {}, "Longest wait"))),
        h("tbody", {}, rows.map((p) =>
          h("tr", { "data-testid": "queue-row", "data-priority": String(p.priority) },
            h("td", { class: "num" }, String(p.priority)),
            h("td", { class: "num", "data-testid": "queue-waiting" }, fmt.count(p.waiting)),
            h("td", { class: "num" }, fmt.count(p.held)),
            h("td", { class: "num" }, fmt.count(p.yours)),
            h("td", {}, fmt.duration(secondsSince(p.oldest_since, s.now))))))))));
    }
    if (q.your_oldest_job_id) {
      card.append(h("p", { class: "small" }, "Your job waiting longest: ",
        h("a", { href: `#/jobs/${q.your_oldest_job_id}`, class: "mono" }, fmt.shortId(q.your_oldest_job_id)),
        `, for ${fmt.duration(secondsSince(q.your_oldest_since, s.now))}.`));
    }
    return card;
  }

  function modelsCard(s) {
    return h("div", { class: "card" }, h("h2", {}, "Models"),
      h("p", { class: "help" }, "Each model profile allows at most max_concurrency calls at once; jobs wait for a free slot beyond that."),
      h("div", { class: "table-wrap" }, stacked(h("table", { "data-testid": "models-table" },
        h("thead", {}, h("tr", {},
          h("th", {}, "Model"), h("th", { class: "hide-narrow" }, "Provider"),
          h("th", {}, "Calls in flight"), h("th", { class: "num" }, "Jobs running"), h("th", { class: "num" }, "Yours"))),
        h("tbody", {}, s.models.map((m) =>
          h("tr", { "data-testid": "model-row", "data-model": m.name },
            h("td", {}, m.name, m.kind === "reward" ? h("span", { class: "muted small" }, " (reward model)") : null),
            h("td", { class: "hide-narrow" }, m.provider),
            h("td", {}, m.calls_in_flight === null
              ? h("span", { class: "small muted" }, `at most ${fmt.count(m.max_concurrency)}; ${m.note || "not counted"}`)
              : gauge(h, m.calls_in_flight, m.max_concurrency, `Calls in flight to ${m.name}`, "model-slots")),
            h("td", { class: "num" }, fmt.count(m.jobs_running)),
            h("td", { class: "num" }, fmt.count(m.your_jobs_running)))))))));
  }

  function webhooksCard(s) {
    const w = s.webhooks;
    const card = h("div", { class: "card", "data-testid": "webhooks-card" }, h("h2", {}, "Your webhook deliveries"));
    const total = (c) => c.pending + c.delivered + c.failed + c.disabled;
    if (!total(w.last_day) && !w.pending) {
      card.append(note("empty", "No webhook delivery in the last 24 hours. Jobs and batches given a webhook_url send one when they end."));
      return card;
    }
    const row = (label, c) => h("tr", {}, h("td", {}, label),
      h("td", { class: "num" }, fmt.count(c.delivered)), h("td", { class: "num" }, fmt.count(c.pending)),
      h("td", { class: "num" }, fmt.count(c.failed)), h("td", { class: "num" }, fmt.count(c.disabled)));
    const oldest = w.oldest_pending;
    card.append(h("div", {},
      h("div", { class: "table-wrap" }, h("table", { "data-testid": "webhooks-table" },
        h("thead", {}, h("tr", {}, h("th", {}, "Created"), h("th", { class: "num" }, "Delivered"),
          h("th", { class: "num" }, "Pending"), h("th", { class: "num" }, "Failed"), h("th", { class: "num" }, "Not sent (410)"))),
        h("tbody", {}, row("last hour", w.last_hour), row("last 24 hours", w.last_day)))),
      oldest
        ? h("p", { class: "small" }, `Oldest pending: created ${fmt.age(oldest.created_at, Date.parse(s.now))}, ${oldest.attempts} attempt${oldest.attempts === 1 ? "" : "s"} so far`,
          oldest.job_id ? [" (", h("a", { href: `#/jobs/${oldest.job_id}` }, "its job"), ")"] : null, ".")
        : null,
      w.recent_failures.length
        ? [h("h3", {}, "Recent failures"),
          h("ul", { class: "plain small", "data-testid": "webhook-failures" }, w.recent_failures.map((f) =>
            h("li", {}, fmt.status(f.status), " ", h("span", { class: "mono" }, f.url), ` — ${f.last_error || (f.last_status_code ? `HTTP ${f.last_status_code}` : "no answer")}`,
              f.job_id ? [" (", h("a", { href: `#/jobs/${f.job_id}` }, "job"), ")"] : null)))]
        : null));
    return card;
  }

  async function refresh() {
    try {
      const s = await api("/v1/system", { signal });
      if (signal.aborted) return;
      last = s;
      draw(s);
      live.textContent = `Updated ${new Date().toLocaleTimeString()}`;
    } catch (err) {
      if (signal.aborted || err.name === "AbortError") return;
      const text = `What the service is doing could not be loaded: ${err.detail || err.message}`;
      if (last) live.textContent = `Could not refresh (${err.detail || err.message}); showing the last figures.`;
      else clear(body).append(note("error", `${text} ${auto.checked ? "It will be tried again in a few seconds." : ""}`));
    }
  }

  function schedule() {
    clearTimeout(timer);
    if (signal.aborted || !auto.checked) return;
    timer = setTimeout(async () => {
      if (!document.hidden) await refresh();
      schedule();
    }, POLL_MS);
  }

  auto.addEventListener("change", schedule);
  refreshBtn.addEventListener("click", async () => {
    refreshBtn.disabled = true;
    await refresh();
    refreshBtn.disabled = false;
  });

  await refresh();
  schedule();
}
