// Every data table: each cell gets its column's header as data-label, which app.css shows
// beside the value when a narrow screen stacks the rows. Cells that carry a label keep it; empty
// cells get none (a lone label says nothing); sort arrows are not part of a column's name.
"use strict";
(function () {
  var SORT_ARROWS = /[\u25B2\u25BC\u2191\u2193]/g;

  function headerLabels(table) {
    var labels = [];
    var headRow = table.tHead && table.tHead.rows[table.tHead.rows.length - 1];
    if (!headRow) { return labels; }
    Array.prototype.forEach.call(headRow.cells, function (cell) {
      var name = cell.textContent.replace(SORT_ARROWS, "").trim();
      for (var span = 0; span < (cell.colSpan || 1); span += 1) { labels.push(name); }
    });
    return labels;
  }

  function label(table) {
    var labels = headerLabels(table);
    Array.prototype.forEach.call(table.tBodies, function (body) {
      Array.prototype.forEach.call(body.rows, function (row) {
        var column = 0;
        Array.prototype.forEach.call(row.cells, function (cell) {
          if (!cell.hasAttribute("data-label") && labels[column] && cell.colSpan === 1 && cell.textContent.trim()) {
            cell.setAttribute("data-label", labels[column]);
          }
          column += cell.colSpan || 1;
        });
      });
    });
  }
  document.querySelectorAll("table.data").forEach(label);
})();
