// Keyboard shortcuts for blind review: 1/← A better, 2/→ B better, 3/↑ both good, 4/↓ both bad.
(function () {
  const form = document.getElementById("verdict");
  if (!form) return;
  const keys = { "1": "left", ArrowLeft: "left", "2": "right", ArrowRight: "right",
                 "3": "both_good", ArrowUp: "both_good", "4": "both_bad", ArrowDown: "both_bad" };
  let sent = false;
  function send(choice) {
    if (sent) return;
    sent = true;
    document.getElementById("choice").value = choice;
    form.submit();
  }
  form.querySelectorAll("button[data-choice]").forEach((button) =>
    button.addEventListener("click", (event) => { event.preventDefault(); send(button.dataset.choice); }));
  document.addEventListener("keydown", (event) => {
    const tag = (event.target.tagName || "").toLowerCase();
    if (tag === "textarea" || tag === "input" && event.target.type !== "checkbox") return;
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const choice = keys[event.key];
    if (choice) { event.preventDefault(); send(choice); }
  });
})();
