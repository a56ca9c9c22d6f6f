// #/jobs/<id>: one job, live while it runs (its events over SSE, its spend polled):
// budget gauges, the anytime curve, the search tree, candidates and votes, every
// journaled call, the event log and the webhook deliveries; cancel and redeliver.

import { note, clear, replace } from "../lib/dom.js";
import { chart } from "../lib/chart.js";
import { SearchTree, TreeView } from "../lib/tree.js";
import * as fmt from "../lib/format.js";

const FINAL = new Set(["completed", "failed", "cancelled"]);
const TREE_STRATEGIES = new Set(["beam_search", "tree_of_thoughts", "mcts"]);
const JOB_POLL_MS = 2000;
const CALLS_POLL_MS = 5000;
const DRAW_MS = 300;
const ROWS = 50; // rows a table shows at first, and adds per "show more"
const KINDS = { sample: "model", verify: "verifier", reward: "reward model" };

export async function render(root, params, { api, stream, h, signal, setTitle }) {
  const id = params.id;
  setTitle(`Job ${fmt.shortId(id)}`);
  root.append(note("loading", "Loading the job…"));
  let job;
  let trace;
  try {
    job = await api(`/v1/jobs/${encodeURIComponent(id)}`, { signal });
    trace = await api(`/v1/jobs/${encodeURIComponent(id)}/trace`, { signal });
  } catch (err) {
    if (err.status === 404) {
      replace(root, h("h1", {}, "Job not found"),
        note("error", "No job with this id belongs to your API key's tenant. Check the address, or ", h("a", { href: "#/jobs" }, "go back to your jobs"), "."));
      return;
    }
    throw err;
  }
  clear(root);

  // ---- state, fed by the trace and then by the live stream
  const tree = new SearchTree();
  const treeView = new TreeView();
  const candidates = [];
  const votes = [];
  const bests = [];
  const events = [];
  let steps = trace.steps;
  let spend = trace.spend;
  let lastSeq = 0;
  let started = null;

  function apply(kind, data, seq, at) {
    if (seq <= lastSeq) return;
    lastSeq = seq;
    events.push({ seq, kind, data, at });
    tree.apply(kind, data);
    if (kind === "candidate") candidates.push({ ...data, at, seq });
    else if (kind === "vote") votes.push({ ...data, at, seq });
    else if (kind === "best") bests.push({ ...data, at, seq });
    else if ((kind === "started" || kind === "resumed") && job.status === "queued") job.status = "running";
    if (kind === "started" && !started) started = at;
    if (FINAL.has(kind)) job.status = kind;
  }
  for (const e of trace.events) apply(e.kind, e.data, e.seq, e.at);

  // ---- layout
  const statusBox = h("span", { "data-testid": "job-status" });
  const liveBox = h("span", { class: "muted small", "aria-live": "polite", "data-testid": "job-live" });
  const actions = h("div", { class: "row", "data-testid": "job-actions" });
  const actionNote = h("div", { "aria-live": "polite", "data-testid": "action-result" });
  const summary = h("div", { class: "card" });
  const gauges = h("div", { class: "gauges", "data-testid": "gauges" });
  const curve = h("div", { "data-testid": "curve" });

  const panels = {};
  const tabs = [];
  const tablist = h("div", { class: "tabs", role: "tablist", "aria-label": "Job details" });
  function addTab(key, title) {
    const panel = h("div", { role: "tabpanel", id: `panel-${key}`, "aria-labelledby": `tab-${key}`, hidden: true, "data-testid": `panel-${key}`, tabindex: "0" });
    const tab = h("button", { type: "button", role: "tab", id: `tab-${key}`, "aria-controls": `panel-${key}`, "aria-selected": "false", tabindex: "-1", "data-testid": `tab-${key}` }, title);
    tab.addEventListener("click", () => select(key));
    tab.addEventListener("keydown", (e) => {
      const i = tabs.findIndex((t) => t.key === key);
      const next = e.key === "ArrowRight" ? i + 1 : e.key === "ArrowLeft" ? i - 1 : null;
      if (next === null) return;
      e.preventDefault();
      const t = tabs[(next + tabs.length) % tabs.length];
      select(t.key);
      t.tab.focus();
    });
    tabs.push({ key, tab, panel });
    panels[key] = panel;
    tablist.append(tab);
  }
  const hasTree = TREE_STRATEGIES.has(job.strategy.name) || tree.size > 0;
  if (hasTree) addTab("tree", "Search tree");
  addTab("candidates", "Candidates and votes");
  addTab("calls", "Calls");
  addTab("events", "Events");
  addTab("webhooks", "Webhooks");
  let selected = null;
  function select(key) {
    if (selected && selected !== key) history.replaceState(null, "", `#/jobs/${encodeURIComponent(id)}?tab=${key}`);
    selected = key;
    for (const t of tabs) {
      const on = t.key === key;
      t.tab.setAttribute("aria-selected", String(on));
      t.tab.tabIndex = on ? 0 : -1;
      t.panel.hidden = !on;
    }
    drawPanel(key);
    if (key === "calls") refreshCalls();
    if (key === "webhooks") refreshDeliveries();
  }

  root.append(
    h("div", { class: "pagehead" },
      h("h1", {}, "Job ", h("span", { class: "mono", title: job.id }, fmt.shortId(job.id))),
      statusBox, liveBox, h("span", { class: "spacer" }), actions),
    h("p", { class: "small" }, h("a", { href: "#/jobs" }, "← All jobs")),
    actionNote,
    summary,
    h("div", { class: "grid2" },
      h("div", { class: "card" }, h("h2", {}, "Budget"),
        h("p", { class: "help" }, "What the job has spent of each cap. It stops when one runs out."), gauges),
      h("div", { class: "card" }, h("h2", {}, "Anytime curve"),
        h("p", { class: "help" }, "The best verifier score found so far against the tokens spent: each step up is an improvement, at the moment it came."), curve)),
    h("div", { class: "card" }, tablist, tabs.map((t) => t.panel)),
  );

  // ---- drawing
  const shownRows = { candidates: ROWS, calls: ROWS, events: ROWS };
  let callKind = "";

  /** The newest `shownRows[key]` of `rows` (newest first), and a "show more" button. */
  function newest(key, rows) {
    const limit = shownRows[key];
    const shown = rows.slice(-limit).reverse();
    const rest = rows.length - shown.length;
    const more = rest > 0
      ? h("button", {
          type: "button", class: "link", "data-testid": `${key}-more`, "data-focus-key": `${key}-more`,
          onclick: () => { shownRows[key] += ROWS * 4; drawPanel(key); panels[key].querySelector(`[data-focus-key="${key}-more"]`)?.focus(); },
        }, rest <= ROWS * 4 ? `Show the ${rest} older` : `Show ${ROWS * 4} older (of ${rest})`)
      : null;
    return [shown, more];
  }

  function drawHead() {
    replace(statusBox, fmt.status(job.status));
    statusBox.dataset.status = job.status;
    clear(actions);
    if (!FINAL.has(job.status)) {
      if (job.cancel_requested) actions.append(h("span", { class: "muted" }, "Cancelling…"));
      else actions.append(h("button", { type: "button", class: "danger", "data-testid": "cancel-job", onclick: askCancel }, "Cancel job"));
    }
  }

  function askCancel() {
    replace(actions,
      h("span", {}, "Cancel this job? It stops before its next model call and keeps its best answer so far."),
      h("button", { type: "button", class: "danger", "data-testid": "confirm-cancel", onclick: doCancel }, "Yes, cancel it"),
      h("button", { type: "button", onclick: () => { drawHead(); actions.querySelector("button")?.focus(); } }, "No, keep it running"));
    actions.querySelector("[data-testid=confirm-cancel]").focus();
  }

  async function doCancel() {
    for (const b of actions.querySelectorAll("button")) b.disabled = true;
    try {
      const after = await api(`/v1/jobs/${encodeURIComponent(id)}/cancel`, { method: "POST", signal });
      Object.assign(job, after);
      replace(actionNote, note("info", after.status === "cancelled"
        ? "The job is cancelled."
        : "Cancel requested: the job stops before its next model call and keeps its best answer so far."));
    } catch (err) {
      if (signal.aborted) return;
      replace(actionNote, note("error", err.status === 409 ? "This job had already finished, so there was nothing to cancel." : `The job could not be cancelled: ${err.detail || err.message}`));
    }
    drawAll();
  }

  function drawSummary() {
    const result = job.result;
    const rows = [
      ["Strategy", h("div", {}, h("strong", {}, job.strategy.name),
        h("div", { class: "params", "data-testid": "strategy-params" }, Object.entries(job.strategy.params).map(([k, v]) =>
          h("span", {}, `${k} `, h("code", {}, typeof v === "string" ? v : JSON.stringify(v))))))],
      ["Model", job.model],
      ["Submitted", h("span", { title: fmt.when(job.created_at) }, `${fmt.when(job.created_at)} (${fmt.age(job.created_at)})`)],
      ["Finished", job.finished_at ? fmt.when(job.finished_at) : FINAL.has(job.status) ? "—" : "not yet"],
      ["Answer", result && result.answer !== null
        ? h("span", { "data-testid": "answer" }, h("code", {}, result.answer), " ", result.verified ? h("span", { class: "badge ok" }, "verified") : h("span", { class: "badge bad" }, "not verified"), ` score ${fmt.score(result.score)}`)
        : FINAL.has(job.status) ? "none found" : bests.length ? h("span", {}, "best so far: ", h("code", {}, bests[bests.length - 1].answer)) : "none yet"],
    ];
    if (job.stop_reason) rows.push(["Stopped", `It ${fmt.stopReason(job.stop_reason)}.`]);
    if (job.error) rows.push(["Error", h("span", { class: "field-error" }, job.error)]);
    if (job.batch_id) rows.push(["Batch", h("a", { href: `#/batches/${job.batch_id}` }, fmt.shortId(job.batch_id))]);
    if (job.webhook_url) rows.push(["Webhook", h("code", {}, job.webhook_url)]);
    replace(summary, h("dl", { class: "kv" }, rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])));
  }

  function gauge(what, used, cap, show) {
    const fraction = cap ? Math.min(used / cap, 1) : null;
    const fill = h("div", { class: `fill${fraction >= 1 ? " full" : fraction >= 0.8 ? " high" : ""}` });
    if (fraction !== null) fill.style.width = `${(fraction * 100).toFixed(1)}%`;
    return h("div", { class: "gauge", "data-testid": `gauge-${what.toLowerCase()}` },
      h("div", { class: "row" }, h("span", { class: "what" }, what), h("span", { class: "spacer" }), h("span", { class: "muted small" }, cap ? fmt.percent(fraction) : "no cap")),
      h("div", { class: "bar", role: "meter", "aria-label": what, "aria-valuemin": "0", "aria-valuemax": String(cap || 0), "aria-valuenow": String(used) }, fill),
      h("div", { class: "small" }, show(used), h("span", { class: "muted" }, cap ? ` of ${show(cap)}` : "")));
  }

  function drawGauges() {
    const u = job.usage;
    const b = job.budget;
    replace(gauges,
      gauge("Tokens", u.tokens, b.max_tokens, fmt.count),
      gauge("Calls", u.calls, b.max_calls, fmt.count),
      gauge("Cost", u.cost_usd, b.max_cost_usd, fmt.cost),
      gauge("Time", u.seconds, b.max_seconds, fmt.duration));
  }

  function drawCurve() {
    // each improvement says what had been spent; for one that does not (written by an
    // older version), the spend of the last call done by then
    const spentBy = (at) => {
      let tokens = 0;
      for (const p of spend) if (Date.parse(p.at) <= Date.parse(at)) tokens = p.tokens;
      return tokens;
    };
    const scored = bests.map((b) => (typeof b.tokens === "number" ? b : { ...b, tokens: spentBy(b.at) }));
    if (!scored.length) {
      replace(curve, note("empty", FINAL.has(job.status)
        ? "The job found no scored answer, so there is no curve."
        : "No answer yet: the curve starts with the first candidate the job keeps."));
      return;
    }
    const end = Math.max(job.usage.tokens, ...scored.map((b) => b.tokens));
    const points = scored.map((b) => ({
      x: b.tokens,
      y: b.score,
      label: `score ${fmt.score(b.score)}${b.verified ? " (verified)" : ""} at ${fmt.count(b.tokens)} tokens, ${new Date(b.at).toLocaleTimeString()}: ${b.answer}`,
    }));
    replace(curve,
      chart({
        series: [{ name: "best score", kind: "step", points, extendTo: end }],
        xLabel: "tokens spent", yLabel: "best score", yMin: 0, yMax: 1, xMin: 0, xMax: Math.max(end, 1),
        xFormat: fmt.tokens, yFormat: (v) => v.toFixed(1), title: "Best score against tokens spent", testid: "curve-chart",
        width: Math.max(300, Math.min(curve.clientWidth || 640, 900)), height: curve.clientWidth && curve.clientWidth < 480 ? 220 : 260,
      }),
      h("details", {}, h("summary", {}, `${scored.length} improvement${scored.length === 1 ? "" : "s"}`),
        h("div", { class: "table-wrap" }, h("table", { "data-testid": "improvements" },
          h("thead", {}, h("tr", {}, h("th", {}, "When"), h("th", { class: "num" }, "Tokens"), h("th", { class: "num" }, "Score"), h("th", {}, "Answer"))),
          h("tbody", {}, scored.map((b) => h("tr", {},
            h("td", {}, new Date(b.at).toLocaleTimeString()), h("td", { class: "num" }, fmt.count(b.tokens)),
            h("td", { class: "num" }, fmt.score(b.score), b.verified ? " ✓" : ""), h("td", {}, h("code", {}, b.answer)))))))));
  }

  function winLeaf() {
    const answer = job.result?.answer ?? bests[bests.length - 1]?.answer;
    if (answer === undefined || answer === null) return null;
    const matching = candidates.filter((c) => c.node !== undefined && c.answer === answer);
    if (!matching.length) return null;
    matching.sort((a, b) => (b.passed - a.passed) || (b.score - a.score) || (a.seq - b.seq));
    return String(matching[0].node).split("/")[0];
  }

  function drawTree(panel) {
    if (!tree.size) {
      replace(panel, note("empty", FINAL.has(job.status)
        ? "This job recorded no search tree."
        : "The tree grows here as the search proposes steps; nothing yet."));
      return;
    }
    const leaf = winLeaf();
    const path = tree.path(leaf);
    if (!panel.firstChild || !panel.querySelector(".tree")) {
      replace(panel,
        h("div", { class: "row" },
          h("strong", { "data-testid": "tree-count" }),
          h("span", { class: "spacer" }),
          h("button", { type: "button", "data-testid": "tree-open-all", onclick: () => { treeView.openAll(tree); drawTree(panel); } }, "Open every node"),
          h("button", { type: "button", "data-testid": "tree-open-path", onclick: () => { treeView.openPath(tree, winLeaf()); drawTree(panel); } }, "Only the winning path")),
        h("div", { class: "legend-line" },
          h("span", {}, h("span", { class: "swatch-win" }), " the winning path"),
          h("span", {}, "kept: chosen for the next level"),
          h("span", {}, "pruned (dimmed): not explored"),
          h("span", { class: "hide-narrow" }, "▸ opens a node; lower-ranked children come with “show more”")),
        treeView.el);
    }
    const count = panel.querySelector("[data-testid=tree-count]");
    count.textContent = `${fmt.count(tree.size)} nodes, depth ${tree.depth()}${path.length ? `; the winning path has ${path.length}` : ""}`;
    count.dataset.count = String(tree.size);
    treeView.render(tree, leaf);
  }

  function drawCandidates(panel) {
    const parts = [];
    const vote = votes[votes.length - 1];
    if (vote) {
      const counts = Object.entries(vote.counts || {}).sort((a, b) => b[1] - a[1]);
      const total = counts.reduce((s, [, n]) => s + n, 0) || 1;
      parts.push(h("h3", {}, "Votes"),
        h("p", { class: "help" }, `${vote.samples} samples so far; the leading answer is `, h("code", {}, String(vote.leader)),
          vote.confidence !== undefined ? ` (confidence ${fmt.percent(vote.confidence)})` : "", "."),
        h("div", { class: "table-wrap" }, h("table", { "data-testid": "votes" },
          h("thead", {}, h("tr", {}, h("th", {}, "Answer"), h("th", { class: "num" }, "Votes"), vote.weights ? h("th", { class: "num" }, "Weight") : null, h("th", {}, "Share"))),
          h("tbody", {}, counts.slice(0, 30).map(([answer, n]) => {
            const fill = h("div", { class: "fill" });
            fill.style.width = `${((n / total) * 100).toFixed(1)}%`;
            return h("tr", {}, h("td", {}, h("code", {}, answer)), h("td", { class: "num" }, n),
              vote.weights ? h("td", { class: "num" }, fmt.score(vote.weights[answer])) : null,
              h("td", { class: "gauge" }, h("div", { class: "bar" }, fill)));
          })))));
    }
    parts.push(h("h3", {}, `Candidates (${candidates.length})`));
    if (!candidates.length) {
      parts.push(note("empty", FINAL.has(job.status) ? "This job recorded no candidate answers." : "Candidate answers appear here as the job proposes and checks them."));
    } else {
      const [shown, more] = newest("candidates", candidates);
      parts.push(h("p", { class: "help" }, "Each answer the job proposed and how the verifier judged it, newest first."),
        h("div", { class: "table-wrap" }, h("table", { class: "stack", "data-testid": "candidates" },
          h("thead", {}, h("tr", {}, h("th", {}, "#"), h("th", {}, "Answer"), h("th", { class: "num" }, "Score"), h("th", {}, "Verifier"), h("th", { class: "hide-narrow" }, "Feedback"))),
          h("tbody", {}, shown.map((c) => h("tr", { "data-testid": "candidate-row" },
            h("td", { class: "mono", "data-label": "#" }, c.node ?? c.index ?? c.round ?? ""),
            h("td", {}, c.answer === null || c.answer === undefined ? h("span", { class: "muted" }, "no answer found in the reply") : h("code", {}, String(c.answer))),
            h("td", { class: "num", "data-label": "Score" }, fmt.score(c.score)),
            h("td", {}, c.passed ? h("span", { class: "badge ok" }, "passed") : h("span", { class: "badge bad" }, "failed")),
            h("td", { class: "hide-narrow small" }, c.feedback || "")))))), more);
    }
    replace(panel, ...parts);
  }

  function drawCalls(panel) {
    if (!steps.length) {
      replace(panel, note("empty", FINAL.has(job.status) ? "This job made no calls." : "Every model and verifier call appears here once it is journaled; none yet."));
      return;
    }
    const billed = steps.filter((s) => s.kind === "sample");
    const tokens = billed.reduce((n, s) => n + s.tokens, 0);
    const replayed = steps.filter((s) => s.replayed).length;
    const kinds = [...new Set(steps.map((s) => s.kind))];
    const filter = h("select", { id: "call-kind", "data-testid": "call-kind" },
      h("option", { value: "" }, "Every kind"),
      kinds.map((k) => h("option", { value: k, selected: k === callKind }, `${KINDS[k] || k} calls`)));
    filter.addEventListener("change", () => { callKind = filter.value; shownRows.calls = ROWS; drawPanel("calls"); panels.calls.querySelector("#call-kind")?.focus(); });
    const [shown, more] = newest("calls", callKind ? steps.filter((s) => s.kind === callKind) : steps);
    replace(panel,
      h("p", { class: "help", "data-testid": "calls-summary" },
        `${steps.length} journaled calls (${billed.length} to the model, ${fmt.count(tokens)} tokens)`,
        replayed ? `; ${replayed} replayed from the journal by a later slice, not made again` : "",
        ". Newest first. Verifier and reward-model calls are not billed."),
      h("div", { class: "filters" }, h("div", {}, h("label", { for: "call-kind" }, "Show"), filter)),
      h("div", { class: "table-wrap" }, h("table", { class: "stack", "data-testid": "calls" },
        h("thead", {}, h("tr", {},
          h("th", { class: "num" }, "#"), h("th", {}, "Kind"), h("th", {}, "Status"),
          h("th", { class: "num" }, "Tokens"), h("th", { class: "num" }, "Latency"), h("th", { class: "num hide-narrow" }, "Cost"),
          h("th", { class: "hide-narrow" }, "Slice"), h("th", {}, "Replayed"))),
        h("tbody", {}, shown.map((s) => h("tr", { "data-testid": "call-row" },
          h("td", { class: "num", "data-label": "#" }, s.key),
          h("td", { "data-label": "Kind" }, KINDS[s.kind] || s.kind),
          h("td", { "data-label": "Status" }, s.status === "pending" ? fmt.status(FINAL.has(job.status) ? "lost" : "pending") : "done"),
          h("td", { class: "num", "data-label": "Tokens" }, s.kind === "sample" ? fmt.count(s.tokens) : "—"),
          h("td", { class: "num", "data-label": "Latency" }, s.seconds === null ? "in flight" : fmt.duration(s.seconds)),
          h("td", { class: "num hide-narrow" }, s.kind === "sample" ? fmt.cost(s.cost_usd) : "—"),
          h("td", { class: "hide-narrow" }, s.attempt),
          h("td", { "data-label": "Replayed" }, s.replayed ? h("span", { class: "badge", title: "a later slice took this result from the journal" }, "replayed") : "no")))))), more);
  }

  function drawEvents(panel) {
    const [shown, more] = newest("events", events);
    replace(panel,
      h("p", { class: "help" }, `${events.length} events, as the job wrote them (and GET /v1/jobs/{id}/events streams them), newest first.`),
      h("div", { class: "table-wrap" }, h("table", { class: "stack", "data-testid": "events" },
        h("thead", {}, h("tr", {}, h("th", { class: "num" }, "#"), h("th", {}, "Event"), h("th", { class: "hide-narrow" }, "When"), h("th", {}, "Data"))),
        h("tbody", {}, shown.map((e) => h("tr", {},
          h("td", { class: "num", "data-label": "#" }, e.seq), h("td", {}, h("strong", {}, e.kind)),
          h("td", { class: "hide-narrow small" }, new Date(e.at).toLocaleTimeString()),
          h("td", { class: "mono small wide" }, JSON.stringify(e.data))))))), more);
  }

  let deliveries = null;
  let deliveryError = null;
  async function refreshDeliveries() {
    try {
      deliveries = (await api(`/v1/jobs/${encodeURIComponent(id)}/deliveries`, { signal })).deliveries;
      deliveryError = null;
    } catch (err) {
      if (signal.aborted) return;
      deliveryError = err.detail || err.message;
    }
    if (selected === "webhooks") drawPanel("webhooks");
  }

  function drawWebhooks(panel) {
    if (deliveryError) return replace(panel, note("error", `The deliveries could not be loaded: ${deliveryError}`));
    if (deliveries === null) return replace(panel, note("loading", "Loading the deliveries…"));
    if (!deliveries.length) {
      return replace(panel, note("empty", job.webhook_url
        ? "Nothing sent yet: a signed event goes to the job's webhook URL when the job ends."
        : "This job has no webhook URL, so nothing is sent. Give a webhook_url when you submit a job to receive a signed event when it ends."));
    }
    replace(panel, h("div", { class: "table-wrap" }, h("table", { class: "stack", "data-testid": "deliveries" },
      h("thead", {}, h("tr", {}, h("th", {}, "Event"), h("th", {}, "Status"), h("th", { class: "num" }, "Attempts"), h("th", { class: "hide-narrow" }, "Last answer"), h("th", {}, ""))),
      h("tbody", {}, deliveries.map((d) => {
        const result = h("div", { "aria-live": "polite", class: "small" });
        const button = h("button", { type: "button", "data-testid": "redeliver" }, "Redeliver");
        button.addEventListener("click", async () => {
          button.disabled = true;
          try {
            const after = await api(`/v1/deliveries/${d.id}/redeliver`, { method: "POST", signal });
            replace(result, note("info", `Sent again (status: ${after.status}). The same webhook-id goes with it, so the receiver can drop a repeat.`));
            setTimeout(refreshDeliveries, 1500);
          } catch (err) {
            if (!signal.aborted) replace(result, note("error", `Could not redeliver: ${err.detail || err.message}`));
          } finally {
            button.disabled = false;
          }
        });
        return h("tr", { "data-testid": "delivery-row", "data-delivery-id": d.id },
          h("td", { class: "wide" }, h("div", {}, d.event_type), h("div", { class: "muted small mono" }, d.url),
            h("details", {}, h("summary", { class: "small" }, "Attempts"),
              d.attempt_log.length ? h("ul", { class: "small" }, d.attempt_log.map((a) => h("li", {},
                `#${a.number} ${fmt.when(a.started_at)}: ${a.status_code ?? "no answer"}, ${Math.round(a.latency_ms)} ms${a.error ? ` — ${a.error}` : ""}`))) : h("p", { class: "small muted" }, "None yet."))),
          h("td", {}, fmt.status(d.status)),
          h("td", { class: "num", "data-label": "Attempts", "data-testid": "delivery-attempts" }, d.attempts),
          h("td", { class: "hide-narrow small" }, d.last_status_code ?? d.last_error ?? "—"),
          h("td", { class: "wide" }, button, result));
      })))));
  }

  function drawPanel(key) {
    const panel = panels[key];
    if (!panel) return;
    if (key === "tree") drawTree(panel);
    else if (key === "candidates") drawCandidates(panel);
    else if (key === "calls") drawCalls(panel);
    else if (key === "events") drawEvents(panel);
    else if (key === "webhooks") drawWebhooks(panel);
  }

  function drawAll() {
    drawHead();
    drawSummary();
    drawGauges();
    drawCurve();
    if (selected) drawPanel(selected);
  }

  let drawTimer = null;
  function drawSoon() {
    if (drawTimer) return;
    drawTimer = setTimeout(() => { drawTimer = null; if (!signal.aborted) drawAll(); }, DRAW_MS);
  }

  const asked = params.query.get("tab");
  select(asked && panels[asked] ? asked : hasTree && tree.size ? "tree" : "candidates");
  drawAll();

  async function refreshCalls() {
    try {
      const fresh = await api(`/v1/jobs/${encodeURIComponent(id)}/trace`, { signal });
      steps = fresh.steps;
      spend = fresh.spend;
      for (const e of fresh.events) apply(e.kind, e.data, e.seq, e.at);
      if (selected === "calls") drawPanel("calls");
    } catch (err) {
      if (!signal.aborted && selected === "calls") panels.calls.prepend(note("error", `The calls could not be refreshed: ${err.detail || err.message}`));
    }
  }

  async function refreshJob() {
    try {
      const fresh = await api(`/v1/jobs/${encodeURIComponent(id)}`, { signal });
      job = fresh;
      drawSoon();
    } catch (err) {
      if (!signal.aborted) liveBox.textContent = `Could not refresh: ${err.detail || err.message}`;
    }
  }

  if (FINAL.has(job.status)) {
    liveBox.textContent = "";
    return;
  }

  // ---- live: the event stream, plus the job's spend every few seconds
  liveBox.textContent = "● live";
  const poll = setInterval(() => { if (!document.hidden) refreshJob(); }, JOB_POLL_MS);
  const callsPoll = setInterval(() => { if (selected === "calls" && !document.hidden) refreshCalls(); }, CALLS_POLL_MS);
  signal.addEventListener("abort", () => { clearInterval(poll); clearInterval(callsPoll); clearTimeout(drawTimer); });
  try {
    await stream(`/v1/jobs/${encodeURIComponent(id)}/events`, {
      signal,
      lastEventId: lastSeq,
      onState: (s) => { liveBox.textContent = s === "retrying" ? "reconnecting…" : s === "open" ? "● live" : ""; },
      onEvent: (e) => {
        const payload = e.data;
        apply(payload.kind ?? e.event, payload.data ?? {}, payload.seq ?? Number(e.id), payload.at);
        drawSoon();
      },
    });
  } finally {
    clearInterval(poll);
    clearInterval(callsPoll);
  }
  if (signal.aborted) return;
  // the job has ended: its final figures, calls and deliveries
  liveBox.textContent = "";
  await refreshJob();
  await refreshCalls();
  if (selected === "webhooks") await refreshDeliveries();
  drawAll();
}
