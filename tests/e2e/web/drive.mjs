// Drives revenge's web client in Debian's Chromium the way a person would, by accessible names.
// usage: node drive.mjs '<json: {base, username, password, user2, artifacts, full, titles}>'
// Prints one JSON line: {ok, steps: [...], failures: [...], csp: [...], errors: [...]}.
import { harness } from "./harness.mjs";

const cfg = JSON.parse(process.argv[2]);
const { base, artifacts, titles } = cfg;
const h = await harness(base, artifacts);
const { steps, failures, csp, pageErrors, t0, step, poll, browser, newContext, shot } = h;

async function signIn(page, username, password, next = "/") {
  await page.goto(next);
  await page.waitForURL(/\/login\?next=/);
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL((u) => !u.pathname.startsWith("/login"));
}

const videoTime = (page) => page.locator("video").evaluate((v) => v.currentTime);

async function waitPlaying(page, atLeast, timeoutMs) {
  return poll(async () => (await videoTime(page)) >= atLeast, timeoutMs, 200);
}

let exitOk = false;
try {
  const ctx = await newContext();
  const page = await ctx.newPage();
  page.on("pageerror", (e) => pageErrors.push(`${page.url()}: ${e.message}`));
  const requests = [];
  page.on("request", (r) => requests.push(r.url()));

  // --- sign in -----------------------------------------------------------------------------
  await page.goto("/");
  step("signed out → /login?next=/", /\/login\?next=%2F|\/login\?next=\//.test(page.url()), { url: page.url() });
  await shot(page, "login-1280");
  await signIn(page, cfg.username, cfg.password);
  const cookie = (await ctx.cookies()).find((c) => c.name === "revenge_session");
  step("cookie httpOnly, Lax", !!cookie && cookie.httpOnly && cookie.sameSite === "Lax", { cookie: cookie && { httpOnly: cookie.httpOnly, sameSite: cookie.sameSite } });
  await shot(page, "home-1280");

  // --- search → item -----------------------------------------------------------------------
  await page.getByRole("searchbox", { name: "Search" }).fill("brow");
  await page.getByRole("searchbox", { name: "Search" }).press("Enter");
  await page.waitForURL(/\/search\?q=brow/);
  await shot(page, "search-1280");
  await page.getByRole("link", { name: titles.long, exact: true }).click();
  await page.waitForURL(/\/items\//);
  const itemUrl = page.url();
  step("item: Play, no Resume", (await page.getByRole("button", { name: "Play", exact: true }).count()) === 1 &&
       (await page.getByRole("button", { name: "Resume" }).count()) === 0);
  await shot(page, "item-1280");

  // --- play --------------------------------------------------------------------------------
  await page.getByRole("button", { name: "Play", exact: true }).click();
  await page.waitForURL(/\/play\//);
  const started = await waitPlaying(page, 3.5, 30000);
  const mode = await page.evaluate(() => window.revengePlayer && window.revengePlayer.mode);
  step("play: currentTime passes 3 s", !!started, { currentTime: await videoTime(page), mode });
  await shot(page, "player-1280");

  // --- audio → second track ----------------------------------------------------------------
  await page.getByRole("button", { name: "Audio" }).click();
  const audioItems = page.getByRole("menu", { name: "Audio" }).getByRole("menuitemradio");
  const nAudio = await audioItems.count();
  if (step("audio menu lists two tracks", nAudio >= 2, { nAudio })) {
    const before = await videoTime(page);
    await audioItems.nth(1).click();
    const sawAudio1 = await poll(() => requests.some((u) => /\/audio_1\//.test(u)), 10000);
    const advanced = await poll(async () => (await videoTime(page)) > before + 1.5, 15000, 200);
    step("audio switch: requests under audio_1/, time advances", !!sawAudio1 && !!advanced,
         { sawAudio1: !!sawAudio1, before, after: await videoTime(page) });
  }

  // --- subtitles (when the server lists text tracks) ---------------------------------------
  await page.getByRole("button", { name: "Subtitles" }).click();
  const subItems = page.getByRole("menu", { name: "Subtitles" }).getByRole("menuitemradio");
  const nSubs = await subItems.count();
  if (nSubs > 1) {
    await subItems.nth(1).click();
    const cue = await poll(() => page.evaluate(() => {
      for (const t of document.querySelector("video").textTracks) {
        if (t.mode === "showing" && t.activeCues && t.activeCues.length) return t.activeCues[0].text;
      }
      return null;
    }), 8000, 200);
    step("subtitles: a cue is showing", typeof cue === "string" && /^Cue \d+$/.test(cue.trim()), { cue });
  } else {
    await page.keyboard.press("Escape");
    steps.push({ name: "subtitles: the server lists no text track yet (skipped)", ok: true });
  }

  // --- seek +30 s with the keyboard ------------------------------------------------------------
  await page.locator("video").focus();
  const beforeSeek = await videoTime(page);
  for (let i = 0; i < 3; i++) await page.keyboard.press("ArrowRight");
  const seekOk = await poll(async () => {
    const t = await videoTime(page);
    return t >= beforeSeek + 28 && t <= beforeSeek + 36 ? t : null;
  }, 15000, 200);
  step("seek: → three times is +30 s", !!seekOk, { beforeSeek, after: await videoTime(page) });
  await poll(async () => page.locator("video").evaluate((v) => !v.paused && v.readyState >= 3), 10000, 200);
  await page.waitForTimeout(1000);

  // --- leave, come back: Resume ----------------------------------------------------------------
  const leftAt = await videoTime(page);
  await page.goto(itemUrl);
  await page.waitForTimeout(1000);
  await page.reload();
  const resume = page.getByRole("button", { name: "Resume" });
  const saved = (await resume.count()) ? Number(await resume.getAttribute("data-position-seconds")) : NaN;
  step("resume point within 2 s of where we left", Math.abs(saved - leftAt) <= 2, { saved, leftAt });
  await shot(page, "item-resume-1280");
  if (await resume.count()) {
    await resume.click();
    await page.waitForURL(/\/play\/.*start=/);
    const at = await poll(async () => {
      const v = await page.locator("video").evaluate((v) => ({ t: v.currentTime, playing: !v.paused && v.readyState >= 2 }));
      return v.playing && v.t > 0 ? v.t : null;
    }, 20000, 200);
    step("Resume starts at the saved position ±2 s", at !== null && Math.abs(at - saved) <= 2.5, { at, saved });
  }
  await page.goto(itemUrl);
  await page.getByRole("button", { name: "Mark as watched" }).click();
  const unwatched = await poll(async () => (await page.getByRole("button", { name: "Mark as unwatched" }).count()) === 1, 5000);
  step("Mark as watched → Mark as unwatched", !!unwatched);
  await page.goto("/");
  const cw = page.getByRole("region", { name: "Continue watching" });
  const inCw = await cw.getByRole("link", { name: titles.long, exact: true }).count();
  step("watched: gone from Continue watching", inCw === 0, { inCw });

  // --- an admin ends the session -------------------------------------------------------------
  await page.goto(itemUrl);
  await page.getByRole("button", { name: "Play", exact: true }).click();
  await page.waitForURL(/\/play\//);
  await waitPlaying(page, 1, 30000);
  const adminCtx = await newContext();
  const admin = await adminCtx.newPage();
  await signIn(admin, cfg.username, cfg.password, "/admin/now-playing");
  await admin.getByRole("heading", { name: "Now playing" }).waitFor();
  const sid = await page.evaluate(() => window.revengePlayer.session.session_id);
  const row = admin.locator(`tr[data-session-id="${sid}"]`);
  await row.waitFor({ timeout: 10000 });
  await shot(admin, "now-playing-1280");
  await row.getByRole("button", { name: "End session" }).click();
  const alertText = await poll(async () => {
    const a = page.getByRole("alert");
    const txt = (await a.count()) ? await a.first().textContent() : "";
    return /administrator/i.test(txt || "") ? txt : null;
  }, 5000, 200);
  step("player says an administrator ended it (≤ 5 s)", !!alertText, { alertText });
  await shot(page, "player-ended-1280");

  // --- the malicious title stays text ----------------------------------------------------------
  const evilPages = ["/", "/search?q=onerror", `/items/${cfg.evil_id}`, `/play/${cfg.evil_id}`];
  for (const p of evilPages) {
    await page.goto(p);
    await page.waitForTimeout(p.startsWith("/play/") ? 800 : 100);
    const r = await page.evaluate((title) => ({ x: typeof window.__x, text: document.body.innerText.includes(title) }), titles.evil);
    step(`malicious title is text on ${p}`, r.x === "undefined" && r.text, r);
  }
  await admin.goto("/admin/now-playing");
  await admin.waitForTimeout(300);
  const ra = await admin.evaluate((title) => ({ x: typeof window.__x, text: document.body.innerText.includes(title) }), titles.evil);
  step("malicious title is text on Now playing", ra.x === "undefined" && ra.text, ra);

  // --- direct play with a <track> --------------------------------------------------------------
  await page.goto(`/items/${cfg.direct_id}`);
  await page.getByRole("button", { name: "Play", exact: true }).click();
  await page.waitForURL(/\/play\//);
  const direct = await poll(() => page.evaluate(() => {
    const v = document.querySelector("video");
    return v.currentTime > 1 ? { mode: window.revengePlayer.mode, src: v.currentSrc, tracks: v.querySelectorAll("track").length } : null;
  }), 20000, 200);
  step("MP4 plays direct", !!direct && direct.mode === "direct", { direct });

  // --- every page at 1280 and 360 px -----------------------------------------------------------
  const pagesToShoot = { home: "/", search: "/search?q=brow", item: itemUrl.replace(base, ""),
                         player: `/play/${cfg.direct_id}`, "now-playing": "/admin/now-playing",
                         library: "/admin/library", users: "/admin/users", jobs: "/admin/jobs", health: "/admin/health" };
  const narrowCtx = await newContext({ width: 360, height: 740 });
  const narrow = await narrowCtx.newPage();
  await signIn(narrow, cfg.username, cfg.password);
  for (const [name, path] of Object.entries(pagesToShoot)) {
    if (cfg.full) { await admin.goto(path); await admin.waitForTimeout(200); await shot(admin, `${name}-1280`); }
    await narrow.goto(path);
    await narrow.waitForTimeout(200);
    const sideways = await narrow.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    step(`360 px: ${name} does not scroll sideways`, sideways <= 0, { sideways });
    await shot(narrow, `${name}-360`);
  }
  await narrow.goto("/login"); // signed in: goes home; the sign-in page was shot above at 1280
  await narrowCtx.close();

  // --- admin library: scan ---------------------------------------------------------------------
  await admin.goto("/admin/library");
  await admin.getByRole("button", { name: "Scan library" }).click();
  const scanText = await poll(async () => {
    const t = await admin.getByRole("status", { name: "Scan status" }).textContent();
    return /State: (idle|succeeded|completed|done|running|queued)/.test(t) ? t : null;
  }, 8000, 200);
  step("Scan library shows a status", !!scanText, { scanText });

  // --- keyboard only (full run) ----------------------------------------------------------------
  if (cfg.full) {
    const kctx = await newContext();
    const kp = await kctx.newPage();
    await kp.goto("/");
    await kp.keyboard.press("Tab"); // Skip to content
    await kp.keyboard.press("Tab");
    await kp.keyboard.press("Tab");
    await kp.keyboard.type(cfg.username);
    await kp.keyboard.press("Tab");
    await kp.keyboard.type(cfg.password);
    await kp.keyboard.press("Enter");
    await kp.waitForURL((u) => !u.pathname.startsWith("/login"));
    await kp.getByRole("searchbox", { name: "Search" }).focus();
    await kp.keyboard.type(titles.direct.slice(0, 4).toLowerCase());
    await kp.keyboard.press("Enter");
    await kp.waitForURL(/\/search/);
    await kp.getByRole("link", { name: titles.direct, exact: true }).focus();
    await kp.keyboard.press("Enter");
    await kp.waitForURL(/\/items\//);
    await kp.getByRole("button", { name: "Play", exact: true }).focus();
    await kp.keyboard.press("Enter");
    await kp.waitForURL(/\/play\//);
    await waitPlaying(kp, 1, 20000);
    await kp.locator("h1").click();
    await kp.keyboard.press(" ");
    const paused = await poll(() => kp.locator("video").evaluate((v) => v.paused), 3000);
    await kp.keyboard.press("m");
    const muted = await kp.locator("video").evaluate((v) => v.muted);
    await kp.keyboard.press("c");
    step("keyboard only: sign in, search, play, Space pauses, m mutes", !!paused && muted, { paused, muted });
    await kctx.close();
  }

  // --- sign out --------------------------------------------------------------------------------
  const old = (await ctx.cookies()).find((c) => c.name === "revenge_session");
  await page.goto("/");
  await page.getByRole("link", { name: "Sign out" }).click();
  await page.waitForURL(/\/login/);
  const me = await fetch(`${base}/api/v1/me`, { headers: { Cookie: `revenge_session=${old.value}` } });
  step("Sign out → /login, the old cookie → 401", me.status === 401, { status: me.status });

  await adminCtx.close();
  await ctx.close();
  step("no CSP violation", csp.length === 0, { csp });
  step("no page error", pageErrors.length === 0, { pageErrors });
  exitOk = failures.length === 0;
} catch (e) {
  failures.push({ name: "exception", error: String(e && e.stack ? e.stack : e) });
} finally {
  await browser.close();
}
console.log(JSON.stringify({ ok: exitOk, failures, steps, csp, errors: pageErrors, seconds: (Date.now() - t0) / 1000 }));
process.exit(exitOk ? 0 : 1);
