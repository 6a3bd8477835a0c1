// Plays an HLS master playlist with hls.js in headless Chromium; prints a JSON verdict.
// usage: node play.mjs <master url> <seconds to reach> <timeout seconds>
import { chromium } from "playwright-core";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const [url, target, timeout] = [process.argv[2], Number(process.argv[3] || 3), Number(process.argv[4] || 60)];
const require = createRequire(import.meta.url);
const hlsSource = readFileSync(require.resolve("hls.js/dist/hls.min.js"), "utf8");
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--autoplay-policy=no-user-gesture-required"],
});
let verdict = { ok: false };
try {
  const page = await browser.newPage();
  await page.setContent("<video id=v muted playsinline></video>");
  await page.addScriptTag({ content: hlsSource });
  verdict = await page.evaluate(async ({ url, target, timeout }) => {
    const video = document.getElementById("v");
    const errors = [];
    if (!window.Hls || !Hls.isSupported()) return { ok: false, errors: ["hls.js unsupported here"] };
    const hls = new Hls();
    hls.on(Hls.Events.ERROR, (_e, d) => { if (d.fatal) errors.push(`${d.type}:${d.details}`); });
    const loadAt = performance.now();  // time to `playing` counts from here (issue 18)
    let msToPlaying = null;
    video.addEventListener("playing", () => { if (msToPlaying === null) msToPlaying = performance.now() - loadAt; });
    hls.loadSource(url);
    hls.attachMedia(video);
    hls.on(Hls.Events.MANIFEST_PARSED, () => video.play().catch((e) => errors.push(String(e))));
    let startedAt = null;
    video.addEventListener("playing", () => { if (startedAt === null) startedAt = video.currentTime; });
    const start = performance.now();
    while (video.currentTime < target && errors.length === 0 && performance.now() - start < timeout * 1000) {
      await new Promise((r) => setTimeout(r, 100));
    }
    const level = hls.levels[hls.currentLevel];
    return { ok: video.currentTime >= target && errors.length === 0, currentTime: video.currentTime, errors,
             width: video.videoWidth, height: video.videoHeight, startedAt, userAgent: navigator.userAgent,
             levels: hls.levels.map((l) => l.videoCodec || null), playedCodec: level ? level.videoCodec : null,
             msToPlaying, msToTarget: video.currentTime >= target ? performance.now() - loadAt : null };
  }, { url, target, timeout });
} catch (e) {
  verdict = { ok: false, errors: [String(e)] };
} finally {
  await browser.close();
}
console.log(JSON.stringify(verdict));
process.exit(verdict.ok ? 0 : 1);
