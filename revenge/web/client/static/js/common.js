// Shared by every page: the CSRF token, JSON calls, the one alert region, "Sign out".
// Data is written with textContent only (never innerHTML): catalog strings stay text.

export const csrfToken = () => document.querySelector('meta[name="csrf-token"]')?.content || "";

export function pageData() {
  const el = document.getElementById("page-data");
  return el ? JSON.parse(el.textContent) : {};
}

export class ApiError extends Error {
  constructor(status, code, message, retryAfter) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

export async function api(method, path, body, extra = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = csrfToken();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, {
    method, headers, credentials: "same-origin", cache: "no-store",
    body: body === undefined ? undefined : JSON.stringify(body), ...extra,
  });
  if (res.status === 204) return null;
  let data = null;
  try { data = await res.json(); } catch { data = null; }
  if (!res.ok) {
    const err = (data && data.error) || {};
    let message = err.message || `The server answered ${res.status}.`;
    if (data && Array.isArray(data.problems) && data.problems.length) {
      message += " " + data.problems.map((p) => `${p.field}: ${p.message}`).join("; ");
    }
    const ra = Number(res.headers.get("Retry-After"));
    if (res.status === 429 && ra > 0) message = `Too many requests; try again in ${ra} s.`;
    if (res.status === 401 && !location.pathname.startsWith("/login")) {
      location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search));
    }
    throw new ApiError(res.status, err.code || "", message, ra || null);
  }
  return data;
}

export function showAlert(message) {
  const el = document.getElementById("alert");
  if (!el) return;
  el.textContent = message;
  el.hidden = !message;
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "text") node.textContent = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

export function clock(seconds) {
  const t = Math.max(0, Math.floor(Number(seconds) || 0));
  const h = Math.floor(t / 3600), m = Math.floor((t % 3600) / 60), s = t % 60;
  const mm = h ? String(m).padStart(2, "0") : String(m);
  return (h ? `${h}:` : "") + `${mm}:${String(s).padStart(2, "0")}`;
}

export async function signOut() {
  try { await api("POST", "/api/v1/auth/logout"); } catch { /* signed out either way */ }
  location.assign("/login");
}

document.addEventListener("click", (ev) => {
  const link = ev.target.closest && ev.target.closest("a[data-sign-out]");
  if (!link || ev.button !== 0 || ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.altKey) return;
  ev.preventDefault();
  signOut();
});
