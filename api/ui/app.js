// The dashboard's shell: the sign-in form, the navigation and a hash router that
// loads one page module per route (pages/<name>.js, each exporting
// `render(root, params, ctx)`).

import { api, apiText, getKey, setKey, clearKey, ApiError } from "./lib/api.js";
import { stream } from "./lib/stream.js";
import { h, clear, note } from "./lib/dom.js";

// [pattern, page module, nav section]. `params.id` is the first capture (decoded);
// `params.query` the URLSearchParams after "?" in the hash (e.g. #/jobs?status=running).
const ROUTES = [
  [/^\/jobs$/, "jobs", "jobs"],
  [/^\/jobs\/([^/]+)$/, "job", "jobs"],
  [/^\/playground$/, "playground", "playground"],
  [/^\/batches$/, "batches", "batches"],
  [/^\/batches\/([^/]+)$/, "batch", "batches"],
  [/^\/schedules$/, "schedules", "schedules"],
  [/^\/schedules\/([^/]+)$/, "schedule", "schedules"],
  [/^\/system$/, "system", "system"],
];

const NAV = [
  ["jobs", "Jobs"],
  ["playground", "Playground"],
  ["batches", "Batches"],
  ["schedules", "Schedules"],
  ["system", "System"],
];

const main = document.getElementById("main");
const top = document.getElementById("top");
const nav = document.getElementById("nav");
let current = null; // the AbortController of the page on screen
let signInMessage = "";

function navigate(path, { replace = false } = {}) {
  const hash = path.startsWith("#") ? path : `#${path}`;
  if (replace) {
    history.replaceState(null, "", hash);
    route();
  } else if (location.hash === hash) {
    route();
  } else {
    location.hash = hash;
  }
}

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/jobs";
  const [path, search = ""] = raw.split("?");
  return { path, query: new URLSearchParams(search) };
}

function renderNav(section) {
  clear(nav);
  for (const [name, label] of NAV) {
    nav.appendChild(
      h("a", { href: `#/${name}`, "aria-current": name === section ? "page" : null, "data-testid": `nav-${name}` }, label),
    );
  }
}

function showSignIn(message = "") {
  if (current) current.abort();
  current = null;
  top.hidden = true;
  clear(main);
  document.title = "Sign in · Ponder";
  const input = h("input", {
    id: "api-key",
    name: "api-key",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    required: true,
    "data-testid": "login-key",
    "aria-describedby": "api-key-help",
  });
  const problem = h("div", { "aria-live": "polite" });
  if (message) problem.appendChild(note("error", message));
  const button = h("button", { type: "submit", class: "primary", "data-testid": "login-submit" }, "Sign in");
  const form = h(
    "form",
    { class: "signin card", "data-testid": "login-form" },
    h("h1", {}, "Ponder dashboard"),
    h("p", {}, "Ponder runs problems through test-time-compute strategies (best-of-N, beam search, MCTS, …) under a compute budget. This page shows your jobs as they run."),
    h("label", { for: "api-key" }, "API key"),
    input,
    h("p", { id: "api-key-help", class: "help" },
      "Paste an API key (an operator creates one with ",
      h("code", {}, "ponder keys create --tenant NAME"),
      "). It is kept in this browser tab only and forgotten when the tab closes."),
    problem,
    button,
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const key = input.value.trim();
    if (!key) return;
    button.disabled = true;
    clear(problem).appendChild(note("loading", "Checking the key…"));
    setKey(key);
    try {
      await api("/v1/jobs?limit=1");
      signInMessage = "";
      top.hidden = false;
      route();
    } catch (err) {
      clearKey();
      button.disabled = false;
      const text =
        err instanceof ApiError && err.status === 401
          ? "That key was not accepted. Check that it was copied whole and has not been revoked."
          : err instanceof ApiError && err.status === 403
            ? "That key cannot read (it lacks the read scope). The dashboard needs a key with the read scope."
            : err.message;
      clear(problem).appendChild(note("error", text));
      input.focus();
    }
  });
  main.appendChild(form);
  input.focus();
}

async function route() {
  if (!getKey()) {
    showSignIn(signInMessage);
    return;
  }
  top.hidden = false;
  const { path, query } = parseHash();
  const found = ROUTES.map(([re, page, section]) => [path.match(re), page, section]).find(([m]) => m);
  if (current) current.abort();
  const controller = new AbortController();
  current = controller;
  clear(main);
  if (!found) {
    renderNav(null);
    document.title = "Not found · Ponder";
    main.appendChild(note("error", "There is no page at this address. ", h("a", { href: "#/jobs" }, "Go to the jobs list.")));
    return;
  }
  const [match, page, section] = found;
  renderNav(section);
  const root = h("section", { class: "page", "data-page": page, "data-testid": `page-${page}` });
  main.appendChild(root);
  const params = { query };
  if (match[1] !== undefined) params.id = decodeURIComponent(match[1]);
  const ctx = { api, apiText, stream, h, navigate, signal: controller.signal, setTitle };
  setTitle(NAV.find(([n]) => n === section)?.[1] || "Ponder");
  root.appendChild(note("loading", "Loading…"));
  try {
    const module = await import(`./pages/${page}.js`);
    if (controller.signal.aborted) return;
    clear(root);
    await module.render(root, params, ctx);
  } catch (err) {
    if (controller.signal.aborted || err.name === "AbortError") return;
    if (err instanceof ApiError && err.status === 401) return; // the sign-in form is shown
    console.warn(err);
    clear(root).appendChild(
      note("error", err instanceof ApiError ? err.detail : `This page could not be shown: ${err.message}`),
    );
  }
}

function setTitle(text) {
  document.title = `${text} · Ponder`;
}

window.addEventListener("ponder:unauthorized", () => {
  if (top.hidden) return; // the sign-in form is on screen and says so itself
  signInMessage = "Your API key was not accepted (it may have been revoked). Paste a key to continue.";
  showSignIn(signInMessage);
});
window.addEventListener("hashchange", route);
document.getElementById("sign-out").addEventListener("click", () => {
  clearKey();
  signInMessage = "";
  showSignIn("");
});
document.getElementById("skip-link").addEventListener("click", (e) => {
  e.preventDefault();
  main.focus();
});
route();
