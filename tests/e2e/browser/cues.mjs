// Plays an HLS master playlist with hls.js in headless Chromium with its DEFAULT subtitle rendition
// on, and reports when cues became active (cuechange) and what was active near chosen times.
// usage: node cues.mjs <master url> <play until seconds> <seek to seconds> <then until seconds> <timeout seconds>
import { chromium } from "playwright-core";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const [url, until, seekTo, after, timeout] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4]),
  Number(process.argv[5]), Number(process.argv[6] || 60)];
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
  verdict = await page.evaluate(async ({ url, until, seekTo, after, timeout }) => {
    const video = document.getElementById("v");
    const errors = [];
    if (!window.Hls || !Hls.isSupported()) return { ok: false, errors: ["hls.js unsupported here"] };
    const hls = new Hls({ subtitleDisplay: true });
    hls.on(Hls.Events.ERROR, (_e, d) => { if (d.fatal) errors.push(`${d.type}:${d.details}`); });
    const changes = [];
    const samples = [];
    let track = null;
    const texts = () => (track && track.activeCues ? Array.from(track.activeCues).map((c) => c.text) : []);
    const heard = new WeakSet();
    const watch = () => {
      for (const t of Array.from(video.textTracks)) {
        if (t.mode !== "disabled") {
          track = t;
          if (!heard.has(t)) {
            heard.add(t);
            t.addEventListener("cuechange", () => { if (t === track) changes.push({ t: video.currentTime, texts: texts() }); });
          }
        }
      }
    };
    video.textTracks.addEventListener("addtrack", () => setTimeout(watch, 0));
    video.textTracks.addEventListener("change", () => setTimeout(watch, 0));
    const pick = () => {
      const i = hls.subtitleTracks.findIndex((t) => t.default);
      if (i >= 0 && hls.subtitleTrack !== i) hls.subtitleTrack = i;
    };
    hls.on(Hls.Events.SUBTITLE_TRACKS_UPDATED, pick);
    hls.on(Hls.Events.MANIFEST_PARSED, () => {
      pick();
      video.play().catch((e) => errors.push(String(e)));
    });
    hls.loadSource(url);
    hls.attachMedia(video);
    const start = performance.now();
    const live = () => errors.length === 0 && performance.now() - start < timeout * 1000;
    const runTo = async (target) => {
      while (video.currentTime < target && live()) {
        pick();
        watch();
        samples.push({ t: video.currentTime, texts: texts() });
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    await runTo(until);
    const marker = changes.length;
    if (seekTo > 0) {
      video.currentTime = seekTo;
      await runTo(after);
    }
    let cueCount = null;
    if (track && track.cues) cueCount = Array.from(track.cues).map((c) => [c.startTime, c.endTime, c.text]);
    return { ok: video.currentTime >= (seekTo > 0 ? after : until) && errors.length === 0, errors,
             currentTime: video.currentTime, changes, samples, seekIndex: marker, cues: cueCount,
             textTracks: Array.from(video.textTracks).map((t) => ({ kind: t.kind, label: t.label, mode: t.mode,
                                                                     cues: t.cues ? t.cues.length : null })),
             subtitleTrack: hls.subtitleTrack,
             tracks: hls.subtitleTracks.map((t) => ({ name: t.name, lang: t.lang, default: t.default, forced: t.forced })) };
  }, { url, until, seekTo, after, timeout });
} catch (e) {
  verdict = { ok: false, errors: [String(e)] };
} finally {
  await browser.close();
}
console.log(JSON.stringify(verdict));
process.exit(verdict.ok ? 0 : 1);
