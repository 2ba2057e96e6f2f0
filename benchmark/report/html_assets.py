"""The HTML report's inlined stylesheet and script: sortable tables, plots fitted to their cells, a self-test."""

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;max-width:1500px}
h1{font-size:1.6em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}h3{margin-top:1.2em}
.caption{color:#555;font-size:.9em;margin:.2em 0 .6em}
table.board{border-collapse:collapse;font-size:.82em;margin:.5em 0}
table.board th,table.board td{border:1px solid #ddd;padding:3px 6px;text-align:right;white-space:nowrap}
table.board th{background:#f4f4f4;cursor:pointer;position:sticky;top:0}
table.board th.sorted-asc::after{content:" ▲"}table.board th.sorted-desc::after{content:" ▼"}
.board-wrap{overflow-x:auto;max-width:100%}
table.board td.wrap{white-space:normal;min-width:9em;max-width:18em;text-align:left}
table.board th:first-child,table.board td:first-child{position:sticky;left:0;z-index:1;background:#fff;
  text-align:left;box-shadow:inset -1px 0 0 #bbb}
table.board th:first-child{z-index:2;background:#f4f4f4}
.plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:12px}
.plot{border:1px solid #eee;min-height:420px;min-width:0;overflow:hidden}
dl{display:grid;grid-template-columns:10em 1fr;gap:4px 12px;font-size:.9em}dt{font-weight:600}
.notes li{font-size:.9em}
"""

# Sorting: click a header (again to reverse); numbers sort as numbers, the rest as text.
# `#selftest` (used by the browser test) reports each plot's rendered box and a sort's effect in #selftest.
SCRIPT = """
function cellValue(row, index){
  const text = row.children[index].textContent.trim();
  const number = parseFloat(text.replace(/[,%x]/g, '').replace(/\\[.*$/, ''));
  return isNaN(number) ? text : number;
}
function sortTable(table, index){
  const header = table.tHead.rows[0].children[index];
  const ascending = !header.classList.contains('sorted-asc');
  for (const th of table.tHead.rows[0].children) th.classList.remove('sorted-asc', 'sorted-desc');
  header.classList.add(ascending ? 'sorted-asc' : 'sorted-desc');
  const rows = Array.from(table.tBodies[0].rows);
  rows.sort((a, b) => {
    const x = cellValue(a, index), y = cellValue(b, index);
    const order = (typeof x === 'number' && typeof y === 'number') ? x - y : String(x).localeCompare(String(y));
    return ascending ? order : -order;
  });
  for (const row of rows) table.tBodies[0].appendChild(row);
}
// A plot drawn while the page was still loading took the width its cell had then: fit every plot to its cell.
window.addEventListener('load', () => document.querySelectorAll('.plot .plotly-graph-div').forEach(
  div => Plotly.Plots.resize(div)));
document.querySelectorAll('table.board').forEach(table => {
  Array.from(table.tHead.rows[0].children).forEach(
    (th, index) => th.addEventListener('click', () => sortTable(table, index)));
});
if (location.hash === '#selftest') {
  window.addEventListener('load', () => setTimeout(() => {
    const plots = Array.from(document.querySelectorAll('.plot')).map(plot => {
      const box = plot.getBoundingClientRect();
      return {id: plot.dataset.plot, x: box.left + scrollX, y: box.top + scrollY, width: box.width, height: box.height,
              svg: plot.querySelectorAll('svg.main-svg').length, traces: plot.querySelectorAll('.trace').length,
              drawn_width: plot.querySelector('svg.main-svg') ?
                plot.querySelector('svg.main-svg').getBoundingClientRect().width : 0};
    });
    const table = document.querySelector('table.board');
    let sort = null;
    if (table) {
      const index = Math.max(1, Array.from(table.tHead.rows[0].children).findIndex(
        th => th.textContent.startsWith('peak mem')));
      const values = () => Array.from(table.tBodies[0].rows).map(r => cellValue(r, index));
      const before = values();
      table.tHead.rows[0].children[index].click();
      const ascending = values();
      table.tHead.rows[0].children[index].click();
      sort = {column: index, before: before, ascending: ascending, descending: values()};
    }
    // What a reader sees of the first leaderboard at this width: where each header ends, then, scrolled to the far
    // right inside a narrowed wrapper, whether the method column stayed put.
    let board = null;
    if (table) {
      const wrap = table.closest('.board-wrap');
      const ends = {};
      for (const th of table.tHead.rows[0].children) ends[th.textContent] = th.getBoundingClientRect().right;
      wrap.style.maxWidth = '400px';
      wrap.scrollLeft = wrap.scrollWidth;
      const cell = table.tBodies[0].rows[0].children[0].getBoundingClientRect();
      board = {ends: ends, viewport: innerWidth, scrolled: wrap.scrollLeft,
               method_left: cell.left - wrap.getBoundingClientRect().left};
      wrap.scrollLeft = 0;
      wrap.style.maxWidth = '';
    }
    // Each plot's traces as drawn: name, colour, whether it has a legend entry.
    const traces = {};
    document.querySelectorAll('.plot .plotly-graph-div').forEach(div => {
      traces[div.id] = (div.data || []).map(t => [t.name, (t.line && t.line.color) || (t.marker && t.marker.color) ||
        null, t.showlegend !== false]);
    });
    const out = document.createElement('pre');
    out.id = 'selftest';
    out.textContent = JSON.stringify(
      {plots: plots, sort: sort, board: board, traces: traces, height: document.body.scrollHeight});
    document.body.appendChild(out);
  }, 500));
}
"""
