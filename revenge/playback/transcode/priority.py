"""The viewer who waits goes first (issue 18).

While a viewer waits for a video segment this machine is encoding, work that playback does not
need yet gives the CPU to that encoder. Measured on 2 cores with bare ffmpeg (README, "Cold
start"): a 1080p HEVC → H.264 first segment takes 3.1 s alone, 3.9 s beside the session's audio
encode running flat out, 5.1 s beside the audio and the after-scan jobs — and revenge's cold start
took exactly that. Niceness did not close the gap (two cores are shared between runnable
processes long before nice tells them apart), stopping the competitors does. So, for as long as
such a wait lasts:

- background processes (``BackgroundWork``: thumbnails, artwork) are stopped;
- the encoder of an audio rendition of the same session stops once it has made the segment the
  video waits for. A player needs audio only as far as it has video, so nothing it can play is
  held back; the audio goes on the moment the wait ends (its next segment takes a tenth of the
  video's time). A player asking for audio further ahead meanwhile waits for the video's segment,
  as it would have had to anyway. Measured in revenge's cold start: run flat out, the audio
  encode took 1.0–2.3 CPU-seconds of the video's first 3; stopped so, 0.2–0.5.

Not here: other viewers' encoders (viewers are equals, the bulkhead and the capacity admission
share the CPU between them) and remote encoders (their CPU is elsewhere).
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from ..decision import AudioRendition
from .local import Encoder

log = logging.getLogger("revenge.transcode")

if TYPE_CHECKING:
    from ...core.lifecycle.background import BackgroundWork


class ViewerFirst:
    def __init__(self, slots: Callable[[], Iterable[Any]], background: "BackgroundWork | None" = None,
                 counter: Any | None = None) -> None:
        self._slots = slots
        self.background = background
        # revenge_viewer_first_yields_total{work}: children looked up once
        self._count_audio = counter.labels("audio").inc if counter is not None else lambda: None
        self._count_background = counter.labels("background").inc if counter is not None else lambda: None
        self._waits: dict[str, list[int]] = {}            # session id → video segments waited for
        self._yielded: dict[int, tuple[Encoder, Any]] = {}  # id(encoder) → (encoder, its slot)

    @property
    def active(self) -> bool:
        return bool(self._waits)

    @contextmanager
    def waiting(self, slot: Any, n: int) -> Iterator[None]:
        """Around a viewer's wait for video segment ``n`` of ``slot`` (a local encode)."""
        sessions = tuple(slot.refs)
        for sid in sessions:
            self._waits.setdefault(sid, []).append(n)
        if self.background is not None and self.background.hold():
            self._count_background()
        try:
            for other in self._slots():
                enc = other.encoder
                if enc is not None and other is not slot:
                    self._consider(other, enc, enc.next)
            yield
        finally:
            for sid in sessions:
                waits = self._waits.get(sid)
                if waits is not None:
                    waits.remove(n)
                    if not waits:
                        del self._waits[sid]
            if self.background is not None:
                self.background.release()
            for key, (enc, other) in list(self._yielded.items()):
                if not enc.alive or not self._holds_back(other, enc.next):
                    del self._yielded[key]
                    enc.yielded = False
                    enc.resume()

    def published(self, slot: Any, n: int) -> None:
        """An encoder of ``slot`` has just made segment ``n``: an audio one stops here if a video
        of its session waits for a segment before ``n``."""
        enc = slot.encoder
        if self._waits and enc is not None:
            self._consider(slot, enc, n + 1)

    def _holds_back(self, slot: Any, produced: int) -> bool:
        """An audio encoder that has made every segment before ``produced`` must wait: it has made
        the earliest video segment one of its sessions waits for."""
        waited = [n for sid in slot.refs for n in self._waits.get(sid, ())]
        return bool(waited) and produced > min(waited)

    def _consider(self, slot: Any, enc: Any, produced: int) -> None:
        if (isinstance(enc, Encoder) and isinstance(enc.job.variant, AudioRendition) and enc.alive
                and not enc.suspended and self._holds_back(slot, produced)):
            enc.suspend()
            log.debug("audio encoder %s stopped at segment %d while a video segment is waited for", enc.job.name,
                      produced)
            if enc.suspended:
                enc.yielded = True
                self._yielded[id(enc)] = (enc, slot)
                self._count_audio()
