// The console's only script: confirmations, a refresh while instances change state, and a reload
// after a download that adds to the page (a new key pair). Every page works without it.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
  for (const form of document.querySelectorAll("form[data-download='reload']")) {
    form.addEventListener("submit", () => window.setTimeout(() => window.location.reload(), 1500));
  }
  const busy = document.querySelector("[data-refresh]");
  if (busy) {
    window.setTimeout(() => window.location.reload(), 1000 * Number(busy.dataset.refresh || 5));
  }
});
