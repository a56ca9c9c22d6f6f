// Building DOM without innerHTML: h("a", {href: "#/jobs", class: "x"}, "Jobs").
// Attributes: `class`, `data-*`, `aria-*` and others are set as attributes; `on<event>`
// functions become listeners; `value`, `checked`, `selected`, `disabled` are properties;
// null, undefined and false leave an attribute out. Children: nodes, strings, numbers,
// arrays of them (nested), null/undefined/false (skipped).

const SVG_NS = "http://www.w3.org/2000/svg";
const PROPS = new Set(["value", "checked", "selected", "disabled", "indeterminate"]);

function apply(el, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (PROPS.has(key)) {
      el[key] = value;
    } else if (key === "style") {
      throw new Error("inline styles are not allowed (the page's security policy); use a class");
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/** An HTML element. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  apply(el, attrs);
  append(el, children);
  return el;
}

/** An SVG element (for charts and the search tree). */
export function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  apply(el, attrs);
  append(el, children);
  return el;
}

/** Remove every child of `el`. */
export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

/** Replace the children of `el` with `children`. */
export function replace(el, ...children) {
  clear(el);
  append(el, children);
  return el;
}

/** A message box: kind is "info", "error", "empty" or "loading". */
export function note(kind, ...children) {
  const role = kind === "error" ? "alert" : "status";
  return h("div", { class: `note note-${kind}`, role, "data-testid": `note-${kind}` }, ...children);
}
