import { api, clock, el, pageData, showAlert } from "./common.js";

const { poll_seconds: poll } = pageData();
const tbody = document.querySelector("#sessions tbody");
const empty = document.getElementById("empty");

function row(s) {
  const end = el("button", { type: "button", "data-end": s.session_id, text: "End session" });
  const cells = [
    s.user ? s.user.username : "", s.title, s.mode, s.variant || "", (s.transcode_reasons || []).join(", "),
    clock(s.position_seconds), s.bandwidth_kbps ? `${Math.round(s.bandwidth_kbps)} kb/s` : "",
    `${(s.client && s.client.user_agent) || ""} ${(s.client && s.client.address) || ""}`.trim(), s.node || "",
  ].map((text) => el("td", { text }));
  return el("tr", { "data-session-id": s.session_id }, ...cells, el("td", {}, end));
}

async function refresh() {
  try {
    const { items } = await api("GET", "/api/v1/admin/sessions");
    const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.end : null;
    tbody.replaceChildren(...items.map(row));
    empty.hidden = items.length > 0;
    if (focused) tbody.querySelector(`button[data-end="${CSS.escape(focused)}"]`)?.focus();
  } catch (err) {
    showAlert(err.message);
  }
}

tbody.addEventListener("click", async (ev) => {
  const b = ev.target.closest("button[data-end]");
  if (!b) return;
  b.disabled = true;
  try {
    await api("DELETE", `/api/v1/admin/sessions/${b.dataset.end}`);
    showAlert("");
  } catch (err) {
    if (err.status !== 404) showAlert(err.message);
  }
  await refresh();
});

setInterval(refresh, Math.max(0.5, Number(poll) || 5) * 1000);
