// The player (web-client.md §3): a session made with this browser's own capabilities, direct play
// through <video src>, else hls.js, else the browser's HLS; menus, keys, progress, stats, errors.
import { api, ApiError, clock, csrfToken, el, pageData, showAlert } from "./common.js";

const data = pageData();
const video = document.getElementById("video");
const notice = document.getElementById("notice");
const statsBox = document.getElementById("stats");
const statsList = document.getElementById("stats-list");
const HB = Math.max(1, Number(data.heartbeat_seconds) || 30) * 1000;
const ENDED_MSG = "Playback has ended on the server: an administrator or the server ended this session.";

let session = null;      // the create answer
let hls = null;
let mode = "";           // direct | hls.js | native
let heartbeat = null;
let ended = false;       // the server ended it: no more reports
let stopped = false;     // we sent the final "stopped" report
let waitingSince = null;
let bufferingMs = null;
let fatalRetries = 0;
let lastSubtitle = null; // for "c"
let sessionView = null;  // GET session answer (bandwidth) while stats are open
// hls.js text tracks, rendered through video.addTextTrack: hls.js's own <track src="data:…">
// nodes would need `media-src data:`, which the page CSP does not allow. Native tracks cannot be
// removed, so they are kept by name and language across sessions and only emptied.
const hlsText = new Map();

// --- capabilities --------------------------------------------------------------------------
function clientProfile() {
  const mse = window.ManagedMediaSource || window.MediaSource;
  const probe = document.createElement("video");
  const can = (type) => (mse && mse.isTypeSupported ? mse.isTypeSupported(type) : probe.canPlayType(type) !== "");
  const videoTypes = {
    h264: 'video/mp4; codecs="avc1.640028"',
    hevc: 'video/mp4; codecs="hvc1.1.6.L120.90"',
    av1: 'video/mp4; codecs="av01.0.08M.08"',
    vp9: 'video/mp4; codecs="vp09.00.40.08"',
  };
  const audioTypes = {
    aac: 'audio/mp4; codecs="mp4a.40.2"',
    mp3: "audio/mpeg",
    opus: 'audio/mp4; codecs="opus"',
    flac: 'audio/mp4; codecs="flac"',
    ac3: 'audio/mp4; codecs="ac-3"',
    eac3: 'audio/mp4; codecs="ec-3"',
    vorbis: 'audio/webm; codecs="vorbis"',
  };
  const profile = {};
  const v = Object.keys(videoTypes).filter((k) => can(videoTypes[k]));
  const a = Object.keys(audioTypes).filter((k) => can(audioTypes[k]));
  if (v.length) profile.video_codecs = v;
  if (a.length) profile.audio_codecs = a;
  const hdr = window.matchMedia && window.matchMedia("(dynamic-range: high)").matches;
  profile.supports_hdr10 = !!hdr;
  profile.supports_hlg = !!hdr;
  return profile;
}

// --- sessions ------------------------------------------------------------------------------
async function createSession(start, audioTrack) {
  const body = { media_id: data.media_id, start_position_seconds: Math.max(0, start || 0),
                 client_profile: clientProfile() };
  if (audioTrack !== undefined && audioTrack !== null) body.audio_track = audioTrack;
  return api("POST", "/api/v1/playback/sessions", body);
}

function errorText(err) {
  if (err instanceof ApiError) {
    if (err.status === 429) return err.retryAfter ? `Too many playback sessions; try again in ${err.retryAfter} s.` : err.message;
    return err.message;
  }
  return String(err && err.message ? err.message : err);
}

async function start(position, audioTrack, keepPaused = false) {
  showAlert("");
  try {
    const old = session;
    session = await createSession(position, audioTrack);
    if (old && old.session_id !== session.session_id) endQuietly(old.session_id);
  } catch (err) {
    showAlert(errorText(err));
    return;
  }
  ended = false;
  stopped = false;
  fatalRetries = 0;
  attach(position, keepPaused);
  startHeartbeat();
}

function endQuietly(sid) {
  api("DELETE", `/api/v1/playback/sessions/${sid}`).catch(() => {});
}

function textKey(sub) {
  return `${sub ? sub.name : ""}|${sub ? sub.lang || "" : ""}`;
}

function hlsTextTrack(sub, kind = "subtitles") {
  const key = textKey(sub);
  let tt = hlsText.get(key);
  if (!tt) {
    tt = video.addTextTrack(kind === "captions" ? "captions" : "subtitles", sub.name || sub.lang || "Subtitles", sub.lang || "");
    tt.mode = "disabled";
    hlsText.set(key, tt);
  }
  return tt;
}

function addCues(d) {
  if (!d.subtitleTrack || !d.cues) return;
  const tt = hlsTextTrack(d.subtitleTrack, d.type === "captions" ? "captions" : "subtitles");
  const had = tt.mode;
  if (had === "disabled") tt.mode = "hidden"; // cues can only be read and added on an enabled track
  const seen = new Set([...(tt.cues || [])].map((c) => `${c.startTime}|${c.endTime}|${c.text}`));
  for (const cue of d.cues) {
    const k = `${cue.startTime}|${cue.endTime}|${cue.text}`;
    if (!seen.has(k)) { seen.add(k); try { tt.addCue(cue); } catch { /* a cue of another document */ } }
  }
  if (had === "disabled") tt.mode = "disabled";
}

function teardown() {
  if (hls) { hls.destroy(); hls = null; }
  for (const tt of hlsText.values()) {
    tt.mode = "disabled";
    tt.mode = "hidden";
    for (const c of [...(tt.cues || [])]) tt.removeCue(c);
    tt.mode = "disabled";
  }
  for (const t of [...video.querySelectorAll("track")]) t.remove();
  video.removeAttribute("src");
  video.load();
}

function addTracks(list) {
  for (const s of list || []) {
    if (!s.url) continue;
    video.append(el("track", { kind: "subtitles", src: s.url, srclang: s.language || "und",
                               label: s.name || s.language || `Track ${s.index}`, "data-index": s.index }));
  }
}

function attach(position, keepPaused, forceHls = false) {
  teardown();
  const play = () => { if (!keepPaused) video.play().catch(() => {}); };
  if (session.mode === "direct" && session.direct_stream_url && !forceHls) {
    mode = "direct";
    video.src = session.direct_stream_url;
    addTracks(session.subtitles);
    video.addEventListener("loadedmetadata", () => { if (position > 0) video.currentTime = position; play(); },
                           { once: true });
  } else if (window.Hls && window.Hls.isSupported()) {
    mode = "hls.js";
    const Hls = window.Hls;
    hls = new Hls({ startPosition: position > 0 ? position : -1, enableWorker: true,
                    renderTextTracksNatively: false });
    hls.on(Hls.Events.NON_NATIVE_TEXT_TRACKS_FOUND, (_e, d) => { for (const t of d.tracks) hlsTextTrack(t.subtitleTrack, t.kind); buildMenus(); });
    hls.on(Hls.Events.CUES_PARSED, (_e, d) => addCues(d));
    hls.on(Hls.Events.MANIFEST_PARSED, () => { buildMenus(); play(); });
    hls.on(Hls.Events.AUDIO_TRACKS_UPDATED, buildMenus);
    hls.on(Hls.Events.SUBTITLE_TRACKS_UPDATED, buildMenus);
    hls.on(Hls.Events.ERROR, (_e, d) => { if (d.fatal) onFatal(d); });
    hls.loadSource(session.master_playlist_url);
    hls.attachMedia(video);
  } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
    mode = "native";
    video.src = session.master_playlist_url;
    video.addEventListener("loadedmetadata", () => { if (position > 0) video.currentTime = position; play(); },
                           { once: true });
  } else {
    mode = "";
    showAlert("This browser can play neither this file directly nor HLS.");
    return;
  }
  buildMenus();
}

async function onFatal(d) {
  if (ended) return;
  if (fatalRetries < 1) {
    fatalRetries += 1;
    if (d.type === window.Hls.ErrorTypes.MEDIA_ERROR) hls.recoverMediaError();
    else hls.startLoad();
    return;
  }
  try {
    await api("GET", `/api/v1/playback/sessions/${session.session_id}`);
    showAlert(`Playback failed: ${d.details}.`);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) serverEnded(err.message);
    else showAlert(`Playback failed: ${d.details}.`);
  }
}

function serverEnded(message) {
  ended = true;
  stopHeartbeat();
  if (hls) hls.stopLoad();
  video.pause();
  showAlert(message ? `${ENDED_MSG} (${message})` : ENDED_MSG);
}

// --- progress ------------------------------------------------------------------------------
function position() {
  const t = Number(video.currentTime) || 0;
  const max = Number(session && session.duration_seconds) || t;
  return Math.max(0, Math.min(t, max));
}

function state() {
  if (waitingSince !== null) return "buffering";
  return video.paused || video.ended ? "paused" : "playing";
}

async function report(st = state()) {
  if (!session || ended || stopped) return;
  const body = { position_seconds: position(), state: st };
  if (bufferingMs !== null) { body.buffering_ms = bufferingMs; bufferingMs = null; }
  const sid = session.session_id;
  try {
    await api("POST", `/api/v1/playback/sessions/${sid}/progress`, body);
  } catch (err) {
    if (!session || session.session_id !== sid) return;
    if (err instanceof ApiError && err.status === 404) serverEnded(err.message);
    else if (err instanceof ApiError && err.status === 403 && err.code === "invalid_token") start(position(), undefined, video.paused);
    else if (err instanceof ApiError && err.status === 429) showAlert(errorText(err));
  }
}

function startHeartbeat() {
  stopHeartbeat();
  heartbeat = setInterval(() => report(), HB);
}

function stopHeartbeat() {
  if (heartbeat !== null) clearInterval(heartbeat);
  heartbeat = null;
}

video.addEventListener("pause", () => { if (!video.ended) report("paused"); });
video.addEventListener("seeked", () => report());
video.addEventListener("ended", () => report("paused"));
video.addEventListener("waiting", () => { if (waitingSince === null) waitingSince = performance.now(); });
video.addEventListener("playing", () => {
  if (waitingSince !== null) { bufferingMs = Math.round(performance.now() - waitingSince); waitingSince = null; }
});

window.addEventListener("pagehide", () => {
  if (!session || ended || stopped) return;
  stopped = true;
  stopHeartbeat();
  // never sendBeacon: it cannot carry X-CSRF-Token (web-client.md pitfalls)
  fetch(`/api/v1/playback/sessions/${session.session_id}/progress`, {
    method: "POST", keepalive: true, credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken() },
    body: JSON.stringify({ position_seconds: position(), state: "stopped" }),
  }).catch(() => {});
});

window.addEventListener("pageshow", (ev) => {
  if (ev.persisted) { session = null; start(position(), undefined, true); }
});

// --- menus ---------------------------------------------------------------------------------
const menus = {
  audio: { button: document.getElementById("btn-audio"), list: document.getElementById("menu-audio") },
  subtitles: { button: document.getElementById("btn-subtitles"), list: document.getElementById("menu-subtitles") },
  quality: { button: document.getElementById("btn-quality"), list: document.getElementById("menu-quality") },
};

function audioEntries() {
  if (hls && hls.audioTracks && hls.audioTracks.length) {
    return hls.audioTracks.map((t, i) => ({ label: t.name || t.lang || `Track ${i + 1}`, checked: hls.audioTrack === i,
                                            pick: () => { hls.audioTrack = i; } }));
  }
  if (video.audioTracks && video.audioTracks.length > 1) {
    return [...video.audioTracks].map((t, i) => ({ label: t.label || t.language || `Track ${i + 1}`, checked: t.enabled,
                                                   pick: () => { [...video.audioTracks].forEach((x, j) => { x.enabled = j === i; }); } }));
  }
  const current = session && session.audio_track;
  return (data.audio || []).map((a, i) => ({
    label: [a.title, a.language].filter(Boolean).join(" · ") || `Track ${i + 1}`,
    checked: current === undefined || current === null ? i === 0 : current === a.index,
    pick: () => { const t = position(); start(t, a.index, video.paused).then(() => { if (session) session.audio_track = a.index; }); },
  }));
}

function textTracks() {
  const own = new Set(hlsText.values());
  return [...video.textTracks].filter((t) => (t.kind === "subtitles" || t.kind === "captions") && (hls ? own.has(t) : !own.has(t)));
}

function setSubtitle(index) {
  if (hls && hls.subtitleTracks && hls.subtitleTracks.length) {
    hls.subtitleDisplay = index >= 0;
    hls.subtitleTrack = index;
    const want = index >= 0 ? hlsTextTrack(hls.subtitleTracks[index]) : null;
    for (const t of textTracks()) t.mode = t === want ? "showing" : "disabled";
  } else {
    textTracks().forEach((t, i) => { t.mode = i === index ? "showing" : "disabled"; });
  }
  if (index >= 0) lastSubtitle = index;
  buildMenus();
}

function currentSubtitle() {
  if (hls && hls.subtitleTracks && hls.subtitleTracks.length) return hls.subtitleDisplay ? hls.subtitleTrack : -1;
  return textTracks().findIndex((t) => t.mode === "showing");
}

function subtitleEntries() {
  const cur = currentSubtitle();
  const out = [{ label: "Off", checked: cur < 0, pick: () => setSubtitle(-1) }];
  if (hls && hls.subtitleTracks && hls.subtitleTracks.length) {
    hls.subtitleTracks.forEach((t, i) => out.push({ label: t.name || t.lang || `Track ${i + 1}`, checked: cur === i,
                                                    pick: () => setSubtitle(i) }));
  } else {
    textTracks().forEach((t, i) => out.push({ label: t.label || t.language || `Track ${i + 1}`, checked: cur === i,
                                              pick: () => setSubtitle(i) }));
  }
  return out;
}

function qualityEntries() {
  if (hls && hls.levels && hls.levels.length) {
    const out = [{ label: "Auto", checked: hls.autoLevelEnabled, pick: () => { hls.currentLevel = -1; } }];
    hls.levels.forEach((l, i) => out.push({ label: l.height ? `${l.height}p` : `${Math.round(l.bitrate / 1000)} kb/s`,
                                            checked: !hls.autoLevelEnabled && hls.currentLevel === i,
                                            pick: () => { hls.currentLevel = i; } }));
    return out;
  }
  const out = [{ label: mode === "direct" ? "Original" : "Auto", checked: true, pick: () => {} }];
  if (mode === "direct") {
    for (const v of (session && session.variants) || []) {
      if (!v.height) continue;
      out.push({ label: `${v.height}p`, checked: false, pick: () => switchToVariant(v.height) });
    }
  }
  return out;
}

function switchToVariant(height) {
  const t = position();
  attach(t, video.paused, true);
  if (hls) {
    hls.once(window.Hls.Events.MANIFEST_PARSED, () => {
      const i = hls.levels.findIndex((l) => l.height === height);
      if (i >= 0) hls.currentLevel = i;
    });
  }
}

const builders = { audio: audioEntries, subtitles: subtitleEntries, quality: qualityEntries };

function buildMenus() {
  for (const [name, m] of Object.entries(menus)) {
    const focusedIndex = [...m.list.children].indexOf(document.activeElement);
    m.list.replaceChildren();
    const entries = builders[name]();
    entries.forEach((entry) => {
      const li = el("li", { role: "menuitemradio", tabindex: "-1", "aria-checked": entry.checked ? "true" : "false",
                            text: entry.label });
      li.addEventListener("click", () => { closeMenu(name, true); entry.pick(); setTimeout(buildMenus, 300); });
      m.list.append(li);
    });
    if (focusedIndex >= 0 && m.list.children[focusedIndex]) m.list.children[focusedIndex].focus();
  }
}

function openMenu(name) {
  for (const other of Object.keys(menus)) if (other !== name) closeMenu(other, false);
  const m = menus[name];
  buildMenus();
  m.list.hidden = false;
  m.button.setAttribute("aria-expanded", "true");
  const items = [...m.list.children];
  (items.find((i) => i.getAttribute("aria-checked") === "true") || items[0])?.focus();
}

function closeMenu(name, refocus) {
  const m = menus[name];
  if (m.list.hidden) return;
  m.list.hidden = true;
  m.button.setAttribute("aria-expanded", "false");
  if (refocus) m.button.focus();
}

for (const [name, m] of Object.entries(menus)) {
  m.button.addEventListener("click", () => (m.list.hidden ? openMenu(name) : closeMenu(name, true)));
  m.button.addEventListener("keydown", (ev) => {
    if (ev.key === "ArrowDown" || ev.key === "ArrowUp") { ev.preventDefault(); openMenu(name); }
  });
  m.list.addEventListener("keydown", (ev) => {
    const items = [...m.list.children];
    const i = items.indexOf(document.activeElement);
    if (ev.key === "ArrowDown") { ev.preventDefault(); items[(i + 1) % items.length]?.focus(); }
    else if (ev.key === "ArrowUp") { ev.preventDefault(); items[(i - 1 + items.length) % items.length]?.focus(); }
    else if (ev.key === "Home") { ev.preventDefault(); items[0]?.focus(); }
    else if (ev.key === "End") { ev.preventDefault(); items[items.length - 1]?.focus(); }
    else if (ev.key === "Escape") { ev.preventDefault(); closeMenu(name, true); }
    else if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); document.activeElement?.click(); }
    else if (ev.key === "Tab") closeMenu(name, false);
    ev.stopPropagation();
  });
}

document.addEventListener("click", (ev) => {
  if (!ev.target.closest(".menu-wrap")) for (const name of Object.keys(menus)) closeMenu(name, false);
});

// --- keys ----------------------------------------------------------------------------------
document.addEventListener("keydown", (ev) => {
  if (ev.ctrlKey || ev.altKey || ev.metaKey || ev.defaultPrevented) return;
  const t = ev.target;
  if (t.closest && (t.closest("input, textarea, select, [contenteditable], [role=menu]"))) return;
  const onButton = t.closest && t.closest("button, a, summary");
  const key = ev.key;
  if (key === " " || key === "k") {
    if (key === " " && onButton) return; // a focused button keeps Space
    ev.preventDefault();
    if (video.paused) video.play().catch(() => {}); else video.pause();
  } else if (key === "ArrowLeft" || key === "ArrowRight") {
    if (onButton && t !== video) return;
    ev.preventDefault();
    const d = key === "ArrowRight" ? 10 : -10;
    const max = Number(video.duration) || Number(session && session.duration_seconds) || 0;
    video.currentTime = Math.max(0, Math.min(max || Infinity, video.currentTime + d));
  } else if (key === "f") {
    ev.preventDefault();
    if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
    else video.requestFullscreen?.().catch(() => {});
  } else if (key === "m") {
    ev.preventDefault();
    video.muted = !video.muted;
  } else if (key === "c") {
    ev.preventDefault();
    const cur = currentSubtitle();
    if (cur >= 0) setSubtitle(-1);
    else {
      const n = hls && hls.subtitleTracks && hls.subtitleTracks.length ? hls.subtitleTracks.length : textTracks().length;
      if (n) setSubtitle(lastSubtitle !== null && lastSubtitle < n ? lastSubtitle : 0);
    }
  }
});

// --- stats ---------------------------------------------------------------------------------
const statsButton = document.getElementById("btn-stats");
let statsTimer = null;
let statsTick = 0;

function bufferAhead() {
  const b = video.buffered;
  for (let i = 0; i < b.length; i++) {
    if (b.start(i) <= video.currentTime + 0.1 && video.currentTime <= b.end(i)) return b.end(i) - video.currentTime;
  }
  return 0;
}

function renderStats() {
  const level = hls && hls.levels ? hls.levels[hls.currentLevel] : null;
  const q = video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality() : null;
  const rows = [
    ["Mode", `${session ? session.mode : "—"} (${mode || "none"})`],
    ["Variant", level ? `${level.height || "?"}p · ${Math.round((level.bitrate || 0) / 1000)} kb/s` : (mode === "direct" ? "original" : "—")],
    ["Resolution", video.videoWidth ? `${video.videoWidth}×${video.videoHeight}` : "—"],
    ["Transcode reasons", session && session.transcode_reasons && session.transcode_reasons.length ? session.transcode_reasons.join(", ") : "none"],
    ["Bandwidth estimate", hls && hls.bandwidthEstimate ? `${Math.round(hls.bandwidthEstimate / 1000)} kb/s` : "—"],
    ["Server bandwidth", sessionView && sessionView.bandwidth_kbps ? `${Math.round(sessionView.bandwidth_kbps)} kb/s` : "—"],
    ["Buffer ahead", `${bufferAhead().toFixed(1)} s`],
    ["Dropped frames", q ? `${q.droppedVideoFrames} of ${q.totalVideoFrames}` : "—"],
    ["Position", clock(video.currentTime)],
  ];
  statsList.replaceChildren(...rows.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
  if (session && statsTick++ % 5 === 0) {
    api("GET", `/api/v1/playback/sessions/${session.session_id}`).then((v) => { sessionView = v; }).catch(() => {});
  }
}

statsButton.addEventListener("click", () => {
  const on = statsBox.hidden;
  statsBox.hidden = !on;
  statsButton.setAttribute("aria-pressed", on ? "true" : "false");
  if (on) { renderStats(); statsTimer = setInterval(renderStats, 1000); }
  else { clearInterval(statsTimer); statsTimer = null; }
});

video.addEventListener("loadedmetadata", buildMenus);
video.textTracks.addEventListener?.("addtrack", buildMenus);

// --- seek bar and its thumbnails --------------------------------------------------------------
// trickplay.vtt: a cue per thumbnail, payload `<sheet url relative to the track>#xywh=x,y,w,h`.
// No track: the bar shows the time only.
const seek = document.getElementById("seek");
const seekPreview = document.getElementById("seek-preview");
const seekThumb = document.getElementById("seek-thumb");
const seekTime = document.getElementById("seek-time");
const seekClock = document.getElementById("seek-clock");
let thumbs = [];          // [{start, end, url, x, y, w, h}] by start
let seeking = false;      // a pointer holds the seek bar
const sheets = new Map(); // url → Image (each sheet fetched once)

function vttTime(text) {
  const m = /^(?:(\d+):)?(\d{1,2}):(\d{2}(?:\.\d{1,3})?)$/.exec(text.trim());
  return m ? +(m[1] || 0) * 3600 + +m[2] * 60 + +m[3] : NaN;
}

export function parseThumbnails(text, base) {
  const out = [];
  const lines = String(text).replace(/\r\n?/g, "\n").split("\n");
  for (let i = 0; i < lines.length; i++) {
    const timing = /^\s*(\S+)\s+-->\s+(\S+)/.exec(lines[i]);
    if (!timing) continue;
    const start = vttTime(timing[1]), end = vttTime(timing[2]);
    const payload = (lines[i + 1] || "").trim();
    const frag = /^(.*)#xywh=(\d+),(\d+),(\d+),(\d+)$/.exec(payload);
    if (!Number.isFinite(start) || !Number.isFinite(end) || !frag) continue;
    let url;
    try { url = new URL(frag[1], base); } catch { continue; }
    if (url.origin !== location.origin) continue; // img-src 'self'
    out.push({ start, end, url: url.pathname + url.search, x: +frag[2], y: +frag[3], w: +frag[4], h: +frag[5] });
    i += 1;
  }
  return out.sort((a, b) => a.start - b.start);
}

function thumbAt(t) {
  let lo = 0, hi = thumbs.length - 1, found = null;
  while (lo <= hi) { // the last cue starting at or before t
    const mid = (lo + hi) >> 1;
    if (thumbs[mid].start <= t) { found = thumbs[mid]; lo = mid + 1; } else hi = mid - 1;
  }
  return found || thumbs[0] || null;
}

async function loadThumbnails() {
  const path = `/api/v1/media/${encodeURIComponent(data.media_id)}/trickplay.vtt`;
  try {
    const res = await fetch(path, { credentials: "same-origin", headers: { Accept: "text/vtt" } });
    if (!res.ok) return;
    thumbs = parseThumbnails(await res.text(), new URL(path, location.href));
  } catch {
    thumbs = [];
  }
}

function seekMax() {
  const d = Number(video.duration);
  if (Number.isFinite(d) && d > 0) return d;
  return Number(session && session.duration_seconds) || Number(seek.max) || 0;
}

function showPreview(t, fraction) {
  const max = seekMax();
  if (!(max > 0)) return;
  t = Math.max(0, Math.min(max, t));
  seekTime.textContent = clock(t);
  const tile = thumbs.length ? thumbAt(t) : null;
  if (tile) {
    if (!sheets.has(tile.url)) { const img = new Image(); img.src = tile.url; sheets.set(tile.url, img); }
    seekThumb.style.width = `${tile.w}px`;
    seekThumb.style.height = `${tile.h}px`;
    seekThumb.style.backgroundImage = `url("${tile.url}")`;
    seekThumb.style.backgroundPosition = `${-tile.x}px ${-tile.y}px`;
    seekThumb.dataset.xywh = `${tile.x},${tile.y},${tile.w},${tile.h}`;
    seekThumb.hidden = false;
  } else {
    seekThumb.hidden = true;
  }
  seekPreview.hidden = false;
  const wrap = seek.parentElement.getBoundingClientRect();
  const bar = seek.getBoundingClientRect();
  const width = seekPreview.offsetWidth;
  const x = bar.left - wrap.left + fraction * bar.width - width / 2;
  seekPreview.style.left = `${Math.max(0, Math.min(wrap.width - width, x))}px`;
}

function hidePreview() {
  if (!seeking) seekPreview.hidden = true;
}

function pointerFraction(ev) {
  const r = seek.getBoundingClientRect();
  return r.width > 0 ? Math.max(0, Math.min(1, (ev.clientX - r.left) / r.width)) : 0;
}

function syncSeek() {
  const max = seekMax();
  if (max > 0 && Number(seek.max) !== Math.ceil(max)) seek.max = String(Math.ceil(max));
  if (!seeking) seek.value = String(Math.floor(video.currentTime || 0));
  const now = clock(video.currentTime || 0);
  const text = max > 0 ? `${now} of ${clock(max)}` : now;
  seekClock.textContent = text;
  seek.setAttribute("aria-valuetext", text);
}

seek.addEventListener("pointermove", (ev) => {
  const f = pointerFraction(ev);
  showPreview(seeking ? Number(seek.value) : f * seekMax(), seeking ? Number(seek.value) / (seekMax() || 1) : f);
});
seek.addEventListener("pointerdown", () => { seeking = true; });
window.addEventListener("pointerup", () => { if (seeking) { seeking = false; hidePreview(); } });
seek.addEventListener("pointerleave", hidePreview);
seek.addEventListener("input", () => {
  const t = Number(seek.value);
  showPreview(t, t / (seekMax() || 1));
});
seek.addEventListener("change", () => {
  const t = Number(seek.value);
  if (Number.isFinite(t)) video.currentTime = Math.max(0, Math.min(seekMax() || t, t));
  if (!seeking) setTimeout(hidePreview, 800);
});
seek.addEventListener("blur", () => { seeking = false; seekPreview.hidden = true; syncSeek(); });
video.addEventListener("timeupdate", syncSeek);
video.addEventListener("durationchange", syncSeek);
video.addEventListener("seeked", syncSeek);

// --- go ------------------------------------------------------------------------------------
if (!window.Hls) {
  notice.textContent = "hls.js is not installed on this server; using the browser's own HLS support.";
  notice.hidden = false;
}
window.revengePlayer = { get session() { return session; }, get mode() { return mode; }, get hls() { return hls; },
                         get thumbnails() { return thumbs.length; } };
start(Number(data.start) || 0);
loadThumbnails();
syncSeek();
