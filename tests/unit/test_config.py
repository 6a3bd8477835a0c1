"""Configuration: layers, env overlay, and one test per class of error."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from revenge.core.config import Config, load_config
from revenge.core.config.loader import PACKAGED_DEFAULTS
from revenge.core.config.schema import iter_keys
from revenge.core.errors import ConfigError

API_KEYS = [
    "server.host", "server.port", "server.data_dir", "library.paths", "auth.api_keys", "auth.stream_secret",
    "transcoder.mode", "transcoder.remote_url", "transcoder.api_key", "cache.memory.max_bytes",
    "cache.disk.max_bytes", "rate_limit.api.rate", "rate_limit.api.burst", "playback.segment_seconds", "metrics.token",
]


def problems_of(exc: pytest.ExceptionInfo[ConfigError]) -> dict[str, str]:
    return {p["key"]: p["message"] for p in exc.value.problems}


def test_defaults_match_api_md():
    cfg = load_config(environ={})
    assert (cfg.server.host, cfg.server.port, cfg.server.data_dir) == ("127.0.0.1", 8096, "./var")
    assert cfg.library.paths == [] and cfg.auth.api_keys == [] and cfg.auth.stream_secret is None
    assert cfg.transcoder.mode == "local" and cfg.transcoder.remote_url is None
    assert cfg.cache.memory.max_bytes == 0 and cfg.cache.disk.max_bytes == 0
    assert (cfg.rate_limit.api.rate, cfg.rate_limit.api.burst) == (50, 100)
    assert cfg.playback.segment_seconds == 6 and cfg.metrics.token is None
    keys = {k for k, _ in iter_keys()}
    assert set(API_KEYS) <= keys


def test_documented_yaml_lists_every_key_with_its_default():
    text = PACKAGED_DEFAULTS.read_text()
    data = yaml.safe_load(text)
    from revenge.core.config.schema import build

    cfg, problems = build(data)
    assert problems == [] and cfg == Config()
    flat = set()

    def walk(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            else:
                flat.add(prefix + k)

    walk(data)
    assert flat == {k for k, _ in iter_keys()}
    # every key has a comment line right above it
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip() and not line.lstrip().startswith("#") and i > 0:
            assert lines[i - 1].lstrip().startswith("#"), line


def test_layers_file_then_env(tmp_path: Path):
    f = tmp_path / "c.yaml"
    f.write_text("server:\n  port: 9000\ncache:\n  memory:\n    max_bytes: 64 MiB\n")
    env = {"REVENGE_SERVER__PORT": "9100", "REVENGE_LIBRARY__PATHS": "/a, /b", "REVENGE_NO_EXTENSIONS": "1",
           "REVENGE_CACHE__DISK__MAX_AGE": "2h"}
    cfg = load_config(f, environ=env)
    assert cfg.server.port == 9100
    assert cfg.cache.memory.max_bytes == 64 * 1024**2
    assert cfg.library.paths == ["/a", "/b"]
    assert cfg.cache.disk.max_age == 7200.0


def test_overrides_win(tmp_path: Path):
    cfg = load_config(environ={"REVENGE_SERVER__PORT": "9100"}, overrides={"server": {"port": 9200}})
    assert cfg.server.port == 9200


def test_unknown_key_is_named(tmp_path: Path):
    f = tmp_path / "c.yaml"
    f.write_text("server:\n  prot: 9000\nbogus: {}\n")
    with pytest.raises(ConfigError) as exc:
        load_config(f, environ={})
    assert problems_of(exc) == {"server.prot": "unknown key", "bogus": "unknown key"}


def test_unknown_env_key_names_the_variable():
    with pytest.raises(ConfigError) as exc:
        load_config(environ={"REVENGE_SERVER__PROT": "1"})
    assert "REVENGE_SERVER__PROT" in problems_of(exc)["server.prot"]


def test_wrong_type_is_named(tmp_path: Path):
    f = tmp_path / "c.yaml"
    f.write_text("server:\n  port: eighty\nlibrary:\n  paths: 7\nrate_limit:\n  enabled: maybe\n")
    with pytest.raises(ConfigError) as exc:
        load_config(f, environ={})
    p = problems_of(exc)
    assert p["server.port"] == "expected an integer, got 'eighty'"
    assert p["library.paths"].startswith("expected a list of strings")
    assert p["rate_limit.enabled"].startswith("expected true or false")


def test_out_of_range_value_is_named(tmp_path: Path):
    f = tmp_path / "c.yaml"
    f.write_text("server:\n  port: 70000\nrate_limit:\n  api:\n    rate: 0\ntranscoder:\n  mode: cloud\n")
    with pytest.raises(ConfigError) as exc:
        load_config(f, environ={})
    p = problems_of(exc)
    assert p["server.port"] == "must be at most 65535, got 70000"
    assert p["rate_limit.api.rate"] == "must be greater than 0, got 0.0"
    assert p["transcoder.mode"] == "must be one of local, remote, got 'cloud'"


def test_cross_key_rules():
    with pytest.raises(ConfigError) as exc:
        load_config(environ={"REVENGE_TRANSCODER__MODE": "remote"})
    assert "transcoder.remote_url" in problems_of(exc)


def test_bad_yaml_and_missing_file(tmp_path: Path):
    f = tmp_path / "c.yaml"
    f.write_text("server: [unclosed\n")
    with pytest.raises(ConfigError) as exc:
        load_config(f, environ={})
    assert "not valid YAML at line" in str(exc.value)
    with pytest.raises(ConfigError):
        load_config(tmp_path / "missing.yaml", environ={})


def test_cli_config_check_prints_each_problem(tmp_path: Path):
    f = tmp_path / "c.yaml"
    f.write_text("server:\n  port: -1\n  colour: blue\n")
    res = subprocess.run([sys.executable, "-m", "revenge", "config", "check", str(f)], capture_output=True, text=True)
    assert res.returncode == 2
    assert "server.port: must be at least 0, got -1" in res.stderr
    assert "server.colour: unknown key" in res.stderr
    good = tmp_path / "good.yaml"
    good.write_text("server:\n  port: 9000\n")
    res = subprocess.run([sys.executable, "-m", "revenge", "config", "check", str(good)], capture_output=True, text=True)
    assert res.returncode == 0 and "valid" in res.stdout


def test_serve_refuses_bad_config_before_binding(tmp_path: Path):
    f = tmp_path / "c.yaml"
    f.write_text("playback:\n  segment_seconds: 0\n")
    res = subprocess.run(
        [sys.executable, "-m", "revenge", "serve", "--config", str(f), "--data-dir", str(tmp_path / "var")],
        capture_output=True, text=True, timeout=60,
    )
    assert res.returncode == 2
    assert "playback.segment_seconds: must be at least 1" in res.stderr
