// Rubric draft editor: reorder criteria with Alt+ArrowUp/ArrowDown on a focused row, or by native drag and drop.
// Both end in an htmx request that swaps #criteria; focus then returns to the moved criterion.
(function () {
  "use strict";
  let focusKey = null;

  // htmx wires the forms of swapped-in content only when the swap settles (about 20 ms later); a key pressed in
  // between would submit the form natively and reload the page. Wiring it first is idempotent.
  function wired(form) {
    if (form && window.htmx) window.htmx.process(form);
    return form;
  }

  function rowOf(el) { return el && el.closest ? el.closest("[data-criterion-row]") : null; }

  document.addEventListener("keydown", function (event) {
    const row = rowOf(event.target);
    if (!row || !event.altKey || (event.key !== "ArrowUp" && event.key !== "ArrowDown")) return;
    const button = row.querySelector(event.key === "ArrowUp" ? "[data-move=up]" : "[data-move=down]");
    if (!button) return;
    event.preventDefault();
    focusKey = row.dataset.key;
    wired(button.form);
    button.click();
  });

  document.addEventListener("htmx:afterSettle", function () {
    const list = document.querySelector("[data-criteria-list]");
    const key = focusKey || (list && list.dataset.focus);
    focusKey = null;
    if (!key) return;
    const row = document.querySelector('[data-criterion-row][data-key="' + CSS.escape(key) + '"]');
    if (row) row.focus();
  });

  let dragged = null;
  document.addEventListener("dragstart", function (event) {
    const row = rowOf(event.target);
    if (!row || row.getAttribute("draggable") !== "true") return;
    dragged = row;
    row.classList.add("dragging");
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", row.dataset.key);
  });

  function clearMarks() {
    document.querySelectorAll(".drop-before, .drop-after").forEach(function (el) {
      el.classList.remove("drop-before", "drop-after");
    });
  }

  function dropBefore(row, event) {
    const box = row.getBoundingClientRect();
    return event.clientY < box.top + box.height / 2;
  }

  document.addEventListener("dragover", function (event) {
    const row = rowOf(event.target);
    if (!dragged || !row || row === dragged || row.parentNode !== dragged.parentNode) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "move";
    clearMarks();
    row.classList.add(dropBefore(row, event) ? "drop-before" : "drop-after");
  });

  document.addEventListener("drop", function (event) {
    const row = rowOf(event.target);
    if (!dragged || !row || row === dragged || row.parentNode !== dragged.parentNode) return;
    event.preventDefault();
    row.parentNode.insertBefore(dragged, dropBefore(row, event) ? row : row.nextSibling);
    submitOrder(dragged.dataset.key);
  });

  document.addEventListener("dragend", function () {
    if (dragged) dragged.classList.remove("dragging");
    dragged = null;
    clearMarks();
  });

  function submitOrder(key) {
    const form = wired(document.getElementById("reorder-form"));
    const list = document.querySelector("[data-criteria-list]");
    if (!form || !list) return;
    form.querySelectorAll("input[name=key]").forEach(function (input) { input.remove(); });
    list.querySelectorAll("[data-criterion-row]").forEach(function (row) {
      const input = document.createElement("input");
      input.type = "hidden";
      input.name = "key";
      input.value = row.dataset.key;
      form.appendChild(input);
    });
    focusKey = key;
    form.requestSubmit();
  }
})();
