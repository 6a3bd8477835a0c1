// Show pages and seek-bar thumbnails in Debian's Chromium, by accessible names (web-client.md §2 rule 9,
// §3; API.md "Web client").
// usage: node shows.mjs '<json: {base, username, password, artifacts, show, episodes[3], long_id, direct_id}>'
// Prints one JSON line: {ok, steps: [...], failures: [...], csp: [...], errors: [...]}.
import { harness } from "./harness.mjs";

const cfg = JSON.parse(process.argv[2]);
const { base, artifacts } = cfg;
const [ep1, ep2, ep3] = cfg.episodes;
const h = await harness(base, artifacts);
const { steps, failures, csp, pageErrors, t0, step, poll, browser, newContext, shot } = h;

async function signIn(page) {
  await page.goto("/");
  await page.waitForURL(/\/login\?next=/);
  await page.getByLabel("Username").fill(cfg.username);
  await page.getByLabel("Password").fill(cfg.password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL((u) => !u.pathname.startsWith("/login"));
}

const videoTime = (page) => page.locator("video").evaluate((v) => v.currentTime);
const seasonOf = (page, heading) => page.getByRole("region", { name: heading });

let exitOk = false;
try {
  const ctx = await newContext();
  const page = await ctx.newPage();
  const sessionBodies = [];
  const responses = [];
  page.on("request", (r) => {
    if (r.method() === "POST" && new URL(r.url()).pathname === "/api/v1/playback/sessions") {
      try { sessionBodies.push(JSON.parse(r.postData() || "{}")); } catch { /* not JSON */ }
    }
  });
  page.on("response", (r) => responses.push({ url: r.url(), status: r.status(), type: r.headers()["content-type"] || "" }));
  await signIn(page);

  // --- home → the show's page ------------------------------------------------------------------
  const showLink = page.getByRole("region", { name: "Shows" }).getByRole("link", { name: cfg.show, exact: true });
  step("home: a Shows row links the show by its title", (await showLink.count()) === 1);
  await showLink.click();
  await page.waitForURL(/\/shows\/[0-9a-f-]{36}$/);
  const showUrl = page.url();
  const h1 = (await page.getByRole("heading", { level: 1 }).textContent()).trim();
  const s1 = seasonOf(page, "Season 1"), s2 = seasonOf(page, "Season 2");
  const names = async (region) => region.getByRole("link").allTextContents();
  const n1 = await names(s1), n2 = await names(s2);
  step("show page: h1 title, Season 1 and Season 2 with episode links by title",
       h1 === cfg.show && JSON.stringify(n1.map((s) => s.trim())) === JSON.stringify([ep1, ep2]) &&
       JSON.stringify(n2.map((s) => s.trim())) === JSON.stringify([ep3]), { h1, n1, n2 });
  const firstNext = page.getByRole("region", { name: "Next up" }).getByRole("link", { name: `Play ${ep1}`, exact: true });
  step("show page: nothing played → next up is the first episode", (await firstNext.count()) === 1);
  await shot(page, "show-1280");

  // --- an episode: watched, then another plays from the show page --------------------------------
  await s1.getByRole("link", { name: ep1, exact: true }).click();
  await page.waitForURL(/\/items\//);
  const backToShow = (await page.getByRole("link", { name: cfg.show, exact: true }).count()) === 1;
  await page.getByRole("button", { name: "Mark as watched" }).click();
  await poll(async () => (await page.getByRole("button", { name: "Mark as unwatched" }).count()) === 1, 5000);
  await page.goto(showUrl);
  const row1 = s1.getByRole("listitem").filter({ has: page.getByRole("link", { name: ep1, exact: true }) });
  const watchedMark = ((await row1.textContent()) || "").includes("Watched");
  const next2 = page.getByRole("region", { name: "Next up" }).getByRole("link", { name: `Play ${ep2}`, exact: true });
  step("episode links its show; after marking it watched the show marks it and next up moves on",
       backToShow && watchedMark && (await next2.count()) === 1, { backToShow, watchedMark });

  await s1.getByRole("link", { name: ep2, exact: true }).click();
  await page.waitForURL(/\/items\//);
  await page.getByRole("button", { name: "Play", exact: true }).click();
  await page.waitForURL(/\/play\//);
  const played = await poll(async () => (await videoTime(page)) >= 2.5, 30000, 200);
  step("an episode plays", !!played, { currentTime: await videoTime(page) });
  const body = sessionBodies[sessionBodies.length - 1] || {};
  const keys = Object.keys(body.client_profile || {}).sort();
  const allowed = ["audio_codecs", "supports_hdr10", "supports_hlg", "video_codecs"];
  step("client_profile: codecs and HDR flags only (rule 10: other fields omitted)",
       keys.length > 0 && keys.every((k) => allowed.includes(k)), { keys });
  await page.locator("video").evaluate((v) => { v.currentTime = 36; }); // past 30 s: a resume point (users.md 18)
  await poll(async () => (await videoTime(page)) >= 37, 15000, 200);
  await page.locator("video").evaluate((v) => v.pause());
  const leftAt = await videoTime(page);
  await page.goto(showUrl);
  await page.waitForTimeout(500);
  await page.reload();
  const row2 = s1.getByRole("listitem").filter({ has: page.getByRole("link", { name: ep2, exact: true }) });
  const resumeAt = Number(await row2.locator("[data-position-seconds]").getAttribute("data-position-seconds").catch(() => NaN));
  const resumeNext = page.getByRole("region", { name: "Next up" }).getByRole("link", { name: `Resume ${ep2}`, exact: true });
  step("show page: the played-into episode shows its resume point; next up resumes it",
       Math.abs(resumeAt - leftAt) <= 2 && (await resumeNext.count()) === 1, { resumeAt, leftAt });

  // --- home Next up (users.md 21): after S01's last → S02E01 ---------------------------------------
  await s1.getByRole("link", { name: ep2, exact: true }).click();
  await page.waitForURL(/\/items\//);
  await page.getByRole("button", { name: "Mark as watched" }).click();
  await poll(async () => (await page.getByRole("button", { name: "Mark as unwatched" }).count()) === 1, 5000);
  await page.goto("/");
  const homeNext = page.getByRole("region", { name: "Next up" }).getByRole("link", { name: ep3, exact: true });
  step("home: Next up holds the next season's first episode", (await homeNext.count()) === 1);
  await homeNext.click();
  await page.waitForURL(/\/items\//);
  step("a Next up card opens the episode", (await page.getByRole("heading", { level: 1 }).textContent()).trim() === ep3);
  await page.goto(`${showUrl}?season=2`);
  const only2 = (await seasonOf(page, "Season 1").count()) === 0 && (await seasonOf(page, "Season 2").count()) === 1;
  step("?season=2 lists that season only", only2);

  // --- seek thumbnails ------------------------------------------------------------------------------
  await page.goto(`/play/${cfg.long_id}`);
  await poll(async () => (await videoTime(page)) >= 1, 30000, 200);
  const seek = page.getByRole("slider", { name: "Seek" });
  await poll(() => page.evaluate(() => window.revengePlayer.thumbnails > 0), 10000, 200);
  const box = await seek.boundingBox();
  const duration = await page.evaluate(() => Number(document.getElementById("seek").max));
  const tileFor = (t) => { const k = Math.floor(t / 10); return `${(k % 10) * 160},${Math.floor(k / 10) * 90},160,90`; };
  const hoverAt = async (f) => {
    await page.mouse.move(box.x + f * box.width, box.y + box.height / 2);
    return poll(() => page.evaluate(() => {
      const p = document.getElementById("seek-preview"), th = document.getElementById("seek-thumb");
      return p.hidden ? null : { thumb: !th.hidden, xywh: th.dataset.xywh, bg: th.style.backgroundImage,
                                 pos: th.style.backgroundPosition, time: document.getElementById("seek-time").textContent };
    }), 3000);
  };
  const a = await hoverAt(0.5), b = await hoverAt(0.1);
  const sprite = responses.find((r) => /\/trickplay\/[0-9a-f]{16}\/sprite-001\.jpg$/.test(r.url));
  step("hover: the sprite tile for that time (#xywh) from the trickplay track",
       a && b && a.thumb && b.thumb && a.xywh === tileFor(0.5 * duration) && b.xywh === tileFor(0.1 * duration) &&
       /sprite-001\.jpg/.test(a.bg) && a.pos === `${-a.xywh.split(",")[0]}px ${-a.xywh.split(",")[1]}px` &&
       !!sprite && sprite.status === 200 && sprite.type.startsWith("image/jpeg"),
       { a, b, duration, sprite });
  await shot(page, "player-seek-preview-1280");
  // drag: press at 20 %, move to 80 %, release → the preview follows, the video seeks there
  await page.mouse.move(box.x + 0.2 * box.width, box.y + box.height / 2);
  await page.mouse.down();
  await page.mouse.move(box.x + 0.8 * box.width, box.y + box.height / 2, { steps: 8 });
  const dragging = await page.evaluate(() => ({ hidden: document.getElementById("seek-preview").hidden,
                                                xywh: document.getElementById("seek-thumb").dataset.xywh,
                                                value: Number(document.getElementById("seek").value) }));
  await page.mouse.up();
  const landed = await poll(async () => {
    const t = await videoTime(page);
    return Math.abs(t - dragging.value) <= 3 ? t : null;
  }, 10000, 200);
  step("drag: the preview shows the dragged-to tile and the video seeks there",
       !dragging.hidden && dragging.xywh === tileFor(dragging.value) && Math.abs(dragging.value - 0.8 * duration) <= 0.05 * duration &&
       landed !== null, { dragging, landed });
  await page.mouse.move(box.x + box.width / 2, box.y - 200);

  // --- no track: no thumbnails, no errors -----------------------------------------------------------
  const bare = await ctx.newPage();
  bare.on("pageerror", (e) => pageErrors.push(`${bare.url()}: ${e.message}`));
  await bare.route("**/trickplay.vtt", (r) => r.fulfill({ status: 404, contentType: "application/json",
    body: JSON.stringify({ error: { code: "trickplay_not_ready", message: "Not yet." } }) }));
  await bare.goto(`/play/${cfg.direct_id}`);
  await poll(async () => (await bare.locator("video").evaluate((v) => v.currentTime)) >= 1, 20000, 200);
  const bbox = await bare.getByRole("slider", { name: "Seek" }).boundingBox();
  await bare.mouse.move(bbox.x + bbox.width / 2, bbox.y + bbox.height / 2);
  const plain = await poll(() => bare.evaluate(() => {
    const p = document.getElementById("seek-preview");
    return p.hidden ? null : { thumb: !document.getElementById("seek-thumb").hidden, time: document.getElementById("seek-time").textContent,
                               n: window.revengePlayer.thumbnails };
  }), 3000);
  step("no trickplay track: the bar shows the time only", !!plain && !plain.thumb && plain.n === 0 && /^\d+:\d\d$/.test(plain.time), { plain });
  await bare.close();

  // --- 360 px --------------------------------------------------------------------------------------
  const narrowCtx = await newContext({ width: 360, height: 740 });
  const narrow = await narrowCtx.newPage();
  await signIn(narrow);
  for (const [name, path] of [["show", showUrl.replace(base, "")], ["player-seek", `/play/${cfg.long_id}`]]) {
    await narrow.goto(path);
    await narrow.waitForTimeout(300);
    const sideways = await narrow.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    step(`360 px: ${name} does not scroll sideways`, sideways <= 0, { sideways });
    await shot(narrow, `${name}-360`);
  }
  await narrowCtx.close();
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
