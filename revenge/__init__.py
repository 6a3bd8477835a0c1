"""revenge: the playback core of a self-hosted media server.

Import-light on purpose: importing the package must not start event loops, load PyAV or build
anything, so the CLI and the granian workers start fast.
"""
__version__ = "0.1.0"
__all__ = ["__version__"]
