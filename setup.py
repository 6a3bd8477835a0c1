"""Builds the Cython twins in revenge/_native/.

REVENGE_NO_EXTENSIONS=1 skips compilation (pure-Python build). REVENGE_DEBUG_BUILD=1 compiles
without optimisation; REVENGE_CYTHON_TRACE=1 adds line tracing for coverage; REVENGE_ANNOTATE=1
writes the Cython HTML annotation next to each .pyx.
"""
import os
import sys
from pathlib import Path

from setuptools import setup

NO_EXTENSIONS = os.environ.get("REVENGE_NO_EXTENSIONS", "") not in ("", "0")
DEBUG = os.environ.get("REVENGE_DEBUG_BUILD", "") not in ("", "0")
TRACE = os.environ.get("REVENGE_CYTHON_TRACE", "") not in ("", "0")
ANNOTATE = os.environ.get("REVENGE_ANNOTATE", "") not in ("", "0")


def native_extensions():
    from Cython.Build import cythonize
    from setuptools import Extension

    macros = [("CYTHON_TRACE_NOGIL", "1"), ("CYTHON_TRACE", "1")] if TRACE else []
    cflags = ["-O0", "-g"] if DEBUG else ["-O3"]
    exts = [
        Extension(
            f"revenge._native.{pyx.stem}",
            [str(pyx)],
            define_macros=macros,
            extra_compile_args=cflags,
        )
        for pyx in sorted(Path("revenge/_native").glob("_*_c.pyx"))
    ]
    directives = {
        "language_level": 3,
        "boundscheck": False,
        "wraparound": False,
        "cdivision": True,
        "embedsignature": True,
        "initializedcheck": False,
    }
    if TRACE:
        directives["linetrace"] = True
    return cythonize(exts, compiler_directives=directives, annotate=ANNOTATE, nthreads=os.cpu_count() or 1)


if NO_EXTENSIONS or sys.implementation.name != "cpython":
    print("*** revenge: Pure build (no native extensions) ***")
    setup()
else:
    print("*** revenge: Accelerated build (Cython extensions) ***")
    setup(ext_modules=native_extensions())
