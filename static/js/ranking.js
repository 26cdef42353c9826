// The ranking workbench's cards: order them best first by keyboard, buttons or drag and drop, tie a card with
// the one above, and keep the form's hidden `tiers` field (JSON: lists of response ids, best first) in step.
// workbench.js calls init(form) for each ranking it shows (after the draft is applied) and key(event) for the
// page's single-key shortcuts while a ranking is shown; the draft autosave listens to the form's input events.
//
// Keys: 1–9 select the card with that number (the number it was shown with, kept when it moves); ↑ / ↓ move
// the selected card; t ties it with the card above (again: untie); x toggles "all bad"; n / m mark the selected
// response safe / unsafe, j / k / l its severity, g goes to its harm categories. A moved card leaves its tie
// (and the card that took its place leaves its own): ties are always the annotator's latest explicit choice.
(function () {
  "use strict";

  const SAFETY_KEYS = { n: ["safe", "safe"], m: ["safe", "unsafe"], j: ["severity", "minor"], k: ["severity", "moderate"], l: ["severity", "severe"] };
  let form = null;
  let list = null;
  let selected = null;
  let dragged = null;

  function cards() { return list ? Array.from(list.querySelectorAll(":scope > .rank-card")) : []; }

  function tiers() {
    const out = [];
    for (const card of cards()) {
      const rid = Number(card.dataset.rid);
      if (out.length && card.dataset.tied === "1") out[out.length - 1].push(rid);
      else out.push([rid]);
    }
    return out;
  }

  // Positions as shown: tied cards share the tier's number ("= 2").
  function render() {
    let tier = 0;
    cards().forEach((card, i) => {
      if (i === 0) card.dataset.tied = "0";
      const tied = card.dataset.tied === "1";
      if (!tied) tier += 1;
      const pos = card.querySelector(".rank-pos");
      if (pos) pos.textContent = (tied ? "= " : "") + tier;
      card.classList.toggle("tied", tied);
      const tie = card.querySelector(".rank-tie");
      if (tie) { tie.setAttribute("aria-pressed", String(tied)); tie.disabled = i === 0; }
      const up = card.querySelector(".rank-up"); if (up) up.disabled = i === 0;
      const down = card.querySelector(".rank-down"); if (down) down.disabled = i === cards().length - 1;
    });
  }

  // Write the order to the hidden field and tell the draft autosave (an input event on the form).
  function changed() {
    render();
    const field = form.querySelector("input[name=tiers]");
    const value = JSON.stringify(tiers());
    if (field.value === value) return;
    field.value = value;
    field.dispatchEvent(new Event("input", { bubbles: true }));
  }

  function select(card) {
    for (const c of cards()) { c.classList.toggle("selected", c === card); c.setAttribute("aria-current", String(c === card)); }
    selected = card;
    if (card) card.scrollIntoView({ block: "nearest" });
  }

  function move(card, offset) {
    const all = cards();
    const at = all.indexOf(card);
    const to = at + offset;
    if (!card || to < 0 || to >= all.length) return;
    const other = all[to];
    card.dataset.tied = "0";
    other.dataset.tied = "0";
    if (offset < 0) list.insertBefore(card, other); else list.insertBefore(other, card);
    changed();
    card.scrollIntoView({ block: "nearest" });
  }

  function toggleTie(card) {
    if (!card || cards().indexOf(card) === 0) return;
    card.dataset.tied = card.dataset.tied === "1" ? "0" : "1";
    changed();
  }

  function check(el) {
    if (!el) return;
    el.checked = !(el.type === "checkbox" && el.checked);
    el.dispatchEvent(new Event("change", { bubbles: true }));
  }

  // The order of a draft's (or a refused submit's) tiers, if it ranks exactly these cards; else as shown.
  function restore() {
    const field = form.querySelector("input[name=tiers]");
    let saved = null;
    try { saved = JSON.parse(field.value || "null"); } catch (_) { saved = null; }
    const byId = new Map(cards().map((c) => [c.dataset.rid, c]));
    const flat = Array.isArray(saved) ? saved.flat().map(String) : [];
    const valid = flat.length === byId.size && flat.every((rid) => byId.has(rid)) && new Set(flat).size === flat.length;
    if (valid) {
      for (const tier of saved) {
        tier.forEach((rid, i) => { const c = byId.get(String(rid)); c.dataset.tied = i > 0 ? "1" : "0"; list.appendChild(c); });
      }
    } else {
      for (const c of cards()) c.dataset.tied = "0";
    }
    render();
    field.value = JSON.stringify(tiers());
  }

  function init(theForm) {
    form = theForm;
    list = form.querySelector("#ranking");
    selected = null;
    if (!list) return;
    restore();
    list.addEventListener("click", (event) => {
      const card = event.target.closest(".rank-card");
      if (!card) return;
      select(card);
      const button = event.target.closest("button");
      if (!button) return;
      if (button.dataset.move) move(card, Number(button.dataset.move));
      else if (button.classList.contains("rank-tie")) toggleTie(card);
    });
    // Native drag and drop from a card's handle: dropped on the upper half of a card, it goes above it.
    list.addEventListener("dragstart", (event) => {
      const card = event.target.closest && event.target.closest(".rank-card");
      if (!card) return;
      dragged = card;
      card.classList.add("dragging");
      event.dataTransfer.effectAllowed = "move";
      event.dataTransfer.setData("text/plain", card.dataset.rid);
      event.dataTransfer.setDragImage(card, 16, 16);
    });
    list.addEventListener("dragover", (event) => {
      if (!dragged) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "move";
    });
    list.addEventListener("drop", (event) => {
      if (!dragged) return;
      event.preventDefault();
      const target = event.target.closest(".rank-card");
      if (target && target !== dragged) {
        const box = target.getBoundingClientRect();
        const below = event.clientY > box.top + box.height / 2;
        const after = below ? target.nextElementSibling : target;
        dragged.dataset.tied = "0";
        if (after && after !== dragged) after.dataset.tied = "0";
        list.insertBefore(dragged, after);
        changed();
      }
      select(dragged);
    });
    list.addEventListener("dragend", () => { if (dragged) dragged.classList.remove("dragging"); dragged = null; });
  }

  // Returns after handling the page's single-key shortcuts of a ranking (workbench.js checks text boxes,
  // modifiers, Enter, ?, /, r and Shift+S first).
  function key(event) {
    if (!list) return;
    const all = cards();
    if (/^[1-9]$/.test(event.key)) {
      const card = all.find((c) => c.dataset.number === event.key);
      if (card) { event.preventDefault(); select(card); }
      return;
    }
    if (event.key === "x") { event.preventDefault(); check(form.querySelector("input[name=all_bad]")); return; }
    if (!selected) return;
    const rid = selected.dataset.rid;
    if (event.key === "ArrowUp" || event.key === "ArrowDown") {
      // Also when a radio has the focus (after a click): the arrows move the card, never change the answer.
      event.preventDefault();
      if (document.activeElement && document.activeElement !== document.body) document.activeElement.blur();
      move(selected, event.key === "ArrowUp" ? -1 : 1);
      return;
    }
    if (event.key === "t") { event.preventDefault(); toggleTie(selected); return; }
    const safety = SAFETY_KEYS[event.key];
    if (safety) {
      event.preventDefault();
      if (safety[0] === "severity") check(form.querySelector(`input[name="r${rid}_safe"][value="unsafe"]`));
      const el = form.querySelector(`input[name="r${rid}_${safety[0]}"][value="${safety[1]}"]`);
      if (el && !el.checked) check(el);
      return;
    }
    if (event.key === "g") {
      event.preventDefault();
      const unsafe = form.querySelector(`input[name="r${rid}_safe"][value="unsafe"]`);
      if (unsafe && !unsafe.checked) check(unsafe);
      const first = form.querySelector(`input[name="r${rid}_harm_categories"]`);
      if (first) first.focus();
    }
  }

  window.arbiterRanking = { init: init, key: key };
})();
