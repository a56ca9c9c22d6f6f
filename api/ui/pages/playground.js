// #/playground: build a job from the server's catalog (each strategy's parameters come
// from its JSON Schema in GET /v1/strategies, the models from GET /v1/models), submit it
// and go to its page. A refused job shows the server's explanation next to the form.

import { note, clear } from "../lib/dom.js";
import { cost } from "../lib/format.js";

const PROBLEMS = {
  game24: "Game of 24",
  arithmetic: "Arithmetic word problem",
  prompt: "Free-form prompt",
  json: "Any problem (JSON)",
};

const VERIFIERS = [
  ["", "The problem's own (default)"],
  ["game24", "game24: the expression uses the four numbers and makes 24"],
  ["exact", "exact: the answer equals the expected one"],
  ["numeric", "numeric: the number equals the expected one"],
  ["none", "none: the strategy picks (votes, self-evaluation)"],
  ["json", "Other (JSON)…"],
];

/** The schema of a property with `null` allowed: [the non-null schema, nullable]. */
function unwrap(schema) {
  const options = schema.anyOf || schema.oneOf;
  if (Array.isArray(options)) {
    const rest = options.filter((o) => o.type !== "null");
    if (rest.length === 1) return [{ ...rest[0], default: schema.default, description: schema.description, title: schema.title }, true];
  }
  return [schema, false];
}

function label(name, schema) {
  return schema.title || name.replace(/_/g, " ");
}

/** One form field for a JSON Schema property: {el, read(), name, input}. */
function field(h, name, schema, models) {
  const [s, nullable] = unwrap(schema);
  const id = `p-${name}`;
  const help = [];
  if (s.description) help.push(s.description);
  const bounds = [];
  if (s.minimum !== undefined) bounds.push(`at least ${s.minimum}`);
  if (s.exclusiveMinimum !== undefined) bounds.push(`more than ${s.exclusiveMinimum}`);
  if (s.maximum !== undefined) bounds.push(`at most ${s.maximum}`);
  if (s.exclusiveMaximum !== undefined) bounds.push(`less than ${s.exclusiveMaximum}`);
  if (bounds.length) {
    const text = bounds.join(", ");
    help.push(`${text[0].toUpperCase()}${text.slice(1)}.`);
  }
  if (schema.default !== undefined && schema.default !== null && s.type !== "boolean") help.push(`Default: ${schema.default}.`);
  const helpId = `${id}-help`;
  let input;
  let read;
  if (s.type === "boolean") {
    input = h("input", { type: "checkbox", id, checked: Boolean(schema.default), "data-testid": `param-${name}`, "aria-describedby": helpId });
    read = () => input.checked;
    return {
      name,
      input,
      read,
      el: h("div", { class: "field", "data-field": `strategy.params.${name}` },
        h("label", { class: "inline", for: id }, input, label(name, schema)),
        h("p", { class: "help", id: helpId }, help.join(" ")),
        h("div", { class: "field-error", "data-error-for": `strategy.params.${name}` })),
    };
  }
  const enumValues = s.enum || (name === "reward_model" ? models.filter((m) => m.kind === "reward").map((m) => m.name) : null);
  if (enumValues) {
    input = h("select", { id, "data-testid": `param-${name}`, "aria-describedby": helpId },
      nullable ? h("option", { value: "" }, "(none)") : null,
      enumValues.map((v) => h("option", { value: v, selected: v === schema.default }, String(v))));
    if (schema.default && !enumValues.includes(schema.default)) input.append(h("option", { value: schema.default, selected: true }, schema.default));
    read = () => (input.value === "" ? null : input.value);
  } else if (s.type === "integer" || s.type === "number") {
    input = h("input", {
      type: "number", id, inputmode: s.type === "integer" ? "numeric" : "decimal",
      step: s.type === "integer" ? "1" : "any",
      min: s.minimum, max: s.maximum,
      value: schema.default === null || schema.default === undefined ? "" : String(schema.default),
      placeholder: nullable ? "none" : "",
      "data-testid": `param-${name}`, "aria-describedby": helpId,
    });
    read = () => {
      if (input.value.trim() === "") return null;
      const n = Number(input.value);
      return Number.isNaN(n) ? input.value : n;
    };
  } else {
    input = h("input", { type: "text", id, value: schema.default ?? "", "data-testid": `param-${name}`, "aria-describedby": helpId });
    read = () => (input.value === "" ? null : input.value);
  }
  return {
    name,
    input,
    read,
    el: h("div", { class: "field", "data-field": `strategy.params.${name}` },
      h("label", { for: id }, label(name, schema)),
      input,
      h("p", { class: "help", id: helpId }, help.join(" ")),
      h("div", { class: "field-error", "data-error-for": `strategy.params.${name}` })),
  };
}

export async function render(root, params, { api, h, navigate, signal, setTitle }) {
  setTitle("Playground");
  root.append(note("loading", "Loading the strategies and models this server offers…"));
  const [strategies, models] = await Promise.all([api("/v1/strategies", { signal }), api("/v1/models", { signal })]);
  clear(root);
  if (!strategies.length) {
    root.append(note("empty", "This server offers no strategies, so no job can be built here."));
    return;
  }
  const chat = models.filter((m) => m.kind === "chat");
  const wanted = params.query.get("strategy") || (strategies.some((s) => s.name === "best_of_n") ? "best_of_n" : null);

  // ---- problem
  const kind = h("select", { id: "problem-kind", "data-testid": "problem-kind" },
    Object.entries(PROBLEMS).map(([k, v]) => h("option", { value: k }, v)));
  const numbers = h("input", { id: "game24-numbers", type: "text", value: "4 9 10 13", inputmode: "numeric", "data-testid": "problem-numbers", "aria-describedby": "game24-help" });
  const question = h("textarea", { id: "question", rows: 3, "data-testid": "problem-question" }, "A shop has 17 apples. It sells 5 and buys 12 more. How many apples does it have?");
  const qExpected = h("input", { id: "question-expected", type: "text", value: "24", "data-testid": "problem-expected-number" });
  const prompt = h("textarea", { id: "prompt", rows: 4, "data-testid": "problem-prompt" }, "What is the capital of France?");
  const pExpected = h("input", { id: "prompt-expected", type: "text", value: "", placeholder: "optional", "data-testid": "problem-expected" });
  const json = h("textarea", { id: "problem-json", rows: 5, "data-testid": "problem-json" }, JSON.stringify({ task: "game24", input: { numbers: [3, 3, 8, 8] } }, null, 2));
  const panes = {
    game24: h("div", {}, h("label", { for: "game24-numbers" }, "Four numbers"), numbers,
      h("p", { class: "help", id: "game24-help" }, "Four whole numbers from 1 to 13. The job looks for an expression using each once that makes 24. The search strategies (beam search, tree of thoughts, MCTS) work step by step on this task.")),
    arithmetic: h("div", {}, h("label", { for: "question" }, "Question"), question,
      h("label", { for: "question-expected" }, "Expected answer (a number)"), qExpected,
      h("p", { class: "help" }, "The numeric verifier checks answers against it.")),
    prompt: h("div", {}, h("label", { for: "prompt" }, "Prompt"), prompt,
      h("label", { for: "prompt-expected" }, "Expected answer"), pExpected,
      h("p", { class: "help" }, "With an expected answer, answers are checked for an exact match; without one, nothing checks them and the strategy chooses (e.g. by votes).")),
    json: h("div", {}, h("label", { for: "problem-json" }, "Problem (JSON)"), json,
      h("p", { class: "help" }, "Either {\"task\": …, \"input\": {…}} for a known task, or {\"prompt\": \"…\"} or {\"messages\": […]}; \"expected\" is the known answer.")),
  };
  const paneBox = h("div", { "data-error-for": "problem" });
  function showPane() {
    clear(paneBox).append(panes[kind.value]);
  }
  kind.addEventListener("change", () => { showPane(); preview(); });
  showPane();

  // ---- strategy
  const strategy = h("select", { id: "strategy", "data-testid": "strategy" },
    strategies.map((s) => h("option", { value: s.name, selected: s.name === wanted }, s.name)));
  const strategyHelp = h("p", { class: "help", id: "strategy-help", "data-testid": "strategy-description" });
  const paramBox = h("div", { class: "fields", "data-testid": "strategy-params" });
  let fields = [];
  function showStrategy() {
    const spec = strategies.find((s) => s.name === strategy.value);
    strategyHelp.textContent = spec.description;
    const props = spec.params_schema.properties || {};
    fields = Object.entries(props).map(([name, schema]) => ({ ...field(h, name, schema, models), schema }));
    clear(paramBox);
    if (!fields.length) paramBox.append(h("p", { class: "muted" }, "This strategy takes no parameters."));
    for (const f of fields) {
      paramBox.append(f.el);
      f.input.addEventListener("input", preview);
      f.input.addEventListener("change", preview);
    }
  }
  strategy.addEventListener("change", () => { showStrategy(); preview(); });
  showStrategy();

  // ---- model, verifier
  const model = h("select", { id: "model", "data-testid": "model" },
    chat.map((m) => h("option", { value: m.name, selected: m.name === "sim" },
      m.price_in_per_mtok || m.price_out_per_mtok
        ? `${m.name} (${m.provider}; ${cost(m.price_in_per_mtok)} in, ${cost(m.price_out_per_mtok)} out per million tokens)`
        : `${m.name} (${m.provider}; free)`)));
  const verifier = h("select", { id: "verifier", "data-testid": "verifier" }, VERIFIERS.map(([v, t]) => h("option", { value: v }, t)));
  const verifierJson = h("textarea", { id: "verifier-json", rows: 3, hidden: true, "data-testid": "verifier-json", "aria-label": "Verifier (JSON)" }, '{"type": "regex", "pattern": "^\\\\d+$"}');
  verifier.addEventListener("change", () => { verifierJson.hidden = verifier.value !== "json"; preview(); });

  // ---- budget
  const budgetFields = [
    ["max_tokens", "Tokens", "20000", "Prompt + completion tokens, all calls together."],
    ["max_calls", "Model calls", "64", "Model generations (a request for 8 samples counts 8)."],
    ["max_cost_usd", "Cost (US dollars)", "", "At the model's prices; blank for no cap."],
    ["max_seconds", "Seconds", "120", "Running time; the job stops with its best answer so far."],
  ].map(([name, text, value, help]) => {
    const input = h("input", { type: "number", id: `b-${name}`, min: "0", step: name === "max_cost_usd" || name === "max_seconds" ? "any" : "1", value, "data-testid": `budget-${name}`, "aria-describedby": `b-${name}-help` });
    input.addEventListener("input", preview);
    return {
      name, input,
      el: h("div", { class: "field", "data-field": `budget.${name}` },
        h("label", { for: `b-${name}` }, text), input,
        h("p", { class: "help", id: `b-${name}-help` }, help),
        h("div", { class: "field-error", "data-error-for": `budget.${name}` })),
    };
  });

  // ---- more
  const priority = h("input", { type: "number", id: "priority", min: "0", max: "9", step: "1", value: "0", "data-testid": "priority" });
  const seed = h("input", { type: "number", id: "seed", min: "0", step: "1", placeholder: "random", "data-testid": "seed" });
  const webhook = h("input", { type: "url", id: "webhook", placeholder: "https://example.com/hooks/ponder", "data-testid": "webhook-url" });

  const errors = h("div", { "aria-live": "assertive", "data-testid": "submit-errors" });
  const submit = h("button", { type: "submit", class: "primary", "data-testid": "submit-job" }, "Run this job");
  const requestPre = h("pre", { "data-testid": "request-preview" });

  const form = h("form", { "data-testid": "playground-form", novalidate: true },
    h("div", { class: "pagehead" }, h("h1", {}, "Playground")),
    h("p", { class: "help" }, "Build a job and run it. Pick a problem, a strategy (how to spend compute on it), a model and a budget; the job keeps the best answer it finds. Every field says what it does; the form comes from what this server offers."),
    h("div", { class: "grid2" },
      h("div", { class: "card" }, h("h2", {}, "1. Problem"),
        h("label", { for: "problem-kind" }, "Kind of problem"), kind, paneBox,
        h("div", { class: "field-error", "data-error-for": "problem" })),
      h("div", { class: "card" }, h("h2", {}, "2. Model and verifier"),
        h("label", { for: "model" }, "Model"), model,
        h("div", { class: "field-error", "data-error-for": "model" }),
        h("p", { class: "help" }, "sim is a simulated model built into Ponder: free, and good for trying strategies."),
        h("label", { for: "verifier" }, "Verifier"), verifier, verifierJson,
        h("p", { class: "help" }, "How candidate answers are checked. Strategies keep the answers that pass."),
        h("div", { class: "field-error", "data-error-for": "verifier" }))),
    h("div", { class: "card" }, h("h2", {}, "3. Strategy"),
      h("label", { for: "strategy" }, "Strategy"), strategy, strategyHelp,
      h("div", { class: "field-error", "data-error-for": "strategy" }),
      h("h3", {}, "Parameters"), paramBox),
    h("div", { class: "card" }, h("h2", {}, "4. Budget"),
      h("p", { class: "help" }, "Hard caps: the job never spends more, and stops with its best answer so far when one runs out. Set at least one of tokens, calls or cost."),
      h("div", { class: "fields" }, budgetFields.map((f) => f.el)),
      h("div", { class: "field-error", "data-error-for": "budget" })),
    h("details", { class: "card" }, h("summary", {}, "More options (priority, seed, webhook)"),
      h("div", { class: "fields" },
        h("div", { class: "field", "data-field": "priority" }, h("label", { for: "priority" }, "Priority"), priority,
          h("p", { class: "help" }, "0 to 9; higher runs sooner when workers are busy."), h("div", { class: "field-error", "data-error-for": "priority" })),
        h("div", { class: "field", "data-field": "seed" }, h("label", { for: "seed" }, "Seed"), seed,
          h("p", { class: "help" }, "For a reproducible run; blank for a random one."), h("div", { class: "field-error", "data-error-for": "seed" })),
        h("div", { class: "field", "data-field": "webhook_url" }, h("label", { for: "webhook" }, "Webhook URL"), webhook,
          h("p", { class: "help" }, "Receives a signed event when the job ends."), h("div", { class: "field-error", "data-error-for": "webhook_url" })))),
    errors,
    h("div", { class: "row" }, submit),
    h("details", { class: "card" }, h("summary", {}, "The request this sends (POST /v1/jobs)"), requestPre),
  );
  root.append(form);
  for (const el of [numbers, question, qExpected, prompt, pExpected, json, model, verifierJson, priority, seed, webhook]) {
    el.addEventListener("input", preview);
    el.addEventListener("change", preview);
  }

  function problemBody() {
    switch (kind.value) {
      case "game24":
        return { task: "game24", input: { numbers: numbers.value.split(/[\s,]+/).filter(Boolean).map((x) => (/^-?\d+$/.test(x) ? Number(x) : x)) } };
      case "arithmetic": {
        const expected = qExpected.value.trim();
        return { task: "arithmetic", input: { question: question.value }, ...(expected ? { expected: Number.isNaN(Number(expected)) ? expected : Number(expected) } : {}) };
      }
      case "prompt": {
        const expected = pExpected.value.trim();
        return { prompt: prompt.value, ...(expected ? { expected } : {}) };
      }
      default:
        return JSON.parse(json.value);
    }
  }

  function body() {
    const out = { problem: problemBody(), strategy: { name: strategy.value, params: {} }, model: model.value };
    for (const f of fields) {
      const value = f.read();
      const [, nullable] = unwrap(f.schema);
      if (value === null && !nullable) continue;
      if (value === (f.schema.default ?? null)) continue; // the default: leave it to the server
      out.strategy.params[f.name] = value;
    }
    if (verifier.value === "json") out.verifier = JSON.parse(verifierJson.value);
    else if (verifier.value) out.verifier = { type: verifier.value };
    const budget = {};
    for (const f of budgetFields) {
      if (f.input.value.trim() !== "") budget[f.name] = Number(f.input.value);
    }
    if (Object.keys(budget).length) out.budget = budget;
    if (priority.value.trim() !== "" && Number(priority.value) !== 0) out.priority = Number(priority.value);
    if (seed.value.trim() !== "") out.seed = Number(seed.value);
    if (webhook.value.trim()) out.webhook_url = webhook.value.trim();
    return out;
  }

  function preview() {
    try {
      requestPre.textContent = JSON.stringify(body(), null, 2);
    } catch (err) {
      requestPre.textContent = `Not valid JSON yet: ${err.message}`;
    }
  }
  preview();

  function clearErrors() {
    clear(errors);
    for (const el of form.querySelectorAll(".field-error")) clear(el);
    for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  }

  function showErrors(detail, list) {
    const items = [];
    for (const e of list) {
      const loc = (e.loc || []).filter((p) => p !== "body");
      const where = loc.join(".");
      items.push(h("li", {}, where ? h("code", {}, where) : null, where ? ": " : "", e.msg));
      // the most precise field that has an error slot
      for (let n = loc.length; n > 0; n -= 1) {
        const slot = form.querySelector(`[data-error-for="${CSS.escape(loc.slice(0, n).join("."))}"]`);
        if (slot) {
          slot.append(h("div", {}, e.msg));
          slot.closest("[data-field]")?.querySelector("input, select, textarea")?.setAttribute("aria-invalid", "true");
          break;
        }
      }
    }
    errors.append(note("error", h("strong", {}, "The job was not accepted. "), detail,
      items.length ? h("ul", { "data-testid": "submit-error-list" }, items) : null));
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearErrors();
    let request;
    try {
      request = body();
    } catch (err) {
      showErrors(`A JSON field does not parse: ${err.message}`, []);
      return;
    }
    submit.disabled = true;
    submit.textContent = "Submitting…";
    try {
      const job = await api("/v1/jobs", { method: "POST", body: request, signal });
      navigate(`/jobs/${job.id}`);
    } catch (err) {
      if (signal.aborted || err.name === "AbortError") return;
      showErrors(err.detail || err.message, err.errors || []);
      errors.scrollIntoView({ block: "nearest" });
    } finally {
      submit.disabled = false;
      submit.textContent = "Run this job";
    }
  });
}
