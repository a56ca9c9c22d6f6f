// #/schedules/<id>: one schedule — its next fire times, its runs (each with the batch
// it made), a button to run it now and a form to run a past range of fire times.

import { note, clear } from "../lib/dom.js";
import * as fmt from "../lib/format.js";
import { stacked } from "../lib/tables.js";
import { until, stateBadge } from "./schedules.js";

const POLL_MS = 5000;

const KIND_WORDS = {
  scheduled: "on time",
  catchup: "caught up",
  manual: "run now",
  backfill: "backfill",
};

/** A datetime-local value (the browser's time zone) as an ISO instant in UTC. */
function instant(value) {
  const t = new Date(value);
  return Number.isNaN(t.getTime()) ? null : t.toISOString();
}

export async function render(root, params, { api, h, signal, setTitle }) {
  const id = params.id;
  setTitle(`Schedule ${fmt.shortId(id)}`);
  const body = h("div", { "data-testid": "schedule-body" }, note("loading", "Loading the schedule…"));
  root.append(h("p", { class: "small" }, h("a", { href: "#/schedules" }, "← All schedules")), body);

  let timer = null;
  let olderRuns = [];
  let runsCursor = null;
  signal.addEventListener("abort", () => clearTimeout(timer));

  let schedule;
  try {
    schedule = await api(`/v1/schedules/${encodeURIComponent(id)}`, { signal });
  } catch (err) {
    if (signal.aborted || err.name === "AbortError") return;
    clear(body).append(note("error", err.status === 404
      ? h("span", {}, `There is no schedule ${id} for your API key: the address may be mistyped, the schedule was deleted, or it belongs to another tenant. `, h("a", { href: "#/schedules" }, "See your schedules."))
      : `The schedule could not be loaded: ${err.detail || err.message}`));
    return;
  }
  setTitle(`Schedule ${schedule.name}`);

  const head = h("div", { class: "pagehead" });
  const about = h("div", { class: "card" });
  const runsBox = h("div", { "data-testid": "runs-body" }, note("loading", "Loading the runs…"));
  const moreRuns = h("button", { type: "button", hidden: true, "data-testid": "runs-more" }, "Show older runs");
  const live = h("span", { class: "muted small", "aria-live": "polite" });

  // ---- run now
  const triggerOut = h("div", { "aria-live": "polite", "data-testid": "trigger-result" });
  const trigger = h("button", { type: "button", class: "primary", "data-testid": "schedule-trigger" }, "Run now");
  trigger.addEventListener("click", async () => {
    trigger.disabled = true;
    clear(triggerOut).append(note("loading", "Starting a run…"));
    try {
      const run = await api(`/v1/schedules/${encodeURIComponent(id)}/trigger`, { method: "POST", signal });
      clear(triggerOut).append(note("info", run.status === "started" && run.batch_id
        ? h("span", {}, "A run started: ", h("a", { href: `#/batches/${run.batch_id}`, "data-testid": "trigger-batch" }, "open its batch"), ".")
        : run.status === "pending"
          ? `The run waits as pending: ${schedule.max_active_runs} batch${schedule.max_active_runs === 1 ? " is" : "es are"} still unfinished (max_active_runs). It starts when one finishes.`
          : `The run was skipped: ${run.detail || "no batch could be made"}`));
      await refreshRuns();
    } catch (err) {
      if (signal.aborted) return;
      clear(triggerOut).append(note("error", err.status === 403
        ? "Your API key cannot start runs: it lacks the submit scope. Use a key with submit."
        : `No run was started: ${err.detail || err.message}`));
    } finally {
      trigger.disabled = false;
    }
  });

  // ---- backfill
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "your time zone";
  const startIn = h("input", { id: "bf-start", name: "start", type: "datetime-local", required: true, step: "1", "data-testid": "backfill-start" });
  const endIn = h("input", { id: "bf-end", name: "end", type: "datetime-local", required: true, step: "1", "data-testid": "backfill-end" });
  const startErr = h("div", { class: "field-error", id: "bf-start-error", "data-testid": "backfill-start-error" });
  const endErr = h("div", { class: "field-error", id: "bf-end-error", "data-testid": "backfill-end-error" });
  startIn.setAttribute("aria-describedby", "bf-start-error");
  endIn.setAttribute("aria-describedby", "bf-end-error");
  const backfillOut = h("div", { "aria-live": "polite", "data-testid": "backfill-result" });
  const backfillBtn = h("button", { type: "submit", "data-testid": "backfill-submit" }, "Run these fire times");
  const backfill = h("form", { "data-testid": "backfill-form", novalidate: true },
    h("div", { class: "fields" },
      h("div", { class: "field" }, h("label", { for: "bf-start" }, "From"), startIn, startErr),
      h("div", { class: "field" }, h("label", { for: "bf-end" }, "To (included, not in the future)"), endIn, endErr)),
    h("p", { class: "help" }, `Times are in ${zone}. Every fire time of the cron in the range gets a run (a fire time that already has one keeps it); at most ${schedule.max_active_runs} run at once, the rest wait as pending.`),
    backfillBtn,
    backfillOut);
  backfill.addEventListener("submit", async (e) => {
    e.preventDefault();
    clear(startErr);
    clear(endErr);
    clear(backfillOut);
    const start = instant(startIn.value);
    const end = instant(endIn.value);
    if (!start) startErr.textContent = "Give the first date and time of the range.";
    if (!end) endErr.textContent = "Give the last date and time of the range.";
    if (!start || !end) return;
    backfillBtn.disabled = true;
    backfillOut.append(note("loading", "Creating the runs…"));
    try {
      const out = await api(`/v1/schedules/${encodeURIComponent(id)}/backfill`, { method: "POST", body: { start, end }, signal });
      clear(backfillOut).append(note("info",
        out.runs.length === 0
          ? "The cron has no fire time in this range: nothing to run."
          : `${out.created} run${out.created === 1 ? "" : "s"} created${out.existing ? `, ${out.existing} fire time${out.existing === 1 ? "" : "s"} already had one` : ""}. They appear in the runs below.`));
      await refreshRuns();
    } catch (err) {
      if (signal.aborted) return;
      clear(backfillOut);
      for (const e2 of err.errors || []) {
        const field = e2.loc && e2.loc[e2.loc.length - 1];
        if (field === "start") startErr.textContent = e2.msg;
        if (field === "end") endErr.textContent = e2.msg;
      }
      backfillOut.append(note("error", err.status === 403
        ? "Your API key cannot start runs: it lacks the submit scope. Use a key with submit."
        : `No run was created: ${err.detail || err.message}`));
    } finally {
      backfillBtn.disabled = false;
    }
  });

  body.replaceChildren(
    head,
    h("p", { class: "help" }, "Each fire time of this schedule creates a batch from its template. Runs below list every fire time that ran (or waits), with the batch it made."),
    h("div", { class: "grid2" },
      about,
      h("div", { class: "card" },
        h("h2", {}, "Run it"),
        h("p", { class: "help" }, "Run now creates one run at once, outside the cron (also for a paused schedule)."),
        trigger, triggerOut,
        h("h3", {}, "Run past fire times (backfill)"),
        backfill)),
    h("div", { class: "card" }, h("h2", {}, "Runs"), runsBox, moreRuns),
    h("div", { class: "card" }, h("h2", {}, "Batch template"),
      h("p", { class: "help" }, "What each run creates (as POST /v1/batches takes it; fields left out take their defaults)."),
      h("pre", { "data-testid": "schedule-template" }, JSON.stringify(schedule.template, (k, v) => (v === null ? undefined : v), 2))),
  );

  function drawSchedule() {
    head.replaceChildren(h("h1", {}, schedule.name), stateBadge(h, schedule), h("span", { class: "spacer" }), live);
    about.replaceChildren(
      h("h2", {}, "When it runs"),
      h("dl", { class: "kv" },
        h("dt", {}, "Cron"), h("dd", {}, h("code", {}, schedule.cron), ` in ${schedule.timezone}`),
        h("dt", {}, "Next fire times"),
        h("dd", {}, schedule.next_fire_times.length
          ? h("ol", { class: "plain", "data-testid": "next-fire-times" }, schedule.next_fire_times.map((t) =>
            h("li", { "data-fire-time": t }, fmt.when(t), h("span", { class: "muted small" }, ` (${until(t)})`))))
          : h("span", { "data-testid": "next-fire-times" }, schedule.enabled ? "None: the schedule has ended (its end time is past)." : "None while it is paused. Run now and backfill still work.")),
        h("dt", {}, "Last scheduled run"), h("dd", {}, schedule.last_fire_time ? fmt.when(schedule.last_fire_time) : "never"),
        h("dt", {}, "Runs at once"), h("dd", {}, `at most ${schedule.max_active_runs} (now ${schedule.active_runs} running, ${schedule.pending_runs} waiting)`),
        h("dt", {}, "Missed fire times"), h("dd", {}, schedule.catchup ? "all run when the service is back" : "only the latest runs when the service is back"),
        schedule.start_time ? [h("dt", {}, "Starts"), h("dd", {}, fmt.when(schedule.start_time))] : null,
        schedule.end_time ? [h("dt", {}, "Ends"), h("dd", {}, fmt.when(schedule.end_time))] : null));
  }

  function runsTable(runs) {
    if (!runs.length) {
      return note("empty", schedule.next_fire_times.length
        ? `No run yet. The first one is due ${until(schedule.next_fire_times[0])}; “Run now” starts one at once.`
        : "No run yet. “Run now” starts one at once.");
    }
    return h("div", { class: "table-wrap" },
      stacked(h("table", { "data-testid": "runs-table" },
        h("thead", {}, h("tr", {},
          h("th", {}, "Fire time"), h("th", {}, "Kind"), h("th", {}, "Status"),
          h("th", {}, "Batch"), h("th", { class: "hide-narrow" }, "Note"))),
        h("tbody", {}, runs.map((r) =>
          h("tr", { "data-testid": "run-row", "data-kind": r.kind, "data-status": r.status, "data-fire-time": r.fire_time },
            h("td", { title: r.fire_time }, fmt.when(r.fire_time)),
            h("td", {}, KIND_WORDS[r.kind] || r.kind),
            h("td", {}, fmt.status(r.status)),
            h("td", {}, r.batch_id ? h("a", { href: `#/batches/${r.batch_id}`, class: "mono", "aria-label": `Batch ${r.batch_id}` }, fmt.shortId(r.batch_id)) : "—"),
            h("td", { class: "hide-narrow small" }, r.detail || "")))))));
  }

  let firstRuns = [];
  function drawRuns() {
    const runs = [...firstRuns, ...olderRuns.filter((r) => !firstRuns.some((f) => f.id === r.id))];
    runsBox.replaceChildren(runsTable(runs));
    moreRuns.hidden = !runsCursor;
  }

  async function refreshRuns() {
    const [s, page] = await Promise.all([
      api(`/v1/schedules/${encodeURIComponent(id)}`, { signal }),
      api(`/v1/schedules/${encodeURIComponent(id)}/runs?limit=50`, { signal }),
    ]);
    schedule = s;
    firstRuns = page.data;
    if (!olderRuns.length) runsCursor = page.next_cursor;
    drawSchedule();
    drawRuns();
  }

  moreRuns.addEventListener("click", async () => {
    moreRuns.disabled = true;
    try {
      const page = await api(`/v1/schedules/${encodeURIComponent(id)}/runs?limit=50&cursor=${encodeURIComponent(runsCursor)}`, { signal });
      olderRuns = [...olderRuns, ...page.data];
      runsCursor = page.next_cursor;
      drawRuns();
    } catch (err) {
      if (!signal.aborted) runsBox.append(note("error", `Older runs could not be loaded: ${err.detail || err.message}`));
    } finally {
      moreRuns.disabled = false;
    }
  });

  function poll() {
    clearTimeout(timer);
    if (signal.aborted) return;
    timer = setTimeout(async () => {
      if (!document.hidden) {
        try {
          await refreshRuns();
          live.textContent = `Updated ${new Date().toLocaleTimeString()}`;
        } catch (err) {
          if (signal.aborted || err.name === "AbortError") return;
          live.textContent = err.status === 404
            ? "This schedule was deleted."
            : `Could not refresh (${err.detail || err.message}); trying again.`;
          if (err.status === 404) return;
        }
      }
      poll();
    }, POLL_MS);
  }

  drawSchedule();
  try {
    await refreshRuns();
  } catch (err) {
    if (signal.aborted || err.name === "AbortError") return;
    runsBox.replaceChildren(note("error", `The runs could not be loaded: ${err.detail || err.message}`));
  }
  poll();
}
