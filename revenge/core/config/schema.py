"""The configuration schema: every key, its type, default, bounds, and whether it hot-reloads.

Each section is a frozen dataclass; ``opt()`` attaches the validation rules as field metadata so
the rules sit next to the default they constrain. ``build()`` turns a nested dict into a
``Config`` or a list of problems naming each key, never a half-built object.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any

from .units import parse_duration, parse_size


def opt(
    default: Any,
    *,
    min: float | None = None,
    max: float | None = None,
    choices: tuple[str, ...] | None = None,
    kind: str | None = None,
    reload: bool = False,
    min_exclusive: bool = False,
) -> Any:
    meta = {"min": min, "max": max, "choices": choices, "kind": kind, "reload": reload, "min_exclusive": min_exclusive}
    if isinstance(default, list):
        return field(default_factory=lambda d=default: list(d), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class ServerConfig:
    host: str = opt("127.0.0.1")
    port: int = opt(8096, min=0, max=65535)
    data_dir: str = opt("./var")
    max_body_bytes: int = opt(65536, min=1024, max=16 * 1024 * 1024, kind="size", reload=True)
    trusted_proxies: list[str] = opt([], reload=True)
    cors_origins: list[str] = opt([], reload=True)
    public_url: str | None = opt(None)
    header_read_timeout: float = opt(10.0, min=0.1, max=300, kind="duration")


@dataclass(frozen=True)
class LibraryConfig:
    paths: list[str] = opt([])
    database: str | None = opt(None)
    extensions: list[str] = opt(
        ["mkv", "mp4", "m4v", "mov", "avi", "webm", "ts", "m2ts", "mp3", "flac", "m4a", "aac", "ogg", "opus", "wav"]
    )
    scan_interval: float = opt(0.0, min=0, kind="duration", reload=True)
    probe_concurrency: int = opt(0, min=0, max=64)
    probe_timeout: float = opt(30.0, min=0.1, kind="duration")


@dataclass(frozen=True)
class Argon2Config:
    time_cost: int = opt(3, min=1, max=100, reload=True)
    memory_cost: int = opt(64 * 1024 * 1024, min=8 * 1024, max=4 * 1024**3, kind="size", reload=True)
    parallelism: int = opt(4, min=1, max=64, reload=True)
    max_concurrent: int = opt(2, min=1, max=64, reload=True)


@dataclass(frozen=True)
class AuthConfig:
    api_keys: list[str] = opt([], reload=True)
    stream_secret: str | None = opt(None)
    session_idle: float = opt(14 * 86400.0, min=1, kind="duration", reload=True)
    session_max_age: float = opt(90 * 86400.0, min=1, kind="duration", reload=True)
    secure_cookies: bool = opt(False, reload=True)
    password_min_length: int = opt(8, min=8, max=1024, reload=True)
    argon2: Argon2Config = field(default_factory=Argon2Config)
    login_backoff_after: int = opt(5, min=1, reload=True)
    login_backoff_max: float = opt(300.0, min=1, kind="duration", reload=True)
    cache_ttl: float = opt(5.0, min=0, kind="duration", reload=True)
    usage_flush: float = opt(60.0, min=0.1, kind="duration", reload=True)
    max_keys_per_user: int = opt(50, min=1, reload=True)


@dataclass(frozen=True)
class TranscoderConfig:
    mode: str = opt("local", choices=("local", "remote"))
    remote_url: str | None = opt(None)
    api_key: str | None = opt(None)
    ffmpeg_path: str = opt("ffmpeg")
    ffprobe_path: str = opt("ffprobe")
    # upper bound of the encoders bulkhead; 0 = auto (admission by measured encoder capacity)
    max_encoders: int = opt(0, min=0, max=256, reload=True)
    preset: str = opt("veryfast", reload=True)
    lookahead_segments: int = opt(3, min=0, max=100, reload=True)
    max_ahead_segments: int = opt(20, min=1, max=1000, reload=True)
    encoder_idle_seconds: float = opt(30.0, min=1, kind="duration", reload=True)
    kill_grace: float = opt(2.0, min=0, kind="duration")
    remote_source_url: str | None = opt(None)
    remote_connect_timeout: float = opt(2.0, min=0.05, kind="duration", reload=True)
    remote_request_timeout: float = opt(10.0, min=0.1, kind="duration", reload=True)
    remote_poll_interval: float = opt(0.2, min=0.01, kind="duration", reload=True)
    internal_token_ttl: float = opt(1800.0, min=10, kind="duration", reload=True)


@dataclass(frozen=True)
class MemoryCacheConfig:
    max_bytes: int = opt(0, min=0, kind="size", reload=True)
    auto_fraction: float = opt(0.10, min=0.01, max=0.9, reload=True)
    max_entry_bytes: int = opt(0, min=0, kind="size", reload=True)
    min_retention_seconds: float = opt(10.0, min=0, kind="duration", reload=True)
    high_pressure: float = opt(0.85, min=0.0, max=1.0, reload=True)
    critical_pressure: float = opt(0.95, min=0.0, max=1.0, reload=True)
    pressure_interval: float = opt(2.0, min=0.05, kind="duration", reload=True)


@dataclass(frozen=True)
class DiskCacheConfig:
    path: str | None = opt(None)
    max_bytes: int = opt(0, min=0, kind="size", reload=True)
    max_age: float = opt(7 * 86400.0, min=0, kind="duration", reload=True)
    min_free_bytes: int = opt(2 * 1024**3, min=0, kind="size", reload=True)
    maintenance_interval: float = opt(60.0, min=0.1, kind="duration", reload=True)


@dataclass(frozen=True)
class CacheConfig:
    memory: MemoryCacheConfig = field(default_factory=MemoryCacheConfig)
    disk: DiskCacheConfig = field(default_factory=DiskCacheConfig)


@dataclass(frozen=True)
class BucketConfig:
    rate: float = opt(50.0, min=0, min_exclusive=True, reload=True)
    burst: float = opt(100.0, min=1, reload=True)


@dataclass(frozen=True)
class RateLimitConfig:
    enabled: bool = opt(True, reload=True)
    max_keys: int = opt(10_000, min=1, reload=True)
    sweep_interval: float = opt(60.0, min=0.1, kind="duration", reload=True)
    ipv6_prefix: int = opt(64, min=1, max=128, reload=True)
    api: BucketConfig = field(default_factory=BucketConfig)
    session_start: BucketConfig = field(default_factory=lambda: BucketConfig(rate=5.0, burst=10.0))
    auth_failure: BucketConfig = field(default_factory=lambda: BucketConfig(rate=1.0, burst=10.0))
    images: BucketConfig = field(default_factory=lambda: BucketConfig(rate=200.0, burst=400.0))


@dataclass(frozen=True)
class PlaybackConfig:
    segment_seconds: float = opt(6.0, min=1, max=30)
    segment_max_age: int = opt(3600, min=0)
    max_sessions: int = opt(50, min=1, reload=True)
    # per user (users.md rule 23); None → 10. ``max_sessions_per_key`` is the old name, read as an alias
    max_sessions_per_user: int | None = opt(None, min=1, reload=True)
    max_sessions_per_key: int | None = opt(None, min=1, reload=True)
    heartbeat_seconds: float = opt(30.0, min=1, kind="duration", reload=True)
    session_ttl_factor: float = opt(3.0, min=1, reload=True)
    stream_token_ttl: float = opt(86400.0, min=60, kind="duration", reload=True)
    segment_wait_timeout: float = opt(15.0, min=0.1, kind="duration", reload=True)
    prefetch_segments: int = opt(2, min=0, max=20, reload=True)

    @property
    def sessions_per_user(self) -> int:
        """The effective per-user session limit: the new key, else its old alias, else 10."""
        if self.max_sessions_per_user is not None:
            return self.max_sessions_per_user
        return self.max_sessions_per_key if self.max_sessions_per_key is not None else 10


@dataclass(frozen=True)
class BreakerConfig:
    failure_threshold: int = opt(5, min=0, reload=True)
    failure_ratio: float = opt(0.5, min=0, max=1, reload=True)
    min_calls: int = opt(20, min=1, reload=True)
    window_seconds: float = opt(60.0, min=1, kind="duration", reload=True)
    window_buckets: int = opt(10, min=1, max=600, reload=True)
    open_timeout: float = opt(30.0, min=0.01, kind="duration", reload=True)
    half_open_max_calls: int = opt(3, min=1, reload=True)
    half_open_timeout: float = opt(30.0, min=0.01, kind="duration", reload=True)


@dataclass(frozen=True)
class RetryConfig:
    max_attempts: int = opt(3, min=1, max=20, reload=True)
    initial_delay: float = opt(0.1, min=0, kind="duration", reload=True)
    multiplier: float = opt(2.0, min=1, reload=True)
    max_delay: float = opt(10.0, min=0, kind="duration", reload=True)
    jitter: float = opt(1.0, min=0, max=1, reload=True)


@dataclass(frozen=True)
class BulkheadConfig:
    max_concurrent: int = opt(10, min=1, reload=True)
    max_queue: int = opt(100, min=0, reload=True)
    max_wait: float = opt(5.0, min=0.001, kind="duration", reload=True)


@dataclass(frozen=True)
class BreakersConfig:
    transcoder_remote: BreakerConfig = field(default_factory=BreakerConfig)
    # metadata.md: one breaker per metadata provider, the defaults
    metadata_tmdb: BreakerConfig = field(default_factory=BreakerConfig)
    metadata_tvdb: BreakerConfig = field(default_factory=BreakerConfig)


@dataclass(frozen=True)
class RetriesConfig:
    transcoder_remote: RetryConfig = field(default_factory=RetryConfig)
    # metadata.md: 4 attempts, 0.5 s × 2, at most 30 s, full jitter
    metadata_tmdb: RetryConfig = field(default_factory=lambda: RetryConfig(4, 0.5, 2.0, 30.0, 1.0))
    metadata_tvdb: RetryConfig = field(default_factory=lambda: RetryConfig(4, 0.5, 2.0, 30.0, 1.0))


@dataclass(frozen=True)
class BulkheadsConfig:
    transcoder_remote: BulkheadConfig = field(default_factory=lambda: BulkheadConfig(64, 128, 2.0))
    # max_concurrent of the encoders bulkhead always equals transcoder.max_encoders
    encoders: BulkheadConfig = field(default_factory=lambda: BulkheadConfig(1, 16, 15.0))
    # metadata.md: 4 calls at once per provider, 100 waiting, 30 s
    metadata_tmdb: BulkheadConfig = field(default_factory=lambda: BulkheadConfig(4, 100, 30.0))
    metadata_tvdb: BulkheadConfig = field(default_factory=lambda: BulkheadConfig(4, 100, 30.0))


@dataclass(frozen=True)
class ResilienceConfig:
    breaker: BreakersConfig = field(default_factory=BreakersConfig)
    retry: RetriesConfig = field(default_factory=RetriesConfig)
    bulkhead: BulkheadsConfig = field(default_factory=BulkheadsConfig)


@dataclass(frozen=True)
class MetricsConfig:
    token: str | None = opt(None, reload=True)
    max_series: int = opt(2000, min=1, reload=True)


@dataclass(frozen=True)
class HealthConfig:
    cache_ttl: float = opt(2.0, min=0, kind="duration", reload=True)
    default_timeout: float = opt(2.0, min=0.01, kind="duration", reload=True)
    min_free_bytes: int = opt(1024**3, min=0, kind="size", reload=True)


@dataclass(frozen=True)
class LoggingConfig:
    level: str = opt("info", choices=("debug", "info", "warning", "error"), reload=True)
    format: str = opt("console", choices=("console", "json"), reload=True)
    access_log: bool = opt(True, reload=True)


@dataclass(frozen=True)
class SupervisorConfig:
    strategy: str = opt("one_for_one", choices=("one_for_one", "one_for_all", "rest_for_one"))
    max_restarts: int = opt(5, min=0)
    max_seconds: float = opt(60.0, min=0.1, kind="duration")
    restart_delay: float = opt(0.1, min=0.001, kind="duration")
    max_restart_delay: float = opt(30.0, min=0.001, kind="duration")
    reset_after: float = opt(60.0, min=0, kind="duration")
    shutdown_timeout: float = opt(5.0, min=0.01, kind="duration")
    on_give_up: str = opt("degrade", choices=("degrade", "exit"))


@dataclass(frozen=True)
class ShutdownConfig:
    pre_drain_delay: float = opt(0.0, min=0, kind="duration")
    drain_timeout: float = opt(15.0, min=0, kind="duration")
    hook_timeout: float = opt(5.0, min=0.01, kind="duration")
    timeout: float = opt(30.0, min=0.1, kind="duration")


@dataclass(frozen=True)
class LazyConfig:
    retry_backoff: float = opt(1.0, min=0, kind="duration")


@dataclass(frozen=True)
class DatabaseConfig:
    """Where the store lives (jobs-and-storage.md §1): empty ``url`` = SQLite in the data dir."""

    url: str = opt("")
    pool_min: int = opt(2, min=0, max=1000)
    pool_max: int = opt(10, min=1, max=1000)
    acquire_timeout: float = opt(5.0, min=0.01, kind="duration", reload=True)
    statement_timeout: float = opt(10.0, min=0.01, kind="duration", reload=True)
    connect_timeout: float = opt(5.0, min=0.01, kind="duration")
    startup_timeout: float = opt(30.0, min=0, kind="duration")
    statement_cache_size: int = opt(100, min=0, max=100000)
    sqlite_readers: int = opt(2, min=1, max=64)
    write_buffer_max: int = opt(100000, min=1, max=10_000_000, reload=True)


@dataclass(frozen=True)
class ClusterConfig:
    """Several instances as one service over PostgreSQL and Redis (cluster.md §1); all restart-only."""

    redis_url: str = opt("")
    key_prefix: str = opt("revenge:")
    node_id: str = opt("")  # empty = <hostname>:<port>
    internal_url: str = opt("")  # empty = http://<host>:<port>
    heartbeat_interval: float = opt(2.0, min=0.05, kind="duration")
    node_ttl: float = opt(6.0, min=0.1, kind="duration")
    lease_ttl: float = opt(6.0, min=0.1, kind="duration")
    session_write_interval: float = opt(5.0, min=0.05, kind="duration")
    session_cache_ttl: float = opt(30.0, min=0.1, kind="duration")
    deny_check_interval: float = opt(0.5, min=0.01, kind="duration")
    segment_index_ttl: float = opt(3600.0, min=1, kind="duration")
    node_token_ttl: float = opt(30.0, min=1, kind="duration")
    max_clock_skew: float = opt(1.0, min=0, kind="duration")
    redis_timeout: float = opt(0.5, min=0.01, kind="duration")
    peer_connect_timeout: float = opt(0.5, min=0.01, kind="duration")
    startup_timeout: float = opt(30.0, min=0, kind="duration")


@dataclass(frozen=True)
class JobsConfig:
    """The job queue (jobs-and-storage.md §1); per-kind timeouts, attempts, priorities and
    concurrency are ``jobs.model.DEFAULT_KINDS``."""

    workers: int = opt(2, min=0, max=64, reload=True)
    poll_interval: float = opt(2.0, min=0.01, kind="duration", reload=True)
    lease_seconds: float = opt(30.0, min=0.3, kind="duration")
    retry_initial_delay: float = opt(10.0, min=0, kind="duration", reload=True)
    retry_multiplier: float = opt(2.0, min=1, reload=True)
    retry_max_delay: float = opt(3600.0, min=0, kind="duration", reload=True)
    retry_jitter: float = opt(0.5, min=0, max=1, reload=True)
    cancel_grace: float = opt(5.0, min=0, kind="duration", reload=True)
    progress_interval: float = opt(1.0, min=0, kind="duration", reload=True)
    retention: float = opt(7 * 86400.0, min=0, kind="duration", reload=True)
    max_queue_age: float = opt(900.0, min=0.001, kind="duration", reload=True)
    max_failures: int = opt(10, min=1, reload=True)
    failure_window: float = opt(900.0, min=1, kind="duration", reload=True)
    stats_interval: float = opt(5.0, min=0.1, kind="duration", reload=True)
    leader_interval: float = opt(5.0, min=0.1, kind="duration")


@dataclass(frozen=True)
class WebConfig:
    """The browser client (web-client.md): pages, static assets, and their knobs."""

    enabled: bool = opt(True)
    vendor_dir: str = opt("revenge/web/client/node_modules")
    page_size: int = opt(60, min=1, max=500, reload=True)
    row_size: int = opt(20, min=1, max=100, reload=True)
    poll_seconds: float = opt(5.0, min=0.5, max=600, kind="duration", reload=True)


@dataclass(frozen=True)
class SubtitlesConfig:
    """Subtitle tracks, sidecars, ahead-of-time conversion and renditions (subtitles.md)."""

    enabled: bool = opt(True)
    extract_timeout: float = opt(1800.0, min=1, kind="duration", reload=True)
    max_sidecar_bytes: int = opt(10 * 1024 * 1024, min=1024, kind="size", reload=True)
    fallback_encoding: str = opt("cp1252", reload=True)


@dataclass(frozen=True)
class TmdbConfig:
    api_key: str | None = opt(None)
    base_url: str = opt("https://api.themoviedb.org/3")
    image_base_url: str = opt("https://image.tmdb.org/t/p")
    rate: float = opt(3.0, min=0, min_exclusive=True)
    burst: float = opt(10.0, min=1)


@dataclass(frozen=True)
class TvdbConfig:
    api_key: str | None = opt(None)
    pin: str | None = opt(None)
    base_url: str = opt("https://api4.thetvdb.com/v4")
    rate: float = opt(3.0, min=0, min_exclusive=True)
    burst: float = opt(10.0, min=1)


@dataclass(frozen=True)
class MetadataConfig:
    """Local metadata, artwork and the providers (metadata.md)."""

    language: str = opt("en-US")
    request_timeout: float = opt(10.0, min=0.1, kind="duration")
    cache_ttl: float = opt(7 * 86400.0, min=0, kind="duration")
    stale_ttl: float = opt(30 * 86400.0, min=0, kind="duration")
    sort_articles: list[str] = opt(["the", "a", "an"])
    thumbnail_at: float = opt(0.1, min=0, max=1)
    nfo_max_bytes: int = opt(1024 * 1024, min=1024, kind="size")
    tmdb: TmdbConfig = field(default_factory=TmdbConfig)
    tvdb: TvdbConfig = field(default_factory=TvdbConfig)


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    library: LibraryConfig = field(default_factory=LibraryConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    transcoder: TranscoderConfig = field(default_factory=TranscoderConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    rate_limit: RateLimitConfig = field(default_factory=RateLimitConfig)
    playback: PlaybackConfig = field(default_factory=PlaybackConfig)
    resilience: ResilienceConfig = field(default_factory=ResilienceConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    supervisor: SupervisorConfig = field(default_factory=SupervisorConfig)
    shutdown: ShutdownConfig = field(default_factory=ShutdownConfig)
    lazy: LazyConfig = field(default_factory=LazyConfig)
    jobs: JobsConfig = field(default_factory=JobsConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    web: WebConfig = field(default_factory=WebConfig)
    subtitles: SubtitlesConfig = field(default_factory=SubtitlesConfig)
    metadata: MetadataConfig = field(default_factory=MetadataConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------------------------
# building a Config from nested plain data

def _is_section(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _convert(key: str, value: Any, tp: Any, meta: dict[str, Any]) -> Any:
    """Value converted to ``tp`` under ``meta``'s rules; raises ValueError with a human message."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)) and type(None) in args:
        if value is None:
            return None
        inner = next(a for a in args if a is not type(None))
        return _convert(key, value, inner, meta)
    if value is None:
        raise ValueError("must not be empty")
    kind = meta.get("kind")
    if kind == "duration":
        out: Any = parse_duration(value)
    elif kind == "size":
        out = parse_size(value)
    elif tp is bool:
        if isinstance(value, bool):
            out = value
        elif isinstance(value, str) and value.strip().lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
            out = value.strip().lower() in ("true", "yes", "on", "1")
        else:
            raise ValueError(f"expected true or false, got {value!r}")
    elif tp is int:
        if isinstance(value, bool):
            raise ValueError(f"expected an integer, got {value!r}")
        if isinstance(value, int):
            out = value
        elif isinstance(value, float) and value.is_integer():
            out = int(value)
        elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
            out = int(value.strip())
        else:
            raise ValueError(f"expected an integer, got {value!r}")
    elif tp is float:
        if isinstance(value, bool):
            raise ValueError(f"expected a number, got {value!r}")
        try:
            out = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"expected a number, got {value!r}") from None
        if out != out or out in (float("inf"), float("-inf")):
            raise ValueError(f"expected a finite number, got {value!r}")
    elif tp is str:
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {value!r}")
        out = value
    elif origin is list:
        if isinstance(value, str):  # environment variables: comma-separated
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value):
            raise ValueError(f"expected a list of strings, got {value!r}")
        out = [str(v) for v in value]
    else:  # pragma: no cover - schema error, not user error
        raise TypeError(f"unsupported config type {tp!r} for {key}")
    choices = meta.get("choices")
    if choices is not None and out not in choices:
        raise ValueError(f"must be one of {', '.join(choices)}, got {out!r}")
    lo, hi = meta.get("min"), meta.get("max")
    if lo is not None and isinstance(out, (int, float)):
        if meta.get("min_exclusive") and not out > lo:
            raise ValueError(f"must be greater than {lo:g}, got {out!r}")
        if out < lo:
            raise ValueError(f"must be at least {lo:g}, got {out!r}")
    if hi is not None and isinstance(out, (int, float)) and out > hi:
        raise ValueError(f"must be at most {hi:g}, got {out!r}")
    return out


def _build_section(cls: type, data: Any, prefix: str, problems: list[dict[str, str]]) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        problems.append({"key": prefix or "(top level)", "message": f"expected a mapping, got {type(data).__name__}"})
        return cls()
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name in data:
        if name not in fields:
            problems.append({"key": f"{prefix}{name}", "message": "unknown key"})
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        if name not in data:
            continue
        tp = hints[name]
        key = f"{prefix}{name}"
        if _is_section(tp):
            kwargs[name] = _build_section(tp, data[name], key + ".", problems)
            continue
        try:
            kwargs[name] = _convert(key, data[name], tp, dict(f.metadata))
        except ValueError as exc:
            problems.append({"key": key, "message": str(exc)})
    if not kwargs:
        return cls()
    return cls(**kwargs)


def build(data: dict[str, Any]) -> tuple[Config | None, list[dict[str, str]]]:
    problems: list[dict[str, str]] = []
    cfg = _build_section(Config, data, "", problems)
    if not problems:
        problems.extend(cross_checks(cfg))
    return (None if problems else cfg), problems


def cross_checks(cfg: Config) -> list[dict[str, str]]:
    """Rules that involve more than one key."""
    out = []
    mem = cfg.cache.memory
    if mem.critical_pressure <= mem.high_pressure:
        out.append({"key": "cache.memory.critical_pressure", "message": "must be greater than cache.memory.high_pressure"})
    if cfg.transcoder.mode == "remote" and not cfg.transcoder.remote_url:
        out.append({"key": "transcoder.remote_url", "message": "is required when transcoder.mode is remote"})
    pb = cfg.playback
    if pb.max_sessions_per_user is not None and pb.max_sessions_per_key is not None \
            and pb.max_sessions_per_user != pb.max_sessions_per_key:
        out.append({"key": "playback.max_sessions_per_user",
                    "message": "differs from playback.max_sessions_per_key (its old name); set only "
                               "playback.max_sessions_per_user"})
    if cfg.jobs.cancel_grace >= cfg.jobs.lease_seconds / 3:
        out.append({"key": "jobs.cancel_grace", "message": "must be below jobs.lease_seconds / 3 (a cancelled handler "
                                                           "must stop before its lease could expire)"})
    out.extend(database_checks(cfg))
    out.extend(cluster_checks(cfg))
    if cfg.supervisor.max_restart_delay < cfg.supervisor.restart_delay:
        out.append({"key": "supervisor.max_restart_delay", "message": "must be at least supervisor.restart_delay"})
    return out


def database_checks(cfg: Config) -> list[dict[str, str]]:
    """jobs-and-storage.md §1/§7.1: a PostgreSQL URL with host and database, never echoed with its password."""
    from urllib.parse import urlsplit

    db = cfg.database
    out = []
    if db.pool_min > db.pool_max:
        out.append({"key": "database.pool_min", "message": "must not exceed database.pool_max"})
    if not db.url:
        return out
    try:
        u = urlsplit(db.url)
        host, name = u.hostname, u.path.lstrip("/")
        u.port  # noqa: B018 - raises on a bad port
    except ValueError:
        u, host, name = None, None, ""
    if u is None or u.scheme not in ("postgresql", "postgres") or not host or not name:
        out.append({"key": "database.url", "message": f"{redact_url(db.url)} is not a postgresql:// URL with a host "
                                                      "and a database name"})
    elif cfg.library.database:
        out.append({"key": "library.database", "message": "is the SQLite file; it cannot be set beside a "
                                                          "PostgreSQL database.url"})
    return out


def cluster_checks(cfg: Config) -> list[dict[str, str]]:
    """cluster.md §1's problems: a cluster needs PostgreSQL, one shared secret, and times that fit."""
    import re
    from urllib.parse import urlsplit

    c = cfg.cluster
    out: list[dict[str, str]] = []
    if c.node_id and not re.fullmatch(r"[A-Za-z0-9._:-]{1,64}", c.node_id):
        out.append({"key": "cluster.node_id", "message": "must match ^[A-Za-z0-9._:-]{1,64}$"})
    if not c.redis_url:
        return out
    try:
        u = urlsplit(c.redis_url)
        ok = u.scheme in ("redis", "rediss") and bool(u.hostname)
        u.port  # noqa: B018 - raises on a bad port
    except ValueError:
        ok = False
    if not ok:
        out.append({"key": "cluster.redis_url", "message": f"{redact_url(c.redis_url)} is not a redis:// or rediss:// "
                                                          "URL with a host"})
    if not cfg.database.url:
        out.append({"key": "cluster.redis_url", "message": "a cluster needs a PostgreSQL database.url (SQLite is "
                                                          "one instance's file)"})
    if not cfg.auth.stream_secret:
        out.append({"key": "auth.stream_secret", "message": "must be set in a cluster (a generated secret differs "
                                                           "per node, so tokens would not verify on the others)"})
    if c.lease_ttl > cfg.playback.segment_wait_timeout / 2:
        out.append({"key": "cluster.lease_ttl", "message": "must be at most playback.segment_wait_timeout / 2"})
    if c.node_ttl < 2 * c.heartbeat_interval:
        out.append({"key": "cluster.node_ttl", "message": "must be at least 2 × cluster.heartbeat_interval"})
    if c.deny_check_interval > 1.0:
        out.append({"key": "cluster.deny_check_interval", "message": "must be at most 1 s (an ended session stops "
                                                                    "everywhere within 1 s)"})
    return out


def redact_url(url: str) -> str:
    """``url`` with any password shown as ``***`` (messages and logs never carry credentials)."""
    import re

    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


def iter_keys(cls: type = Config, prefix: str = "") -> typing.Iterator[tuple[str, dataclasses.Field[Any]]]:
    """Every leaf key as ``section.key`` with its field (for docs, env parsing and reload)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if _is_section(hints[f.name]):
            yield from iter_keys(hints[f.name], f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", f


def get_value(cfg: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg
