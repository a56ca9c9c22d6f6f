// Tables that become one small card per row on a phone (app.css `table.stack`): each
// cell but the first is labelled with its column's heading.

/** Mark `table` (with a thead and a tbody) as stacking, labelling its cells; returns it. */
export function stacked(table) {
  const heads = [...table.querySelectorAll("thead th")].map((th) => th.textContent.trim());
  for (const tr of table.querySelectorAll("tbody tr")) {
    [...tr.children].forEach((td, i) => {
      if (i > 0 && heads[i] && !td.hasAttribute("data-label")) td.setAttribute("data-label", heads[i]);
    });
  }
  table.classList.add("stack");
  return table;
}
