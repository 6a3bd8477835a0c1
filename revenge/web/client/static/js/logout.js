import { signOut } from "./common.js";

document.getElementById("logout").addEventListener("submit", (ev) => {
  ev.preventDefault();
  signOut();
});
