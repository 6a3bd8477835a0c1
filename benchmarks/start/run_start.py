"""Time to the first segment: a cold transcode start, a start in the middle (a resume) and a seek
8 segments ahead, revenge vs bare ffmpeg producing the same segment with the same settings, in one
run (issue 18). A 1080p HEVC film, a client that needs H.264 (the default profile); medians of
``--rounds`` rounds, each on a fresh server and data dir (so every segment is a cache miss).

"Bare ffmpeg" runs revenge's own encoder command (``transcode.local.build_command``: same scaling,
rate control, keyframes, HLS muxer) and stops the clock when the segment file is complete, so the
ratio is what revenge adds: process start-up, session creation, prewarm and audio encoders
competing for the CPU, polling, the HTTP round trip.

Usage: python benchmarks/start/run_start.py [--rounds 3] [--duration 90]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from revenge.library.probe import probe_file  # noqa: E402
from revenge.playback.clients import DEFAULT  # noqa: E402
from revenge.playback.decision import decide  # noqa: E402
from revenge.playback.transcode.local import Job, build_command  # noqa: E402
from procs import free_port, stop  # noqa: E402
from revenge.runtime import find_ffmpeg  # noqa: E402

D = 6
CASES = (("cold start at 0 s", 0.0, 0), ("cold start at 45 s", 45.0, 0), ("seek 8 segments ahead", 0.0, 8))



def film(ffmpeg: str, duration: int) -> Path:
    """A 1080p HEVC + AC-3 film, made once and kept under .benchmarks/."""
    out = ROOT / ".benchmarks" / "start-media" / f"film-{duration}s.mkv"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".part.mkv")
    print(f"making a {duration} s 1080p HEVC film (once) …", file=sys.stderr)
    subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", f"testsrc2=size=1920x1080:rate=24:duration={duration}",
                    "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={duration}",
                    "-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error:keyint=48",
                    "-b:v", "6M", "-pix_fmt", "yuv420p", "-c:a", "ac3", "-b:a", "384k", str(tmp)], check=True)
    tmp.rename(out)
    return out


def bare(ffmpeg: str, src: Path, n: int, tmp: Path) -> float:
    """Seconds until revenge's own command, run alone, has written segment ``n``."""
    media = probe_file(src)
    plan = decide(media, DEFAULT, None, D)
    v = plan.variants[0]
    job = Job("bench", str(src), v, D, plan.segment_count, "encode", "veryfast", v.tone_map)
    wd = tmp / f"bare-{n}-{time.monotonic_ns()}"
    wd.mkdir()
    cmd = build_command(ffmpeg, job, n, wd)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    target = wd / f"seg-{n:05d}.m4s"
    try:
        while not target.exists():
            if proc.poll() is not None and not target.exists():
                raise RuntimeError(f"ffmpeg exited with {proc.returncode}")
            time.sleep(0.005)
        return time.perf_counter() - t0
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(wd, ignore_errors=True)


class Server:
    def __init__(self, lib: Path, tmp: Path) -> None:
        self.port = free_port()
        self.var = tmp / f"var-{time.monotonic_ns()}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "revenge", "serve", "--port", str(self.port), "--data-dir", str(self.var),
             "--library", str(lib)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "REVENGE_LOGGING__LEVEL": "warning", "REVENGE_RATE_LIMIT__ENABLED": "false",
                 "REVENGE_PLAYBACK__SEGMENT_SECONDS": str(D)}, start_new_session=True)
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                key = (self.var / "api_key").read_text().strip()
                r = httpx.get(f"{self.base}/api/v1/library/scan", headers={"X-Api-Key": key}, timeout=1)
                if r.status_code == 200 and r.json()["state"] != "running":
                    items = httpx.get(f"{self.base}/api/v1/media", headers={"X-Api-Key": key}).json()["items"]
                    if items:
                        self.key, self.media_id = key, items[0]["id"]
                        return
            except (OSError, httpx.HTTPError, ValueError, KeyError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("revenge did not start")
            time.sleep(0.2)

    def first_segment(self, start: float, ahead: int) -> float:
        """Seconds from the session request to segment bytes (``ahead`` > 0: after playing the
        first segment, a seek that many segments further)."""
        with httpx.Client(base_url=self.base, timeout=120, headers={"X-Api-Key": self.key}) as c:
            t0 = time.perf_counter()
            body = c.post("/api/v1/playback/sessions", json={"media_id": self.media_id,
                                                              "start_position_seconds": start},
                          headers={"User-Agent": "bench/1.0"}).json()
            base = body["master_playlist_url"].rsplit("/", 1)[0]
            n = int(start // D)
            self._get(c, f"{base}/original/seg-{n:05d}.m4s")
            if not ahead:
                return time.perf_counter() - t0
            t1 = time.perf_counter()
            self._get(c, f"{base}/original/seg-{n + ahead:05d}.m4s")
            return time.perf_counter() - t1

    @staticmethod
    def _get(c: httpx.Client, url: str) -> None:
        while True:
            r = c.get(url)
            if r.status_code == 200:
                return
            if r.status_code != 503:
                raise RuntimeError(f"{url}: {r.status_code} {r.text}")
            time.sleep(0.05)  # measure readiness, not the Retry-After a player would honour

    def stop(self) -> None:
        stop(self.proc)


HLSJS = ROOT / "tests" / "e2e" / "browser"
HEADLESS_UA = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0 "
               "Safari/537.36")


def hlsjs_to_playing(lib: Path, tmp: Path, rounds: int) -> list[float] | None:
    """Seconds from hls.js's ``loadSource`` to the ``playing`` event in headless Chromium on a cold
    1080p HEVC → H.264 session (fresh server each round, its after-scan jobs done first so only
    the start is timed); None where Chromium, node or the npm modules are missing."""
    if shutil.which("chromium") is None or shutil.which("node") is None or not (
            HLSJS / "node_modules" / "hls.js").exists() or not (HLSJS / "node_modules" / "playwright-core").exists():
        print("hls.js row skipped: chromium, node or tests/e2e/browser/node_modules missing", file=sys.stderr)
        return None
    times: list[float] = []
    for _ in range(rounds):
        server = Server(lib, tmp)
        try:
            with httpx.Client(base_url=server.base, timeout=30, headers={"X-Api-Key": server.key}) as c:
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    counts = c.get("/api/v1/admin/jobs").json()["counts"]
                    if not counts.get("queued") and not counts.get("running"):
                        break
                    time.sleep(0.2)
                body = c.post("/api/v1/playback/sessions", json={"media_id": server.media_id},
                              headers={"User-Agent": HEADLESS_UA}).json()
            res = subprocess.run(["node", str(HLSJS / "play.mjs"), server.base + body["master_playlist_url"], "3",
                                  "90"], capture_output=True, text=True, timeout=180)
            verdict = json.loads(res.stdout.strip().splitlines()[-1]) if res.stdout.strip() else {}
            if body.get("mode") != "transcode" or not verdict.get("ok") or verdict.get("msToPlaying") is None:
                raise RuntimeError(f"hls.js did not play the transcode: {body.get('mode')} {verdict or res.stderr}")
            times.append(verdict["msToPlaying"] / 1000)
        finally:
            server.stop()
    return times


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=90)
    args = ap.parse_args()
    ffmpeg = find_ffmpeg()
    if ffmpeg is None:
        print("ffmpeg is needed", file=sys.stderr)
        return 2
    src = film(ffmpeg, args.duration)
    tmp = Path(tempfile.mkdtemp(prefix="revenge-start-"))
    lib = tmp / "lib"
    lib.mkdir()
    os.link(src, lib / src.name) if src.stat().st_dev == lib.stat().st_dev else shutil.copy2(src, lib / src.name)
    ours: dict[str, list[float]] = {c[0]: [] for c in CASES}
    theirs: dict[str, list[float]] = {c[0]: [] for c in CASES}
    try:
        for _ in range(args.rounds):
            for name, start, ahead in CASES:  # paired: bare ffmpeg and revenge in the same round
                n = int(start // D) + ahead
                theirs[name].append(bare(ffmpeg, src, n, tmp))
                server = Server(lib, tmp)
                try:
                    if ahead:
                        ours[name].append(server.first_segment(start, ahead))
                    else:
                        ours[name].append(server.first_segment(start, 0))
                finally:
                    server.stop()
        played = hlsjs_to_playing(lib, tmp, args.rounds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\ntime to the segment — 1080p HEVC → H.264 veryfast 1080p, d = {D} s, {os.cpu_count()} cores, "
          f"median of {args.rounds}")
    print(f"| {'case':<24} | {'revenge':>8} | {'bare ffmpeg':>11} | {'revenge / ffmpeg':>16} |")
    print(f"|{'-' * 26}|{'-' * 10}|{'-' * 13}|{'-' * 18}|")
    for name, _, _ in CASES:
        a, b = statistics.median(ours[name]), statistics.median(theirs[name])
        print(f"| {name:<24} | {a:>7.2f}s | {b:>10.2f}s | {a / b:>15.2f}× |")
    if played:
        p, b = statistics.median(played), statistics.median(theirs[CASES[0][0]])
        print(f"| {'hls.js load → playing':<24} | {p:>7.2f}s | {b:>10.2f}s | {p / b:>15.2f}× |"
              "  (bare ffmpeg: its first segment)")
        (ROOT / ".benchmarks" / "start-hlsjs.json").write_text(json.dumps({"to_playing_s": played}))
    out = ROOT / ".benchmarks" / "start.json"
    out.write_text(json.dumps({"cpu_count": os.cpu_count(), "rounds": args.rounds, "duration": args.duration,
                               "segment_seconds": D, "revenge_s": ours, "bare_ffmpeg_s": theirs}, indent=1))
    print(f"\nsaved .benchmarks/{out.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
