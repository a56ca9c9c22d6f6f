export async function render(root, params, { h }) { root.append(h("p", { class: "note note-empty" }, "Coming soon.")); }
