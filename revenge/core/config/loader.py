"""Configuration layers, later wins: typed defaults → ``configs/config.yaml`` → ``--config FILE``
→ ``REVENGE_<SECTION>__<KEY>`` environment variables → command-line flags.

Every layer is plain nested data until the end, where ``schema.build`` validates the merge as a
whole; a problem in any layer is reported with the key (or variable) that caused it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import yaml

from ..errors import ConfigError
from .schema import Config, build

ENV_PREFIX = "REVENGE_"
PACKAGED_DEFAULTS = Path(__file__).resolve().parents[3] / "configs" / "config.yaml"


def read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([{"key": str(p.name), "message": f"cannot read config file: {exc.strerror}"}]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError([{"key": str(p.name), "message": f"not valid YAML{where}"}]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([{"key": str(p.name), "message": "the top level must be a mapping of sections"}])
    return data


def env_layer(environ: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Nested data from ``REVENGE_A__B__C`` variables, and which variable set each dotted key."""
    out: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for name, value in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or "__" not in name[len(ENV_PREFIX):]:
            continue  # REVENGE_NO_EXTENSIONS and friends are not config keys
        parts = [p.lower() for p in name[len(ENV_PREFIX):].split("__")]
        if any(not p for p in parts):
            continue
        node = out
        for p in parts[:-1]:
            nxt = node.setdefault(p, {})
            if not isinstance(nxt, dict):
                break
            node = nxt
        else:
            node[parts[-1]] = value
            origin[".".join(parts)] = name
    return out, origin


def merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def load_layers(
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    packaged: Path | None = PACKAGED_DEFAULTS,
) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if packaged is not None and packaged.is_file():
        data = merge(data, read_yaml(packaged))
    if config_file is not None:
        data = merge(data, read_yaml(config_file))
    env, _ = env_layer(os.environ if environ is None else environ)
    data = merge(data, env)
    if overrides:
        data = merge(data, overrides)
    return data


def load_config(
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    packaged: Path | None = PACKAGED_DEFAULTS,
) -> Config:
    """The validated configuration, or ``ConfigError`` listing every problem by key."""
    data = load_layers(config_file, environ, overrides, packaged)
    cfg, problems = build(data)
    if cfg is None:
        _, origin = env_layer(os.environ if environ is None else environ)
        for p in problems:
            if p["key"] in origin:
                p["message"] += f" (from environment variable {origin[p['key']]})"
        raise ConfigError(problems)
    return cfg
