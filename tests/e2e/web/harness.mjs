// What both browser drivers share: the step log, polling, Debian's Chromium launched headless, a
// context that reports CSP violations and page errors, and screenshots into the artifacts folder.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

export async function harness(base, artifacts) {
  mkdirSync(artifacts, { recursive: true });
  const h = { steps: [], failures: [], csp: [], pageErrors: [], t0: Date.now() };
  h.step = (name, ok, detail = {}) => {
    h.steps.push({ name, ok: !!ok, ms: Date.now() - h.t0, ...detail });
    if (!ok) h.failures.push({ name, ...detail });
    return ok;
  };
  h.poll = async (fn, timeoutMs, everyMs = 100) => {
    const end = Date.now() + timeoutMs;
    let last;
    while (Date.now() < end) {
      last = await fn();
      if (last) return last;
      await new Promise((r) => setTimeout(r, everyMs));
    }
    return last;
  };
  h.browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--autoplay-policy=no-user-gesture-required"],
  });
  h.newContext = async (viewport = { width: 1280, height: 800 }) => {
    const ctx = await h.browser.newContext({ viewport, baseURL: base });
    await ctx.exposeBinding("__revengeCsp", (_src, v) => h.csp.push(v));
    // reports only (it adds no script to the page and changes no policy)
    await ctx.addInitScript(() => {
      document.addEventListener("securitypolicyviolation", (e) => {
        window.__revengeCsp(`${location.pathname}: ${e.violatedDirective} ${e.blockedURI}`);
      });
    });
    ctx.on("page", (p) => p.on("pageerror", (e) => h.pageErrors.push(`${p.url()}: ${e.message}`)));
    return ctx;
  };
  h.shot = (page, name) => page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: false });
  return h;
}
