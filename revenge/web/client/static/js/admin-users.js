import { api, el, showAlert } from "./common.js";

const tbody = document.querySelector("#users tbody");
const addForm = document.getElementById("add-user");
const dlgPassword = document.getElementById("dlg-password");
const dlgDelete = document.getElementById("dlg-delete");
let target = null;

function row(u) {
  const actions = el("td", { class: "row-actions" },
    el("button", { type: "button", "data-action": "reset", text: "Reset password" }),
    el("button", { type: "button", "data-action": "toggle", text: u.disabled ? "Enable" : "Disable" }),
    el("button", { type: "button", "data-action": "delete", text: "Delete" }));
  return el("tr", { "data-user-id": u.id, "data-username": u.username, "data-disabled": u.disabled ? "true" : "false" },
    el("td", { text: u.username }), el("td", { text: u.role }), el("td", { text: u.disabled ? "disabled" : "active" }),
    actions);
}

async function refresh() {
  try {
    const { items } = await api("GET", "/api/v1/users");
    tbody.replaceChildren(...items.map(row));
  } catch (err) {
    showAlert(err.message);
  }
}

tbody.addEventListener("click", async (ev) => {
  const b = ev.target.closest("button[data-action]");
  if (!b) return;
  const tr = b.closest("tr");
  target = { id: tr.dataset.userId, username: tr.dataset.username, disabled: tr.dataset.disabled === "true", button: b };
  showAlert("");
  if (b.dataset.action === "reset") {
    document.getElementById("dlg-password-user").textContent = `For ${target.username}`;
    document.getElementById("reset-password").value = "";
    dlgPassword.showModal();
  } else if (b.dataset.action === "delete") {
    document.getElementById("dlg-delete-user").textContent = `Delete ${target.username}, their sign-ins, keys and sessions?`;
    dlgDelete.showModal();
  } else if (b.dataset.action === "toggle") {
    try {
      await api("PATCH", `/api/v1/users/${target.id}`, { disabled: !target.disabled });
      await refresh();
      tbody.querySelector(`tr[data-user-id="${CSS.escape(target.id)}"] button[data-action=toggle]`)?.focus();
    } catch (err) { showAlert(err.message); }
  }
});

dlgPassword.addEventListener("close", async () => {
  if (dlgPassword.returnValue !== "save" || !target) { target?.button.focus(); return; }
  try {
    await api("PATCH", `/api/v1/users/${target.id}`, { password: document.getElementById("reset-password").value });
    showAlert(`The password of ${target.username} is changed.`);
  } catch (err) { showAlert(err.message); }
  target.button.focus();
});

dlgDelete.addEventListener("close", async () => {
  if (dlgDelete.returnValue !== "delete" || !target) { target?.button.focus(); return; }
  try {
    await api("DELETE", `/api/v1/users/${target.id}`);
    await refresh();
  } catch (err) { showAlert(err.message); }
  document.querySelector("#users button")?.focus();
});

addForm.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  showAlert("");
  try {
    await api("POST", "/api/v1/users", { username: addForm.username.value, password: addForm.password.value,
                                         role: addForm.role.value });
    addForm.reset();
    await refresh();
    showAlert("The user is added.");
  } catch (err) { showAlert(err.message); }
});
