// The search tree of beam search, tree of thoughts and MCTS as a collapsible outline:
// readable at thousands of nodes because only what is open is drawn. The root and the
// winning path start open (the path highlighted), children are ordered winning path
// first then best score, each level shows a few children with "show N more", pruned
// nodes are dimmed and nodes a level kept are starred.

import { h, clear } from "./dom.js";
import * as fmt from "./format.js";

const FIRST_CHILDREN = 8;
const MORE_CHILDREN = 25;

/** Tree state built from `node`, `level` and `prune` events. */
export class SearchTree {
  constructor() {
    this.nodes = new Map(); // id -> {id, parent, depth, state, left, score, value, visits, verified, reward, order}
    this.kept = new Set();
    this.pruned = new Set();
    this.winLeaf = null;
  }

  get size() {
    return this.nodes.size;
  }

  /** Apply one event; true when it changed the tree. */
  apply(kind, data) {
    if (kind === "node" && data && data.id !== undefined) {
      const id = String(data.id);
      const found = this.nodes.get(id);
      if (found) Object.assign(found, data, { id, order: found.order });
      else this.nodes.set(id, { ...data, id, parent: data.parent === null || data.parent === undefined ? null : String(data.parent), order: this.nodes.size });
      return true;
    }
    if (kind === "level" && data && Array.isArray(data.kept)) {
      for (const id of data.kept) this.kept.add(String(id));
      return true;
    }
    if (kind === "prune" && data && data.id !== undefined) {
      this.pruned.add(String(data.id));
      return true;
    }
    return false;
  }

  /** The ids from the root to `leaf` (empty when unknown). */
  path(leaf) {
    const out = [];
    let id = leaf;
    const seen = new Set();
    while (id !== null && id !== undefined && this.nodes.has(id) && !seen.has(id)) {
      seen.add(id);
      out.unshift(id);
      id = this.nodes.get(id).parent;
    }
    return out;
  }

  children() {
    const kids = new Map();
    const roots = [];
    for (const node of this.nodes.values()) {
      if (node.parent === null || !this.nodes.has(node.parent)) roots.push(node);
      else {
        if (!kids.has(node.parent)) kids.set(node.parent, []);
        kids.get(node.parent).push(node);
      }
    }
    return { roots, kids };
  }

  depth() {
    let most = 0;
    for (const n of this.nodes.values()) most = Math.max(most, n.depth || 0);
    return most;
  }
}

/** Higher first: MCTS nodes by visits then mean value; others by score or value. */
function rank(node) {
  const s = node.score ?? node.value ?? node.reward;
  const value = typeof s === "number" ? s : -1;
  return node.visits !== undefined ? node.visits * 10 + value : value;
}

function badges(node, tree) {
  const out = [];
  if (typeof node.score === "number") out.push(h("span", { class: "badge", title: "score from the strategy's scorer" }, `score ${fmt.score(node.score)}`));
  if (typeof node.value === "number" && node.visits === undefined) out.push(h("span", { class: "badge", title: "the state's value" }, `value ${fmt.score(node.value)}`));
  if (node.visits !== undefined) {
    out.push(h("span", { class: "badge", title: "MCTS: visits and mean value" }, `${node.visits} visit${node.visits === 1 ? "" : "s"} · ${fmt.score(node.value)}`));
  }
  if (typeof node.reward === "number") out.push(h("span", { class: "badge", title: "reward of a finished path" }, `reward ${fmt.score(node.reward)}`));
  if (node.verified === true) out.push(h("span", { class: "badge ok" }, "verified"));
  if (node.verified === false) out.push(h("span", { class: "badge bad" }, "not verified"));
  if (tree.kept.has(node.id)) out.push(h("span", { class: "badge status-running", title: "kept for the next level" }, "kept"));
  if (tree.pruned.has(node.id)) out.push(h("span", { class: "badge", title: "valued below the threshold: not explored" }, "pruned"));
  return out;
}

/**
 * A view of a SearchTree that keeps what the reader opened across redraws.
 * `view.render(tree, winLeaf)` returns the element (the same one every time).
 */
export class TreeView {
  constructor() {
    this.open = new Set();
    this.shown = new Map(); // id ("" for the roots) -> how many children are shown
    this.touched = false; // the reader opened or closed something: keep their view
    this.el = h("div", { class: "tree", "data-testid": "tree" });
  }

  render(tree, winLeaf) {
    const path = tree.path(winLeaf);
    const onPath = new Set(path);
    const { roots, kids } = tree.children();
    if (!this.touched) {
      for (const r of roots) this.open.add(r.id);
      for (const id of path) this.open.add(id);
      if (tree.size <= 40) for (const id of tree.nodes.keys()) this.open.add(id);
    }
    const focused = document.activeElement?.dataset?.focusKey;
    const sort = (list) => [...list].sort((a, b) =>
      (onPath.has(b.id) - onPath.has(a.id)) || (rank(b) - rank(a)) || (a.order - b.order));

    const list = (nodes, parentKey) => {
      const ordered = sort(nodes);
      const limit = this.shown.get(parentKey) || FIRST_CHILDREN;
      const ul = h("ul", { role: parentKey === "" ? "tree" : "group", "aria-label": parentKey === "" ? "Search tree" : null });
      for (const node of ordered.slice(0, limit)) ul.append(item(node));
      const rest = ordered.length - limit;
      if (rest > 0) {
        ul.append(h("li", { class: "more" },
          h("button", {
            type: "button", class: "link", "data-focus-key": `more:${parentKey}`,
            onclick: () => { this.touched = true; this.shown.set(parentKey, limit + MORE_CHILDREN); this.redraw(); },
          }, rest <= MORE_CHILDREN ? `Show ${rest} more (ranked lower)` : `Show ${MORE_CHILDREN} more of ${rest} (ranked lower)`)));
      }
      return ul;
    };

    const item = (node) => {
      const children = kids.get(node.id) || [];
      const isOpen = this.open.has(node.id);
      const cls = ["node", onPath.has(node.id) ? "win" : "", tree.pruned.has(node.id) ? "pruned" : "", tree.kept.has(node.id) ? "selected" : ""].filter(Boolean).join(" ");
      const toggle = h("button", {
        type: "button", class: "toggle", disabled: !children.length,
        "aria-expanded": children.length ? String(isOpen) : null,
        "aria-label": children.length ? `${isOpen ? "Hide" : "Show"} the ${children.length} children of ${node.id}` : `${node.id} has no children`,
        "data-focus-key": `toggle:${node.id}`,
        onclick: () => {
          this.touched = true;
          if (isOpen) this.open.delete(node.id);
          else this.open.add(node.id);
          this.redraw();
        },
      }, children.length ? (isOpen ? "▾" : "▸") : "·");
      return h("li", { role: "treeitem", "aria-expanded": children.length ? String(isOpen) : null },
        h("div", { class: cls, "data-testid": "tree-node", "data-node-id": node.id, "data-win": onPath.has(node.id) ? "true" : null },
          toggle,
          h("div", { class: "body" },
            h("span", { class: "id" }, node.id),
            h("span", { class: "state" }, node.state ?? ""),
            badges(node, tree),
            children.length ? h("span", { class: "muted small" }, `${children.length} child${children.length === 1 ? "" : "ren"}`) : null)),
        children.length && isOpen ? list(children, node.id) : null);
    };

    this.redraw = () => this.render(tree, winLeaf);
    clear(this.el);
    if (!tree.size) return this.el;
    this.el.append(list(roots, ""));
    if (focused) this.el.querySelector(`[data-focus-key="${CSS.escape(focused)}"]`)?.focus();
    return this.el;
  }

  /** Open every node (for reading the whole tree) or only the winning path. */
  openAll(tree) {
    this.touched = true;
    for (const id of tree.nodes.keys()) this.open.add(id);
  }

  openPath(tree, winLeaf) {
    this.touched = true;
    this.open.clear();
    this.shown.clear();
    for (const id of tree.path(winLeaf)) this.open.add(id);
    for (const r of tree.children().roots) this.open.add(r.id);
  }
}
