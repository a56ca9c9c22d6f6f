// #/schedules: the tenant's schedules with their next fire times.

import { note, clear } from "../lib/dom.js";
import * as fmt from "../lib/format.js";
import { stacked } from "../lib/tables.js";

/** How far ahead an ISO time is: "in 5 min", "in 3 h", or a date. */
export function until(iso, now = Date.now()) {
  if (!iso) return "—";
  const seconds = (Date.parse(iso) - now) / 1000;
  if (seconds < 0) return fmt.age(iso, now);
  if (seconds < 60) return `in ${Math.max(1, Math.round(seconds))} s`;
  if (seconds < 3600) return `in ${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `in ${Math.round(seconds / 3600)} h`;
  return `in ${Math.round(seconds / 86400)} days`;
}

/** Enabled or paused, as a badge. */
export function stateBadge(h, schedule) {
  return schedule.enabled
    ? h("span", { class: "badge ok", "data-testid": "schedule-state" }, "Active")
    : h("span", { class: "badge", "data-testid": "schedule-state" }, "Paused");
}

export async function render(root, params, { api, h, signal, setTitle }) {
  setTitle("Schedules");
  const body = h("div", { "data-testid": "schedules-body" }, note("loading", "Loading your schedules…"));
  const more = h("button", { type: "button", hidden: true, "data-testid": "schedules-more" }, "Show more schedules");
  root.append(
    h("div", { class: "pagehead" }, h("h1", {}, "Schedules")),
    h("p", { class: "help" },
      "A schedule creates a batch from its template every time its cron expression fires (for example every night), so the same evaluation runs again and again. Open one to run it now or to run past dates."),
    h("div", { class: "card" }, body, more),
  );

  let rows = [];
  let cursor = null;

  function draw() {
    clear(body);
    if (!rows.length) {
      body.append(note("empty", h("span", {}, "No schedules yet. Create one with ",
        h("code", {}, "POST /v1/schedules"), " (a name, a cron expression such as ", h("code", {}, "0 2 * * *"),
        " and the batch to create each time); it then appears here.")));
      more.hidden = true;
      return;
    }
    body.append(h("div", { class: "table-wrap" },
      stacked(h("table", { "data-testid": "schedules-table" },
        h("thead", {}, h("tr", {},
          h("th", {}, "Schedule"), h("th", {}, "State"), h("th", {}, "When"),
          h("th", {}, "Next run"), h("th", { class: "hide-narrow" }, "Last scheduled run"))),
        h("tbody", {}, rows.map((s) =>
          h("tr", { "data-testid": "schedule-row", "data-schedule-id": s.id },
            h("td", {}, h("a", { href: `#/schedules/${s.id}` }, s.name)),
            h("td", {}, stateBadge(h, s)),
            h("td", {}, h("code", {}, s.cron), h("span", { class: "muted small" }, ` ${s.timezone}`)),
            h("td", { title: fmt.when(s.next_fire_times[0]) },
              s.next_fire_times.length ? until(s.next_fire_times[0]) : h("span", { class: "muted" }, s.enabled ? "none left (ended)" : "paused")),
            h("td", { class: "hide-narrow", title: fmt.when(s.last_fire_time) }, s.last_fire_time ? fmt.age(s.last_fire_time) : "never"))))))));
    more.hidden = !cursor;
  }

  async function load(extra = "") {
    const page = await api(`/v1/schedules?limit=50${extra}`, { signal });
    rows = [...rows, ...page.data];
    cursor = page.next_cursor;
    draw();
  }

  more.addEventListener("click", async () => {
    more.disabled = true;
    try {
      await load(`&cursor=${encodeURIComponent(cursor)}`);
    } catch (err) {
      if (!signal.aborted) body.append(note("error", `More schedules could not be loaded: ${err.detail || err.message}`));
    } finally {
      more.disabled = false;
    }
  });

  try {
    await load();
  } catch (err) {
    if (signal.aborted || err.name === "AbortError") return;
    clear(body).append(note("error", `Your schedules could not be loaded: ${err.detail || err.message}`));
  }
}
