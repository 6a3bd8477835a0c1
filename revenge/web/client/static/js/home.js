// Home and search need no script beyond the shared one (sign-out); kept as the page's module.
import "./common.js";
