import { api, pageData, showAlert } from "./common.js";

const { media_id: mediaId } = pageData();
const button = document.getElementById("played");
button?.addEventListener("click", async () => {
  const played = button.dataset.played === "true";
  button.disabled = true;
  showAlert("");
  try {
    await api(played ? "DELETE" : "POST", `/api/v1/media/${mediaId}/played`);
    button.dataset.played = played ? "false" : "true";
    button.textContent = played ? "Mark as watched" : "Mark as unwatched";
  } catch (err) {
    showAlert(err.message);
  } finally {
    button.disabled = false;
    button.focus();
  }
});
