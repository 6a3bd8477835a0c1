"""The static asset manifest (web-client.md §1): built once at start, served from memory only.

Own files are everything under ``revenge/web/client/static``; vendor files are an allow-list
inside ``web.vendor_dir`` (what ``npm ci`` installed). All URLs share one content hash,
``/static/<h>/<path>``, so relative ``import``s between modules resolve within one build. A
request never touches the filesystem: an unknown path is 404, a known path under an older hash
is a 307 to the current one.
"""
from __future__ import annotations

import gzip
import mimetypes
from dataclasses import dataclass
from pathlib import Path

import blake3

from ..conditional import bytes_etag  # noqa: F401  (kept for symmetry with the API's ETags)
from ..files import request_headers
from ..responses import send_bytes, send_empty, send_error
from ..types import Receive, Scope, Send

CLIENT_DIR = Path(__file__).resolve().parent.parent / "client"
STATIC_DIR = CLIENT_DIR / "static"
REPO_ROOT = Path(__file__).resolve().parents[3]
PREFIX = "/static/"
# path inside the vendor dir → path under /static/<h>/
VENDOR_FILES = {
    "hls.js/dist/hls.min.js": "vendor/hls.min.js",
}
OPTIONAL_VENDOR: frozenset[str] = frozenset()
TYPES = {
    ".js": b"text/javascript; charset=utf-8",
    ".mjs": b"text/javascript; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
    ".svg": b"image/svg+xml",
    ".png": b"image/png",
    ".ico": b"image/x-icon",
    ".wasm": b"application/wasm",
    ".woff2": b"font/woff2",
    ".json": b"application/json",
    ".map": b"application/json",
    ".txt": b"text/plain; charset=utf-8",
}
IMMUTABLE = b"public, max-age=31536000, immutable"
GZIP_MIN = 1024


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    gz: bytes | None
    content_type: bytes
    etag: bytes


def vendor_root(value: str) -> Path | None:
    if not value:
        return None
    p = Path(value)
    return p if p.is_absolute() else REPO_ROOT / p


class Manifest:
    def __init__(self, vendor_dir: str, static_dir: Path = STATIC_DIR) -> None:
        files: dict[str, bytes] = {}
        for f in sorted(static_dir.rglob("*")):
            if f.is_file() and not f.name.startswith("."):
                files[f.relative_to(static_dir).as_posix()] = f.read_bytes()
        self.missing: list[str] = []
        root = vendor_root(vendor_dir)
        for src, dest in VENDOR_FILES.items():
            try:
                if root is None:
                    raise FileNotFoundError(src)
                files[dest] = (root / src).read_bytes()
            except OSError:
                if src not in OPTIONAL_VENDOR:
                    self.missing.append(src)
        h = blake3.blake3()
        for path in sorted(files):
            data = files[path]
            h.update(len(path).to_bytes(4, "big") + path.encode() + len(data).to_bytes(8, "big"))
            h.update(data)
        self.hash = h.hexdigest()[:12]
        self.assets: dict[str, Asset] = {}
        for path, data in files.items():
            ext = Path(path).suffix.lower()
            ctype = TYPES.get(ext) or (mimetypes.guess_type(path)[0] or "application/octet-stream").encode()
            gz = gzip.compress(data, 6, mtime=0) if len(data) >= GZIP_MIN else None
            if gz is not None and len(gz) >= len(data):
                gz = None
            etag = b'"' + blake3.blake3(data).hexdigest()[:24].encode() + b'"'
            self.assets[path] = Asset(data, gz, ctype, etag)

    def has(self, path: str) -> bool:
        return path in self.assets

    def url(self, path: str) -> str:
        if path not in self.assets:
            raise KeyError(f"no static asset {path!r}")
        return f"{PREFIX}{self.hash}/{path}"

    def own_js_bytes(self, paths: list[str]) -> int:
        return sum(len(self.assets[p].body) for p in paths if p in self.assets)

    async def serve(self, scope: Scope, receive: Receive, send: Send, **_: str) -> None:
        raw = scope.get("raw_path") or scope["path"].encode()
        path = raw.split(b"?", 1)[0].decode("latin-1")
        method = scope["method"]
        if method not in ("GET", "HEAD"):
            await send_error(send, 405, "method_not_allowed", "This method is not allowed here.",
                             [(b"allow", b"GET, HEAD")])
            return
        rest = path[len(PREFIX):] if path.startswith(PREFIX) else ""
        h, _, name = rest.partition("/")
        asset = self.assets.get(name)
        if asset is None or len(h) != 12:
            await send_error(send, 404, "not_found", "No such resource.")
            return
        if h != self.hash:
            await send_empty(send, 307, [(b"location", f"{PREFIX}{self.hash}/{name}".encode()),
                                         (b"cache-control", b"no-store"), (b"content-length", b"0")])
            return
        headers = request_headers(scope)
        common = [(b"cache-control", IMMUTABLE), (b"etag", asset.etag), (b"vary", b"Accept-Encoding")]
        inm = headers.get("if-none-match")
        if inm is not None and (inm.strip() == "*" or asset.etag.decode() in [t.strip() for t in inm.split(",")]):
            await send_empty(send, 304, common)
            return
        body = asset.body
        if asset.gz is not None and _accepts_gzip(headers.get("accept-encoding", "")):
            body = asset.gz
            common.append((b"content-encoding", b"gzip"))
        await send_bytes(send, 200, body, asset.content_type, common, head=method == "HEAD")


def _accepts_gzip(value: str) -> bool:
    for part in value.lower().split(","):
        name, _, params = part.strip().partition(";")
        if name.strip() in ("gzip", "*"):
            q = params.strip()
            return not (q.startswith("q=") and q[2:].strip() in ("0", "0.0", "0.00", "0.000"))
    return False
