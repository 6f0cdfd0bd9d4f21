// The programme editor's rows in the page: add, remove and move items without a round trip to the
// server (without this script the same buttons submit the form and the server does it). Rows carry
// no numbers in their field names, so moving one is a DOM move; the buttons' values are renumbered
// only for the server's fallback. Saving is the form's plain submit.
"use strict";
(function () {
  const form = document.getElementById("editor");
  if (!form) return;
  const body = form.querySelector("#items tbody"), blank = document.getElementById("new-item");

  function renumber() {
    Array.from(body.rows).forEach((tr, i) => {
      tr.querySelector(".n").textContent = i + 1;
      tr.querySelectorAll("button[data-op]").forEach((b) => { b.value = b.dataset.op + "-" + i; });
    });
  }

  form.addEventListener("click", (ev) => {
    const b = ev.target.closest("button[data-op]");
    if (!b) return;
    ev.preventDefault();
    const tr = b.closest("tr");
    if (b.dataset.op === "add") body.appendChild(blank.content.querySelector("tr").cloneNode(true));
    else if (b.dataset.op === "remove") tr.remove();
    else if (b.dataset.op === "up" && tr.previousElementSibling) body.insertBefore(tr, tr.previousElementSibling);
    else if (b.dataset.op === "down" && tr.nextElementSibling) body.insertBefore(tr.nextElementSibling, tr);
    renumber();
  });
})();
