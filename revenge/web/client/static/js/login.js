import { api, pageData, showAlert } from "./common.js";

const form = document.getElementById("login");
form.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  showAlert("");
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    await api("POST", "/api/v1/auth/login", {
      username: form.username.value, password: form.password.value,
    });
    const next = pageData().next || "/";
    location.assign(next.startsWith("/") && !next.startsWith("//") ? next : "/");
  } catch (err) {
    showAlert(err.code === "invalid_credentials" ? "Wrong username or password." : err.message);
    form.password.select();
  } finally {
    button.disabled = false;
  }
});
