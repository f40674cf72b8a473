// Reviewer workspace: keyboard shortcuts, moving through the inbox, the undo toast, the action
// picker, repeatable rows, citation focus and the raw-JSON toggle. Loaded with <script src defer>:
// the CSP allows no inline script. Every key acts through an element the server rendered with
// data-shortcut, so a key does something only where its control is shown.
(function () {
  "use strict";

  var TYPING = /^(INPUT|TEXTAREA|SELECT)$/;

  function isTyping(target) {
    return !!target && (TYPING.test(target.tagName) || target.isContentEditable);
  }

  function visible(el) {
    return !!el && el.getClientRects().length > 0;
  }

  function firstVisible(selector) {
    var found = document.querySelectorAll(selector);
    for (var i = 0; i < found.length; i++) {
      if (visible(found[i])) return found[i];
    }
    return null;
  }

  // Open the <details> panel a summary belongs to, and put the cursor in its first field.
  function openPanel(summary) {
    var panel = summary.closest("details");
    if (!panel) return;
    panel.open = true;
    panel.scrollIntoView({ block: "nearest", behavior: "smooth" });
    var field = panel.querySelector("select, textarea, input:not([type=hidden])");
    if (field) field.focus({ preventScroll: true });
  }

  function toggleRawJson() {
    var raw = document.getElementById("raw-json");
    if (!raw) return;
    raw.open = !raw.open;
    if (raw.open) raw.scrollIntoView({ block: "start", behavior: "smooth" });
  }

  // --- the inbox: j / k move through the rows, Enter opens the selected one ---------------------
  var selectedRow = -1;

  function inboxRows() {
    return document.querySelectorAll("tr[data-row-link]");
  }

  function selectRow(step) {
    var rows = inboxRows();
    if (!rows.length) return false;
    if (selectedRow >= 0 && rows[selectedRow]) rows[selectedRow].classList.remove("row-selected");
    selectedRow = Math.min(rows.length - 1, Math.max(0, selectedRow + step));
    var row = rows[selectedRow];
    row.classList.add("row-selected");
    var link = row.querySelector("a");
    if (link) link.focus({ preventScroll: true });
    row.scrollIntoView({ block: "nearest" });
    return true;
  }

  function openSelectedRow() {
    var row = inboxRows()[selectedRow];
    var link = row && row.querySelector("a");
    if (!link) return false;
    link.click();
    return true;
  }

  // --- keyboard shortcuts: c claim, a approve, e edit, r reject, i request information,
  // x escalate, n next case, u undo, v raw JSON (each through its data-shortcut control) -------
  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey || isTyping(event.target)) return;
    var key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    if ((key === "j" || key === "k") && selectRow(key === "j" ? 1 : -1)) {
      event.preventDefault();
      return;
    }
    if (key === "Enter" && event.target.tagName !== "BUTTON" && event.target.tagName !== "A" && openSelectedRow()) {
      event.preventDefault();
      return;
    }
    var target = firstVisible('[data-shortcut="' + key + '"]');
    if (!target) return;
    event.preventDefault();
    if (target.tagName === "SUMMARY") {
      openPanel(target);
    } else {
      target.click();
    }
  });

  document.addEventListener("click", function (event) {
    var toggle = event.target.closest("[data-toggle-json]");
    if (toggle) toggleRawJson();
  });

  // --- the undo toast: counts down the window, then goes (the server refuses a late undo) ------
  var toast = document.querySelector("[data-undo-toast]");
  if (toast) {
    var left = parseInt(toast.getAttribute("data-seconds"), 10) || 0;
    var counter = toast.querySelector("[data-countdown]");
    var timer = setInterval(function () {
      left -= 1;
      if (counter) counter.textContent = String(Math.max(left, 0));
      if (left <= 0) {
        clearInterval(timer);
        toast.remove();
      }
    }, 1000);
  }

  // --- action picker: show only the parameters of the chosen action ---------------------------
  function showChosenParams(select) {
    var form = select.closest("form");
    var sets = form.querySelectorAll("fieldset.params[data-action]");
    for (var i = 0; i < sets.length; i++) {
      sets[i].hidden = sets[i].getAttribute("data-action") !== select.value;
    }
  }

  var selects = document.querySelectorAll("select[data-action-select]");
  for (var i = 0; i < selects.length; i++) {
    showChosenParams(selects[i]);
    selects[i].addEventListener("change", function (event) { showChosenParams(event.target); });
  }

  // --- repeatable rows (documents, redlines): "Add another" clones the last row, emptied -------
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-add-row]");
    if (!button) return;
    var repeat = button.previousElementSibling;
    if (!repeat || !repeat.hasAttribute("data-repeat")) return;
    var rows = repeat.querySelectorAll(".repeat-row");
    var copy = rows[rows.length - 1].cloneNode(true);
    var fields = copy.querySelectorAll("input, textarea");
    for (var j = 0; j < fields.length; j++) fields[j].value = "";
    repeat.appendChild(copy);
    if (fields.length) fields[0].focus();
  });

  // --- citations: a cited-field chip points at the data it names ------------------------------
  function related(path, cited) {
    function under(p, ancestor) {
      return p.indexOf(ancestor) === 0 && (p.charAt(ancestor.length) === "." || p.charAt(ancestor.length) === "[");
    }
    return path === cited || under(path, cited) || under(cited, path);
  }

  function focusCitation(cited, scroll) {
    var marked = document.querySelectorAll(".cite-focus");
    for (var k = 0; k < marked.length; k++) marked[k].classList.remove("cite-focus");
    if (!cited) return;
    var first = null;
    var fields = document.querySelectorAll(".case-main [data-path], .summary-strip [data-path]");
    for (var m = 0; m < fields.length; m++) {
      if (related(fields[m].getAttribute("data-path"), cited)) {
        fields[m].classList.add("cite-focus");
        first = first || fields[m];
      }
    }
    if (scroll && first) {
      var box = first.firstElementChild && getComputedStyle(first).display === "contents" ? first.firstElementChild : first;
      box.scrollIntoView({ block: "center", behavior: "smooth" });
    }
  }

  document.addEventListener("mouseover", function (event) {
    var chip = event.target.closest("[data-cite]");
    if (chip) focusCitation(chip.getAttribute("data-cite"), false);
  });
  document.addEventListener("mouseout", function (event) {
    if (event.target.closest("[data-cite]")) focusCitation(null, false);
  });
  document.addEventListener("click", function (event) {
    var chip = event.target.closest("[data-cite]");
    if (chip) focusCitation(chip.getAttribute("data-cite"), true);
  });
})();
