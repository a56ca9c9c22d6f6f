// Numbers, money, times and statuses as people read them.

import { h } from "./dom.js";

const int = new Intl.NumberFormat("en-US");

/** 1234567 -> "1,234,567"; null -> "—". */
export function count(n) {
  return n === null || n === undefined ? "—" : int.format(n);
}

/** Tokens, short: 950 -> "950", 12345 -> "12.3k", 2500000 -> "2.5M". */
export function tokens(n) {
  if (n === null || n === undefined) return "—";
  if (Math.abs(n) < 1000) return String(Math.round(n));
  if (Math.abs(n) < 1e6) return `${(n / 1e3).toFixed(n < 1e4 ? 2 : 1).replace(/\.?0+$/, "")}k`;
  return `${(n / 1e6).toFixed(2).replace(/\.?0+$/, "")}M`;
}

/** US dollars: 0 -> "$0", 0.00123 -> "$0.0012", 12.5 -> "$12.50". */
export function cost(usd) {
  if (usd === null || usd === undefined) return "—";
  if (usd === 0) return "$0";
  if (Math.abs(usd) < 0.01) return `$${usd.toPrecision(2)}`;
  return `$${usd.toFixed(2)}`;
}

/** Seconds: 0.42 -> "420 ms", 75 -> "1 min 15 s", 7300 -> "2 h 1 min". */
export function duration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "—";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds < 10 ? seconds.toFixed(1) : Math.round(seconds)} s`;
  const m = Math.floor(seconds / 60);
  if (m < 60) return `${m} min ${Math.round(seconds % 60)} s`;
  const hours = Math.floor(m / 60);
  if (hours < 48) return `${hours} h ${m % 60} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

/** How long ago an ISO time was: "just now", "5 s ago", "3 min ago", "2 h ago", a date. */
export function age(iso, now = Date.now()) {
  if (!iso) return "—";
  const seconds = (now - Date.parse(iso)) / 1000;
  if (seconds < 5) return "just now";
  if (seconds < 60) return `${Math.floor(seconds)} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 172800) return `${Math.floor(seconds / 3600)} h ago`;
  return new Date(iso).toLocaleDateString();
}

/** A full local date and time, for tooltips. */
export function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "—";
}

/** A score 0..1 as "0.75" (null: "—"). */
export function score(x) {
  return x === null || x === undefined ? "—" : Number(x).toFixed(2).replace(/0$/, "");
}

/** Percent of a budget: 0.456 -> "46%". */
export function percent(fraction) {
  return fraction === null || fraction === undefined ? "—" : `${Math.round(fraction * 100)}%`;
}

const STATUS_WORDS = {
  queued: "Queued",
  running: "Running",
  completed: "Completed",
  failed: "Failed",
  cancelled: "Cancelled",
  pending: "Pending",
  delivered: "Delivered",
  disabled: "Disabled",
  started: "Started",
  skipped: "Skipped",
  done: "Done",
  lost: "Lost",
};

/** A status as a coloured badge; its text is the status word. */
export function status(value) {
  const word = STATUS_WORDS[value] || String(value || "unknown");
  return h("span", { class: `badge status-${value}`, "data-status": value }, word);
}

/** A job's stop reason in words. */
export function stopReason(reason) {
  return {
    verified: "found a verified answer",
    budget_exhausted: "used up its budget",
    deadline: "reached its time limit",
    search_exhausted: "searched everything it could",
    cancelled: "was cancelled",
    error: "stopped on an error",
    daily_spend_limit: "reached the tenant's spend limit for the day",
  }[reason] || reason || "";
}

/** A short id for tables: the first 8 characters. */
export function shortId(id) {
  return id ? String(id).slice(0, 8) : "—";
}
