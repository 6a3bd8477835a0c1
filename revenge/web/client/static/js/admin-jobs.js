import { api, el, pageData, showAlert } from "./common.js";

const { poll_seconds: poll } = pageData();
const tbody = document.querySelector("#jobs tbody");
const counts = document.getElementById("counts");
const state = document.getElementById("state");

function row(j) {
  const actions = el("td", { class: "row-actions" });
  if (j.state === "failed" || j.state === "cancelled") actions.append(el("button", { type: "button", "data-retry": j.id, text: "Retry" }));
  if (j.state === "queued" || j.state === "running") actions.append(el("button", { type: "button", "data-cancel": j.id, text: "Cancel" }));
  const pct = typeof j.progress === "number" ? `${Math.round(j.progress * 100)} %` : "";
  return el("tr", { "data-job-id": j.id }, el("td", { text: j.kind }), el("td", { text: j.state }),
    el("td", { text: String(j.attempts ?? "") }), el("td", { text: pct }), el("td", { text: j.created_at || "" }),
    el("td", { text: j.error || "" }), actions);
}

async function refresh() {
  try {
    const q = state.value ? `?state=${encodeURIComponent(state.value)}` : "";
    const out = await api("GET", `/api/v1/admin/jobs${q}`);
    tbody.replaceChildren(...out.items.map(row));
    counts.textContent = Object.entries(out.counts || {}).map(([k, v]) => `${k}: ${v}`).join(" · ");
  } catch (err) { showAlert(err.message); }
}

tbody.addEventListener("click", async (ev) => {
  const retry = ev.target.closest("button[data-retry]");
  const cancel = ev.target.closest("button[data-cancel]");
  try {
    if (retry) await api("POST", `/api/v1/admin/jobs/${retry.dataset.retry}/retry`);
    else if (cancel) await api("DELETE", `/api/v1/admin/jobs/${cancel.dataset.cancel}`);
    else return;
    showAlert("");
  } catch (err) { showAlert(err.message); }
  refresh();
});

state.addEventListener("change", refresh);
document.getElementById("filter").addEventListener("submit", (ev) => { ev.preventDefault(); refresh(); });
refresh();
setInterval(refresh, Math.max(0.5, Number(poll) || 5) * 1000);
