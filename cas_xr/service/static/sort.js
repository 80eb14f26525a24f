// Sortable tables: a click on a column heading sorts the rows by that column
// (numbers by value, the rest as text); a second click reverses the order.
"use strict";

function cellKey(row, column) {
  const cell = row.cells[column];
  const raw = cell.dataset.sort !== undefined ? cell.dataset.sort : cell.textContent.trim();
  const number = raw === "" ? NaN : Number(raw);
  return Number.isNaN(number) ? { text: raw.toLowerCase() } : { number };
}

function compare(a, b) {
  if (a.number !== undefined && b.number !== undefined) return a.number - b.number;
  if (a.number !== undefined) return -1;
  if (b.number !== undefined) return 1;
  return a.text.localeCompare(b.text);
}

function sortBy(table, column, button) {
  const body = table.tBodies[0];
  const ascending = button.dataset.order !== "ascending";
  table.querySelectorAll("th button").forEach((b) => delete b.dataset.order);
  button.dataset.order = ascending ? "ascending" : "descending";
  const rows = Array.from(body.rows);
  rows.sort((r, s) => compare(cellKey(r, column), cellKey(s, column)) * (ascending ? 1 : -1));
  rows.forEach((row) => body.appendChild(row));
}

document.querySelectorAll("table.sortable").forEach((table) => {
  table.querySelectorAll("th button").forEach((button, column) => {
    button.addEventListener("click", () => sortBy(table, column, button));
  });
});
