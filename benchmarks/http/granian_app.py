"""The granian ceiling: a minimal ASGI app on granian (same settings as revenge: ASGI, uvloop, HTTP/1,
one worker) that sends the same ``bytes`` — a pread of the Range for the big file, the whole
segment from memory. Whatever revenge is slower than this is lost in revenge's own request path."""
import os

BIG = os.environ["BENCH_FILE"]
SEG = open(os.environ["BENCH_SEG"], "rb").read()
_FD = os.open(BIG, os.O_RDONLY)
_SIZE = os.fstat(_FD).st_size


async def app(scope, receive, send):
    if scope["type"] != "http":
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["path"] == "/seg.m4s":
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"video/mp4"), (b"content-length", str(len(SEG)).encode())]})
        await send({"type": "http.response.body", "body": SEG})
        return
    rng = next(v for k, v in scope["headers"] if k == b"range").decode()
    first, last = (int(x) for x in rng[6:].split("-"))
    body = os.pread(_FD, last - first + 1, first)
    await send({"type": "http.response.start", "status": 206, "headers": [
        (b"content-type", b"video/mp4"), (b"content-length", str(len(body)).encode()),
        (b"content-range", f"bytes {first}-{last}/{_SIZE}".encode())]})
    await send({"type": "http.response.body", "body": body})
