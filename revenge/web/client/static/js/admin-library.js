import { api, showAlert } from "./common.js";

const button = document.getElementById("scan");
const stateEl = document.getElementById("scan-state");
const progressEl = document.getElementById("scan-progress");
let timer = null;

function render(s) {
  stateEl.textContent = `State: ${s.state}`;
  progressEl.textContent = `${s.files_probed || 0} of ${s.files_to_probe || 0} files probed · ${s.files_seen || 0} seen · ` +
    `${s.files_added || 0} added · ${s.files_updated || 0} updated · ${s.files_removed || 0} removed` +
    (s.errors && s.errors.length ? ` · ${s.errors.length} errors` : "");
}

async function poll() {
  try {
    const s = await api("GET", "/api/v1/library/scan");
    render(s);
    if (s.state === "running" || s.state === "queued") { timer = setTimeout(poll, 1000); return; }
  } catch (err) {
    showAlert(err.message);
  }
  timer = null;
  button.disabled = false;
}

button.addEventListener("click", async () => {
  showAlert("");
  button.disabled = true;
  try {
    await api("POST", "/api/v1/library/scan");
  } catch (err) {
    showAlert(err.status === 409 ? "A scan is already running." : err.message);
  }
  if (timer === null) poll();
});

poll();
