// Rubric checklist by keyboard: with focus on a checklist item (or one of its radios), y / n / a answer
// yes / no / not applicable, then focus moves to the next item. Loaded once however many checklists a page has.
(function () {
  "use strict";
  if (window.arbiterRubricChecklist) return;
  window.arbiterRubricChecklist = true;
  const KEYS = { y: "yes", n: "no", a: "na" };

  // Capture phase, so a page's own single-key shortcuts do not also fire while an item has focus.
  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    const item = event.target.closest && event.target.closest(".rubric-item");
    if (!item) return;
    const value = KEYS[event.key.toLowerCase()];
    if (!value) return;
    // An item's keys belong to it: a key it does not offer (n/a on a yes/no item) does nothing at all,
    // rather than falling through to the page's own shortcut for that letter.
    event.preventDefault();
    event.stopPropagation();
    const radio = item.querySelector('input[type=radio][value="' + value + '"]');
    if (!radio) return;
    radio.checked = true;
    radio.dispatchEvent(new Event("input", { bubbles: true }));
    radio.dispatchEvent(new Event("change", { bubbles: true }));
    const items = Array.from(document.querySelectorAll(".rubric-item"));
    const next = items[items.indexOf(item) + 1];
    (next || item).focus();
  }, true);
})();
