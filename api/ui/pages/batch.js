// #/batches/<id>: one batch — progress, counts by status, accuracy, usage, the
// per-strategy table and the accuracy-vs-tokens chart (the figures GET /v1/batches/{id}
// serves, the same `ponder report` prints and plots), the results as a download, and
// for a re-run of past jobs their before/after. Refreshed while the batch runs.

import { note, clear, replace } from "../lib/dom.js";
import { chart } from "../lib/chart.js";
import * as fmt from "../lib/format.js";
import { stacked } from "../lib/tables.js";

const POLL_MS = 3000;
const ACTIVE = new Set(["queued", "running"]);
const ITEMS_SHOWN = 200;

/** The batch's name: its metadata's `name`, else the id's start (as `ponder report`). */
export function batchLabel(batch) {
  const name = batch.metadata && batch.metadata.name;
  return name ? String(name) : fmt.shortId(batch.id);
}

/** The chart's points: one per strategy and model with both an accuracy and a mean
 * token count, exactly the `by_strategy` figures (accuracy in percent). */
export function chartPoints(batch) {
  return batch.by_strategy
    .filter((g) => g.accuracy.rate !== null && g.mean_tokens !== null)
    .map((g) => ({
      strategy: g.strategy,
      model: g.model,
      x: g.mean_tokens,
      y: g.accuracy.rate * 100,
    }));
}

function pct(rate) {
  return rate === null || rate === undefined ? "—" : `${(rate * 100).toFixed(1)}%`;
}

function pointLabel(prefix, p) {
  return `${prefix}${p.strategy} on ${p.model}: ${p.y.toFixed(1)}% accuracy at ${fmt.count(p.x)} mean tokens per item`;
}

export async function render(root, params, { api, apiText, h, signal, setTitle }) {
  const id = params.id;
  setTitle(`Batch ${fmt.shortId(id)}`);
  const body = h("div", { "data-testid": "batch-body" }, note("loading", "Loading the batch…"));
  root.append(
    h("p", { class: "small" }, h("a", { href: "#/batches" }, "← All batches")),
    body,
  );

  let timer = null;
  let original = null; // the batch a re-run repeats: {batch} or {error}
  let itemsBox = null; // kept across refreshes once the user asked for the items
  signal.addEventListener("abort", () => clearTimeout(timer));

  async function loadOriginal(batch) {
    const from = batch.from_jobs && batch.from_jobs.batch_id;
    if (!from || original) return;
    try {
      original = { batch: await api(`/v1/batches/${encodeURIComponent(from)}`, { signal }) };
    } catch (err) {
      if (signal.aborted) return;
      original = { error: err.status === 404 ? "The batch it re-runs no longer exists." : err.detail || err.message };
    }
  }

  async function refresh(first) {
    let batch;
    try {
      batch = await api(`/v1/batches/${encodeURIComponent(id)}`, { signal });
    } catch (err) {
      if (signal.aborted || err.name === "AbortError") return;
      if (first || err.status === 404) {
        clear(body).append(note("error", err.status === 404
          ? h("span", {}, `There is no batch ${id} for your API key: the address may be mistyped, or the batch belongs to another tenant. `, h("a", { href: "#/batches" }, "See your batches."))
          : `The batch could not be loaded: ${err.detail || err.message}`));
        return;
      }
      live.textContent = `Could not refresh (${err.detail || err.message}); trying again.`;
      schedule();
      return;
    }
    await loadOriginal(batch);
    if (signal.aborted) return;
    draw(batch);
    if (ACTIVE.has(batch.status)) schedule();
  }

  function schedule() {
    clearTimeout(timer);
    if (signal.aborted) return;
    timer = setTimeout(() => refresh(false), POLL_MS);
  }

  const live = h("span", { class: "muted small", "aria-live": "polite", "data-testid": "batch-live" });

  function draw(batch) {
    setTitle(`Batch ${batchLabel(batch)}`);
    const active = ACTIVE.has(batch.status);
    live.textContent = active ? `Running — updated ${new Date().toLocaleTimeString()}` : "";
    replace(body,
      h("div", { class: "pagehead" },
        h("h1", {}, `Batch ${batchLabel(batch)}`),
        fmt.status(batch.status),
        h("span", { class: "spacer" }),
        live),
      h("p", { class: "help" },
        "A batch runs many jobs — its items — a few at a time. Its figures below count every item; accuracy counts the items whose answer a verifier could check."),
      summary(batch),
      h("div", { class: "grid2" }, chartCard(batch), usageCard(batch)),
      strategyCard(batch),
      batch.comparison || (batch.from_jobs && batch.from_jobs.batch_id) ? comparisonCard(batch) : null,
      resultsCard(batch),
    );
  }

  function summary(batch) {
    const c = batch.counts;
    const done = c.completed + c.failed + c.cancelled;
    const bar = h("progress", { max: String(Math.max(c.total, 1)), value: String(done), "data-testid": "batch-progress", "aria-label": "Items finished" });
    return h("div", { class: "card" },
      h("h2", {}, "Progress"),
      h("div", { class: "row" }, bar,
        h("span", { "data-testid": "batch-progress-text" }, `${fmt.count(done)} of ${fmt.count(c.total)} items finished`)),
      h("div", { class: "counts", "data-testid": "batch-counts" },
        ["queued", "running", "completed", "failed", "cancelled"].map((s) =>
          h("span", { class: "count", "data-count": s }, fmt.status(s), " ", h("strong", {}, fmt.count(c[s]))))),
      h("dl", { class: "kv" },
        h("dt", {}, "Accuracy"),
        h("dd", { "data-testid": "batch-accuracy" },
          batch.accuracy.rate === null
            ? "Nothing scored yet (an item is scored once it has ended and a verifier checked its answer)."
            : `${pct(batch.accuracy.rate)} — ${fmt.count(batch.accuracy.verified)} of ${fmt.count(batch.accuracy.scored)} scored items verified`),
        h("dt", {}, "Source"),
        h("dd", {}, sourceText(batch)),
        batch.schedule_id ? [h("dt", {}, "Schedule"), h("dd", {}, h("a", { href: `#/schedules/${batch.schedule_id}` }, "the schedule that made it"), batch.fire_time ? ` (fire time ${fmt.when(batch.fire_time)})` : "")] : null,
        h("dt", {}, "Created"),
        h("dd", { title: fmt.when(batch.created_at) }, fmt.age(batch.created_at)),
        batch.finished_at ? [h("dt", {}, "Finished"), h("dd", { title: fmt.when(batch.finished_at) }, fmt.age(batch.finished_at))] : null,
        h("dt", {}, "Id"),
        h("dd", { class: "mono" }, batch.id)));
  }

  function sourceText(batch) {
    switch (batch.source) {
      case "dataset": return `the dataset ${batch.dataset}`;
      case "upload": return "a JSON Lines upload";
      case "from_jobs": return batch.from_jobs && batch.from_jobs.batch_id
        ? h("span", {}, "a re-run of ", h("a", { href: `#/batches/${batch.from_jobs.batch_id}`, "data-testid": "rerun-of" }, `batch ${original && original.batch ? batchLabel(original.batch) : fmt.shortId(batch.from_jobs.batch_id)}`))
        : "a re-run of past jobs";
      default: return "items sent in the request";
    }
  }

  function usageCard(batch) {
    const u = batch.usage;
    return h("div", { class: "card" },
      h("h2", {}, "Usage"),
      h("dl", { class: "kv", "data-testid": "batch-usage" },
        h("dt", {}, "Tokens"), h("dd", {}, fmt.count(u.tokens)),
        h("dt", {}, "Model calls"), h("dd", {}, fmt.count(u.calls)),
        h("dt", {}, "Cost"), h("dd", {}, fmt.cost(u.cost_usd)),
        h("dt", {}, "Running time"), h("dd", { title: "summed over items" }, fmt.duration(u.seconds)),
        h("dt", {}, "Latency p50 / p95"),
        h("dd", {}, `${fmt.duration(batch.latency.p50_seconds)} / ${fmt.duration(batch.latency.p95_seconds)}`),
        batch.budget ? [h("dt", {}, "Batch cap"), h("dd", {}, capText(batch.budget))] : null));
  }

  function capText(budget) {
    const parts = [];
    if (budget.max_tokens) parts.push(`${fmt.count(budget.max_tokens)} tokens`);
    if (budget.max_cost_usd) parts.push(fmt.cost(budget.max_cost_usd));
    return parts.join(", ") || "none";
  }

  function chartCard(batch) {
    const points = chartPoints(batch);
    const series = points.map((p, i) => ({
      name: `${p.strategy} (${p.model})`,
      kind: "points",
      cls: `series-${i % 5}`,
      points: [{ x: p.x, y: p.y, label: pointLabel("", p) }],
      key: pointLabel("", p),
    }));
    const before = original && original.batch ? chartPoints(original.batch) : [];
    if (before.length) {
      series.push({
        name: `before: batch ${batchLabel(original.batch)}`,
        kind: "points",
        cls: "series-5",
        points: before.map((p) => ({ x: p.x, y: p.y, label: pointLabel("before: ", p) })),
        key: `before (batch ${batchLabel(original.batch)}): ${before.map((p) => pointLabel("", p)).join("; ")}`,
      });
    }
    const card = h("div", { class: "card", "data-testid": "batch-chart-card" },
      h("h2", {}, "Accuracy against tokens"),
      h("p", { class: "help" }, "One point per strategy and model: the share of scored items verified, against the mean tokens an item spent. Up and to the left is better."));
    if (!series.length) {
      card.append(note("empty", ACTIVE.has(batch.status)
        ? "No point yet: a point appears once items of a strategy have ended and been scored."
        : "No point to draw: no item of this batch was scored (its problems give no way to check an answer, or no item ran to an end)."));
      return card;
    }
    card.append(
      chart({
        series,
        xLabel: "mean tokens per item",
        yLabel: "accuracy (%)",
        // headroom, so points at 100% or at the most tokens are not cut by the frame
        yMin: 0,
        yMax: 105,
        xMin: 0,
        xMax: Math.max(1, ...series.flatMap((s) => s.points.map((p) => p.x))) * 1.08,
        xFormat: fmt.tokens,
        yFormat: (v) => `${Math.round(v)}%`,
        title: "Accuracy against mean tokens per item",
        testid: "batch-chart",
        legend: false,
      }),
      h("ul", { class: "chart-key", "data-testid": "batch-chart-points" },
        series.map((s) => h("li", {}, h("span", { class: `dot ${s.cls}`, "aria-hidden": "true" }), s.key))),
    );
    return card;
  }

  function strategyCard(batch) {
    const card = h("div", { class: "card" }, h("h2", {}, "By strategy and model"));
    if (!batch.by_strategy.length) {
      card.append(note("empty", "This batch has no items."));
      return card;
    }
    card.append(h("div", { class: "table-wrap" },
      stacked(h("table", { "data-testid": "strategy-table" },
        h("thead", {}, h("tr", {},
          h("th", {}, "Strategy"), h("th", {}, "Model"),
          h("th", { class: "num" }, "Items"), h("th", { class: "num" }, "Finished"),
          h("th", { class: "num" }, "Accuracy"), h("th", { class: "num" }, "Tokens"),
          h("th", { class: "num" }, "Mean tokens"), h("th", { class: "num hide-narrow" }, "Cost"),
          h("th", { class: "num hide-narrow" }, "p50"), h("th", { class: "num hide-narrow" }, "p95"))),
        h("tbody", {}, batch.by_strategy.map((g) =>
          h("tr", { "data-testid": "strategy-row", "data-strategy": g.strategy, "data-model": g.model },
            h("td", {}, g.strategy),
            h("td", {}, g.model),
            h("td", { class: "num" }, fmt.count(g.items)),
            h("td", { class: "num" }, fmt.count(g.finished)),
            h("td", { class: "num", title: `${g.accuracy.verified} of ${g.accuracy.scored} scored items verified` }, pct(g.accuracy.rate)),
            h("td", { class: "num" }, fmt.count(g.tokens)),
            h("td", { class: "num" }, g.mean_tokens === null ? "—" : fmt.count(g.mean_tokens)),
            h("td", { class: "num hide-narrow" }, fmt.cost(g.cost_usd)),
            h("td", { class: "num hide-narrow" }, fmt.duration(g.latency.p50_seconds)),
            h("td", { class: "num hide-narrow" }, fmt.duration(g.latency.p95_seconds)))))))));
    return card;
  }

  function comparisonCard(batch) {
    const c = batch.comparison;
    const card = h("div", { class: "card", "data-testid": "comparison" },
      h("h2", {}, "Before and after"),
      h("p", { class: "help" }, "This batch re-runs past jobs. Over its items that have finished, the original jobs' results against the re-run's."));
    if (original && original.error) card.append(note("info", original.error));
    if (!c || c.items === 0) {
      card.append(note("empty", "No re-run item has finished yet."));
      return card;
    }
    const rows = [
      ["Solved (verified answers)", fmt.count(c.solved_before), fmt.count(c.solved_after)],
      ["Tokens", fmt.count(c.tokens_before), fmt.count(c.tokens_after)],
      ["Cost", fmt.cost(c.cost_before_usd), fmt.cost(c.cost_after_usd)],
    ];
    card.append(
      h("div", { class: "table-wrap" }, h("table", { "data-testid": "comparison-table" },
        h("thead", {}, h("tr", {}, h("th", {}, `Over ${fmt.count(c.items)} items`), h("th", { class: "num" }, "Before"), h("th", { class: "num" }, "After"))),
        h("tbody", {}, rows.map(([what, b, a]) => h("tr", {}, h("td", {}, what), h("td", { class: "num" }, b), h("td", { class: "num" }, a)))))),
      h("p", { "data-testid": "comparison-moves" },
        `${fmt.count(c.improved)} item${c.improved === 1 ? "" : "s"} solved only after the re-run, ${fmt.count(c.regressed)} solved only before.`));
    return card;
  }

  function resultsCard(batch) {
    const status = h("span", { class: "muted small", "aria-live": "polite" });
    const download = h("button", { type: "button", class: "primary", "data-testid": "batch-download" }, "Download results (JSON Lines)");
    const show = h("button", { type: "button", "data-testid": "batch-show-items" }, itemsBox ? "Reload the items" : "Show the items");
    if (!itemsBox) itemsBox = h("div", { "data-testid": "batch-items" });
    download.addEventListener("click", async () => {
      download.disabled = true;
      status.textContent = "Preparing the file…";
      try {
        const text = await apiText(`/v1/batches/${encodeURIComponent(batch.id)}/results`, { signal });
        const url = URL.createObjectURL(new Blob([text], { type: "application/x-ndjson" }));
        const a = h("a", { href: url, download: `batch-${batch.id}.jsonl`, hidden: true });
        document.body.append(a);
        a.click();
        a.remove();
        setTimeout(() => URL.revokeObjectURL(url), 60000);
        status.textContent = "Downloaded.";
      } catch (err) {
        if (!signal.aborted) status.textContent = `The results could not be downloaded: ${err.detail || err.message}`;
      } finally {
        download.disabled = false;
      }
    });
    show.addEventListener("click", async () => {
      show.disabled = true;
      clear(itemsBox).append(note("loading", "Loading the items…"));
      try {
        const text = await apiText(`/v1/batches/${encodeURIComponent(batch.id)}/results`, { signal });
        const lines = text.split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l));
        clear(itemsBox).append(itemsTable(lines));
        show.textContent = "Reload the items";
      } catch (err) {
        if (!signal.aborted) clear(itemsBox).append(note("error", `The items could not be loaded: ${err.detail || err.message}`));
      } finally {
        show.disabled = false;
      }
    });
    return h("div", { class: "card" },
      h("h2", {}, "Results"),
      h("p", { class: "help" }, "One line per item, in item order: its custom id, job, status, answer, whether it was verified, and what it spent. Items still running appear with their current status."),
      h("div", { class: "row" }, download, show, status),
      itemsBox);
  }

  function itemsTable(lines) {
    if (!lines.length) return note("empty", "This batch has no items.");
    const shown = lines.slice(0, ITEMS_SHOWN);
    return h("div", {},
      lines.length > ITEMS_SHOWN ? h("p", { class: "help" }, `The first ${ITEMS_SHOWN} of ${fmt.count(lines.length)} items; download the results for all of them.`) : null,
      h("div", { class: "table-wrap" }, stacked(h("table", { "data-testid": "items-table" },
        h("thead", {}, h("tr", {},
          h("th", { class: "num" }, "#"), h("th", {}, "Item"), h("th", {}, "Status"),
          h("th", {}, "Answer"), h("th", { class: "num" }, "Tokens"), h("th", { class: "hide-narrow" }, "Job"))),
        h("tbody", {}, shown.map((line) =>
          h("tr", { "data-testid": "item-row" },
            h("td", { class: "num" }, String(line.index)),
            h("td", {}, line.custom_id || "—"),
            h("td", {}, fmt.status(line.status)),
            h("td", {}, line.result && line.result.answer !== null ? line.result.answer : (line.error || "—"),
              line.result && line.result.verified ? h("span", { class: "badge ok", title: "verified" }, " ✓") : null),
            h("td", { class: "num" }, fmt.count(line.usage ? line.usage.tokens : null)),
            h("td", { class: "hide-narrow" }, h("a", { href: `#/jobs/${line.job_id}`, class: "mono", "aria-label": `Job ${line.job_id}` }, fmt.shortId(line.job_id))))))))));
  }

  await refresh(true);
}
