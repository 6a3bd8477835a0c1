"""Subtitles (subtitles.md): tracks and sidecars, ahead-of-time conversion to WebVTT, HLS
subtitle renditions on the video's segment timeline, and bitmap burn-in."""
