import { el, showAlert } from "./common.js";

const tbody = document.querySelector("#checks tbody");
const overall = document.getElementById("overall");

async function refresh() {
  try {
    const res = await fetch("/health/status", { cache: "no-store", credentials: "same-origin" });
    const body = await res.json();
    overall.textContent = `Overall: ${body.status}`;
    const checks = body.checks || {};
    const entries = Array.isArray(checks) ? checks.map((c) => [c.name, c]) : Object.entries(checks);
    tbody.replaceChildren(...entries.map(([name, c]) => el("tr", {},
      el("td", { text: name }), el("td", { text: c.category || "" }), el("td", { text: c.status || "" }),
      el("td", { text: c.error || c.detail || "" }))));
    showAlert("");
  } catch (err) { showAlert(`The health report could not be read: ${err.message}`); }
}

document.getElementById("refresh").addEventListener("click", refresh);
refresh();
