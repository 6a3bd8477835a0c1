"""The running instance: everything built from one validated config, started and stopped in order.

The web layer receives a ``Runtime`` and calls into it; nothing in here knows about HTTP. Start-up
order follows lifecycle.md: config → data dir and secrets → services → health checks → ready.
"""
from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from . import __version__
from ._native import _compat
from .core.config import Config
from .core.config.reload import Reloader
from .core.errors import ConfigError
from .core.lifecycle.background import BackgroundWork
from .core.lifecycle.shutdown import Shutdown
from .core.lifecycle.supervisor import ChildSpec, Supervisor
from .core.tokens import TokenSigner
from .library.scanner import Scanner
from .store.migrations import latest as latest_migration
from .store.measured import instrument as instrument_store
from .store.stores import Stores, open_stores
from .library.scans import LibraryScans
from .library.trickplay import Trickplay
from .library.service import LibraryService
from .jobs.service import JobService
from .jobs.leader import AlwaysLeader, PostgresLeader
from .jobs.postgres_queue import PostgresJobQueue
from .jobs.sqlite_queue import SqliteJobQueue
from .observability.health import CheckFailed, HealthChecker, Report
from .observability.instruments import Instruments
from .observability.metrics import Registry
from .observability.process import register_process_metrics
from .resilience.breaker import BreakerRegistry
from .resilience.bulkhead import Bulkhead
from .resilience.client_address import ClientAddress
from .resilience.ratelimit import RateLimiter
from .resilience.retry import Retry
from .web.auth import ApiKeys, authenticate
from .playback.cache.disk import DiskSegmentCache
from .subtitles.service import SubtitleService
from .playback.cache.memory import MemorySegmentCache
from .playback.cache.pressure import MemoryPressureMonitor
from .playback.progress import PENDING_FILE, ProgressWriter
from .playback.service import PlaybackService
from .playback.transcode.local import Job
from .playback.transcode.manager import EncoderManager, auto_max_encoders
from .playback.transcode.remote import RemoteTranscoderClient
from .resilience.client_address import parse_ip
from .users.admin_sessions import AdminSessions, default_node
from .users.metrics import AuthInstruments
from .users.passwords import Passwords
from .users.service import ADMIN_PASSWORD_FILE, AccountService, ensure_builtin_admin, print_once
from .users.signin import AuthService
from .users.watch import WatchService

log = logging.getLogger("revenge")


def git_commit() -> str:
    env = os.environ.get("REVENGE_GIT_COMMIT")
    if env:
        return env
    here = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, timeout=2, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


def find_ffmpeg(configured: str = "ffmpeg") -> str | None:
    """The configured ffmpeg if it runs from PATH, else imageio-ffmpeg's bundled static binary."""
    found = shutil.which(configured)
    if found:
        return found
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:  # not installed or no binary for this platform
        return None


def ensure_secret(data_dir: Path, name: str) -> str:
    """A random secret kept in ``data_dir`` (created once with mode 0600, reused afterwards)."""
    path = data_dir / name
    try:
        value = path.read_text(encoding="ascii").strip()
        if value:
            return value
    except FileNotFoundError:
        pass
    value = secrets.token_urlsafe(32)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(value + "\n")
    os.replace(tmp, path)
    return value


class Runtime:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.data_dir = Path(config.server.data_dir).resolve()
        self.started_at = time.monotonic()
        self.version = __version__
        self.git_commit = git_commit()
        self.native = _compat.all_native()
        self.registry = Registry(max_series=config.metrics.max_series)
        self.metrics = Instruments(self.registry)
        register_process_metrics(self.registry)
        self.metrics.build_info.labels(self.version, self.git_commit, "true" if self.native else "false")
        self.health = HealthChecker(config.health.cache_ttl, config.health.default_timeout, self._export_health)
        self.state = "starting"  # starting → ready → stopping
        self.api_keys: ApiKeys = ApiKeys([])
        self.tokens: TokenSigner | None = None
        self.stores: Stores | None = None  # the store by area, async, SQLite or PostgreSQL (store/stores.py)
        self.cluster: Any = None  # cluster/service.py Cluster when cluster.redis_url is set
        self.scanner: Scanner | None = None
        self.jobs: JobService | None = None
        self.scans: LibraryScans | None = None
        self.library: LibraryService | None = None  # metadata.md: classification, NFO, artwork, search, providers
        self.media_items = 0
        self.library_roots = [Path(p).resolve() for p in config.library.paths] or [self.data_dir / "demo"]
        self.library_real_roots = [os.path.realpath(r) for r in self.library_roots]
        self.ffmpeg_path: str | None = None
        self.ffmpeg_identity = "unknown"
        self.tone_map_available = False
        self.dolby_vision_hls = False
        self.playback: PlaybackService | None = None
        self.encoders: EncoderManager | None = None
        # media id -> (root, rel_path): direct play asks for it on every request, and a thread hop
        # to SQLite per Range request costs more than the read; dropped after every scan
        self._file_rows: dict[str, tuple[str, str]] = {}
        self._ffmpeg_checked = False
        self.memory_cache = MemorySegmentCache(config.cache.memory, self.metrics)
        self.memory_monitor = MemoryPressureMonitor(self.memory_cache, config.cache.memory, self.metrics)
        self.supervisor = Supervisor(
            config.supervisor.strategy, config.supervisor.max_restarts, config.supervisor.max_seconds,
            config.supervisor.restart_delay, config.supervisor.max_restart_delay, config.supervisor.reset_after,
            config.supervisor.shutdown_timeout, self._supervisor_gave_up, self.metrics,
        )
        self.shutdown = Shutdown(config.shutdown.hook_timeout, config.shutdown.timeout)
        self.rate_limiter: RateLimiter | None = None
        self.client_address = ClientAddress(config.server.trusted_proxies)
        self.encoder_bulkhead: Bulkhead | None = None
        self.breakers = BreakerRegistry(lambda name: getattr(self.config.resilience.breaker, name), self.metrics)
        self.reloader: Reloader | None = None
        self.remote_client: RemoteTranscoderClient | None = None
        self.disk_cache: DiskSegmentCache | None = None
        self.subtitles: SubtitleService | None = None
        self.subtitles_filter = False
        self.trickplay: Trickplay | None = None
        # after-scan jobs' ffmpeg, paused while a viewer waits for a segment being encoded (issue 18)
        self.background = BackgroundWork()
        self.progress: ProgressWriter | None = None
        self.remote_bulkhead: Bulkhead | None = None
        # users.md: accounts, sign-in, keys, watch state (built at start, once the catalog is open)
        self.auth_metrics = AuthInstruments(self.registry)
        self.user_store: Any = None  # stores.users: the async users store of either backend
        self.passwords: Passwords | None = None
        self.auth: AuthService | None = None
        self.accounts: AccountService | None = None
        self.watch: WatchService | None = None
        self.admin_sessions: AdminSessions | None = None

    def _supervisor_gave_up(self) -> None:
        if self.config.supervisor.on_give_up == "exit":
            log.error("the supervisor gave up; exiting (supervisor.on_give_up: exit)")
            os.kill(os.getpid(), signal.SIGTERM)

    # --- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Start-up in lifecycle.md order: data dir and secrets → SQLite → services → workers → ready."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.api_keys = ApiKeys(list(self.config.auth.api_keys) or [ensure_secret(self.data_dir, "api_key")])
        secret = self.config.auth.stream_secret or ensure_secret(self.data_dir, "stream_secret")
        self.tokens = TokenSigner(secret)
        self.stores = await open_stores(self.config, self.data_dir, default_node(self.config.server.port))
        instrument_store(self.stores, self.registry)
        if self.config.cluster.redis_url:
            await self._join_cluster(secret)
        await self._start_users(secret)
        self.media_items = await self.stores.catalog.count()
        self.metrics.library_items.set_function(lambda: float(self.media_items))
        lib = self.config.library
        self.scanner = Scanner(self.stores.catalog, self.library_roots, lib.extensions, lib.probe_concurrency,
                               lib.probe_timeout, self._scan_finished)
        queue, leadership = self._job_queue()
        await queue.open()
        self.jobs = JobService(queue, self.config.jobs, default_node(self.config.server.port), self.registry,
                               leadership)
        self.scans = LibraryScans(self.jobs.runner, queue, self.scanner)
        self.subtitles = SubtitleService(
            self.stores.subtitles, self.jobs.runner, lambda: self.config.subtitles, lambda: self.config.library.extensions,
            lambda: self.ffmpeg_path, self.media_source_path, self.data_dir / "cache" / "subtitles",
            self.data_dir / "subtitle-work", self.metrics)
        self.scanner.post_probe = self.subtitles.sidecars
        self.scanner.sidecars_changed = self.subtitles.sidecars_changed
        self._start_library()
        self.scans.after_scan.append(self.subtitles.after_scan)
        self.scans.late_errors.append(self.subtitles.failed_errors)  # failed tracks are scan errors
        self.trickplay = Trickplay(self.jobs.runner, self.data_dir, lambda: self.ffmpeg_path, self._media_identity,
                                   self.media_source_path, self.stores.catalog.identities, self.background)
        self.scans.after_scan.append(self.trickplay.after_scan)
        await asyncio.to_thread(self._probe_ffmpeg)
        tc = self.config.transcoder
        enc_cfg = self.config.resilience.bulkhead.encoders
        self.encoder_bulkhead = Bulkhead("encoders", self.max_encoders(), enc_cfg.max_queue,
                                         self.config.playback.segment_wait_timeout, self._bulkhead_rejected)
        self._export_bulkhead(self.encoder_bulkhead)
        if tc.mode == "remote":
            self.remote_client = self._remote_client()
        dc = self.config.cache.disk
        self.disk_cache = DiskSegmentCache(Path(dc.path) if dc.path else self.data_dir / "cache" / "segments", dc,
                                           self.metrics)
        await asyncio.to_thread(self.disk_cache.open)
        self.encoders = EncoderManager(
            self.ffmpeg_path or "ffmpeg", self.data_dir / "transcode", self.memory_cache, self.metrics,
            self.encoder_bulkhead, tc.lookahead_segments, tc.encoder_idle_seconds, tc.kill_grace,
            tc.max_ahead_segments, remote=self.remote_client, source_url_for=self._source_url,
            poll_interval=tc.remote_poll_interval, disk=self.disk_cache, background=self.background,
        )
        self.progress = ProgressWriter(self.stores.catalog, users=self.stores.users,
                                       max_buffered=lambda: self.config.database.write_buffer_max,
                                       gauge=self.auth_metrics.buffered_writes,
                                       pending_path=self.data_dir / PENDING_FILE)
        await self.progress.replay()  # what a shutdown during an outage kept, before serving
        self.playback = PlaybackService(self, self.encoders)
        assert self.user_store is not None
        self.watch = WatchService(self.stores.catalog, self.user_store, self.progress)
        self.admin_sessions = AdminSessions(self.playback, self.stores.catalog, self.user_store,
                                            lambda: default_node(self.config.server.port))
        self.rate_limiter = RateLimiter(self.config.rate_limit, self.metrics)
        self._register_checks()
        self._register_workers()
        self._register_hooks()
        if self.cluster is not None:
            self._wire_cluster()
        self.memory_monitor.check()
        await self.supervisor.start()
        self.metrics.config_last_reload_success.set(1)
        self.metrics.config_last_reload_ts.set(time.time())
        await self.scans.enqueue_if_idle()  # the first scan (merged into one left queued by a previous run)
        self._install_sighup()
        self.state = "ready"
        log.info("revenge %s ready (native=%s)", self.version, self.native)

    async def _join_cluster(self, secret: str) -> None:
        """cluster.md §2: Redis reachable, the shared fingerprints, this node's id claimed."""
        from .cluster.service import Cluster

        self.cluster = Cluster(self.config, self.registry, self.version, self._node_stats,
                               lambda: self.ffmpeg_identity, self.metrics)
        await self.cluster.join(secret)

    def _node_stats(self) -> dict[str, Any]:
        """What the node record says about this node's load (cluster.md §2 rule 2)."""
        sessions = len(self.playback.sessions.all()) if self.playback is not None else 0
        encoders = self.encoders.active if self.encoders is not None else 0
        try:
            load = os.getloadavg()[0] / (os.cpu_count() or 1)
        except OSError:
            load = 0.0
        return {"sessions": sessions, "encoders": encoders, "load": round(load, 3)}

    def node_view(self) -> dict[str, Any]:
        """This instance as ``/api/v1/admin/cluster`` lists a node (one instance: the only one)."""
        from .cluster.service import internal_url_of, node_id_of
        from .core.times import rfc3339

        started = time.time() - self.uptime
        return {"node_id": node_id_of(self.config), "internal_url": internal_url_of(self.config),
                "started_at": rfc3339(started), "last_seen": rfc3339(time.time()), "version": self.version,
                **self._node_stats()}

    def _wire_cluster(self) -> None:
        """Events → the parts they invalidate; workers, checks and hooks of the cluster."""
        from .cluster.link import RedisUnavailable
        from .cluster.wiring import wire_events

        c = self.cluster

        async def end_local(sid: str, reason: str) -> None:
            s = self.playback.sessions.get(sid) if self.playback is not None else None
            if s is not None:
                await self.playback.end(s, reason, local_only=True)  # type: ignore[union-attr]

        async def reload() -> None:
            if self.reloader is not None:
                await self.reloader.reload("cluster event")

        wire_events(c.events, drop_file_rows=self._file_rows.clear, auth=self.auth, end_local_session=end_local,
                    reload_config=reload)
        if self.auth is not None:
            self.auth.publish = c.events.publish
        c.cached_sessions = lambda: len(self.playback.sessions.all()) if self.playback is not None else 0
        if self.playback is not None:
            cc = self.config.cluster

            async def ended(sid: str, reason: str) -> None:
                await c.events.publish("session_ended", session_id=sid, reason=reason)

            shared = c.sessions(cc)
            self.playback.share(shared, ended)
            if self.admin_sessions is not None:
                self.admin_sessions.shared = shared
                self.admin_sessions.node = lambda: c.node_id
            self._service_sessions: int | None = None

            async def count_sessions() -> None:
                """revenge_playback_sessions_active is the service's (cluster.md §3 rule 7), read once
                per heartbeat interval; this node's count while Redis is away."""
                while True:
                    try:
                        self._service_sessions = await shared.active()
                    except RedisUnavailable:
                        self._service_sessions = None
                    await asyncio.sleep(cc.heartbeat_interval)

            playback = self.playback
            self.metrics.sessions_active.set_function(
                lambda: float(self._service_sessions if self._service_sessions is not None
                              else playback.sessions.live_count()))
            self.supervisor.add(ChildSpec("cluster_sessions_count", count_sessions))
        self.supervisor.add(ChildSpec("cluster_heartbeat", c.nodes.run))
        self.supervisor.add(ChildSpec("cluster_events", c.events.run))
        peer_bh = Bulkhead("peer_fetch", 64, 128, 2.0, self._bulkhead_rejected)  # cluster.md §5 rule 3
        self._export_bulkhead(peer_bh)
        leases, _peers = c.segments(self.tokens, peer_bh)
        self.supervisor.add(ChildSpec("cluster_leases", leases.run))
        if self.encoders is not None:  # cluster.md §4 on the encoder's path
            from .cluster.coordinator import SegmentCoordinator
            from .playback.transcode.manager import cache_key

            self.encoders.coordinator = SegmentCoordinator(leases, _peers, c.nodes, c.m,
                                                           self.config.transcoder.lookahead_segments, cache_key)
        self.health.register("redis", "warm", c.check_redis, timeout=max(1.0, self.config.cluster.redis_timeout * 3))
        self.health.register("cluster", "warm", c.check_cluster)
        self.shutdown.register(27, "leases", c.leave)
        self.shutdown.register(55, "redis", c.close)

    def _job_queue(self) -> tuple[Any, Any]:
        """The jobs table of the store's backend: polled SQLite (always the leader), or PostgreSQL on
        the store's pool with LISTEN/NOTIFY and the advisory-lock leader (jobs-and-storage.md §4–5)."""
        assert self.stores is not None
        if self.stores.backend == "postgres":
            return (PostgresJobQueue(self.stores.dsn, pool=self.stores.pool),
                    PostgresLeader(self.stores.dsn, self.config.jobs.leader_interval))
        assert self.stores.sqlite_path is not None
        return SqliteJobQueue(self.stores.sqlite_path), AlwaysLeader()

    def _start_library(self) -> None:
        """The library service the scanner asks (classification, local metadata, artwork) and its
        jobs; providers join in ``metadata/`` when a key is configured."""
        assert self.stores is not None and self.jobs is not None and self.scanner is not None
        self.library = LibraryService(self.stores, self.data_dir, self.config, self.jobs.runner,
                                      lambda: self.ffmpeg_path, self.media_source_path,
                                      tone_map=lambda: self.tone_map_available, background=self.background)
        self.scanner.library = self.library
        self._start_providers()

    def _start_providers(self) -> None:
        """metadata.md §5: TMDb / TheTVDB for the ``metadata_refresh`` jobs, each on when its key is set."""
        from .metadata.providers import build as build_providers

        lib = self.library
        assert lib is not None
        lib.providers = build_providers(self.config, self.data_dir, self.breakers, self.metrics, lib.queries,
                                        lib.images, self._bulkhead_rejected)
        lib.providers_on = lambda: lib.providers is not None
        for c in lib.providers.clients if lib.providers is not None else []:
            self._export_bulkhead(c.bulkhead)

    async def _start_users(self, secret: str) -> None:
        """Users, passwords and sign-in over the catalog database; the first start sets the built-in
        admin's password and prints it once (users.md rule 3)."""
        assert self.stores is not None
        a = self.config.auth
        pb = self.config.playback
        if pb.max_sessions_per_key is not None and pb.max_sessions_per_user is None:
            log.warning("playback.max_sessions_per_key is the old name of playback.max_sessions_per_user; "
                        "it is read as playback.max_sessions_per_user")
        store = self.user_store = self.stores.users
        m = self.auth_metrics
        self.passwords = Passwords(a.argon2, lambda op, secs: m.hash_seconds.labels(op).observe(secs),
                                   self._bulkhead_rejected)
        self._export_bulkhead(self.passwords.bulkhead)
        password = await ensure_builtin_admin(store, self.passwords, self.data_dir)
        srv = self.config.server
        host = "127.0.0.1" if srv.host in ("0.0.0.0", "::", "") else srv.host
        print_once(password, self.data_dir / ADMIN_PASSWORD_FILE, srv.public_url or f"http://{host}:{srv.port}/")
        dummy = await asyncio.to_thread(self.passwords.hash_sync, secrets.token_urlsafe(18))
        self.auth = AuthService(store, self.passwords, lambda: self.config.auth,
                                lambda scope: authenticate(scope, self.api_keys)[1],
                                secret, m, self._trusted_peer, lambda: self.config.server.cors_origins, dummy)
        self.auth.builtin_admin_id = await store.builtin_admin_id()
        self.auth.builtin_admin = await store.get_user(self.auth.builtin_admin_id or "")
        if self.auth.builtin_admin is None:
            raise ConfigError([{"key": "library.database", "message": "the built-in admin user is missing"}])
        await self.auth.recount()
        self.accounts = AccountService(store, self.auth, self.passwords, m,
                                       lambda: self.config.auth.password_min_length,
                                       lambda: self.config.auth.max_keys_per_user, self._end_user_sessions,
                                       self.data_dir)
        await self.accounts.refresh_gauges()

    def _trusted_peer(self, peer: str | None) -> bool:
        ip = parse_ip(peer or "")
        return ip is not None and self.client_address.trusted(ip)

    async def _end_user_sessions(self, user_id: str, reason: str) -> None:
        if self.admin_sessions is not None:
            await self.admin_sessions.end_user(user_id, reason)

    def _remote_client(self) -> RemoteTranscoderClient:
        """Remote transcoder calls: lazy client → retry → breaker → bulkhead → timeout."""
        tc = self.config.transcoder
        res = self.config.resilience
        breaker = self.breakers.get("transcoder_remote")
        retry = Retry("transcoder_remote", res.retry.transcoder_remote,
                      on_retry=lambda op: self.metrics.retries.labels(op).inc())
        bh = res.bulkhead.transcoder_remote
        self.remote_bulkhead = Bulkhead("transcoder_remote", bh.max_concurrent, bh.max_queue, bh.max_wait,
                                        self._bulkhead_rejected)
        self._export_bulkhead(self.remote_bulkhead)
        assert tc.remote_url is not None
        return RemoteTranscoderClient(
            tc.remote_url, tc.api_key, breaker, retry, self.remote_bulkhead, tc.remote_connect_timeout,
            tc.remote_request_timeout, self.config.lazy.retry_backoff,
            on_init=lambda name, secs: self.metrics.lazy_init.labels(name).set(secs),
        )

    def _source_url(self, job: Job) -> str:
        tc = self.config.transcoder
        base = (tc.remote_source_url or f"http://{self.config.server.host}:{self.config.server.port}").rstrip("/")
        assert self.tokens is not None
        ttl = job.segment_count * job.segment_seconds + tc.internal_token_ttl
        token = self.tokens.sign("source", job.media_id, ttl)
        return f"{base}/internal/v1/media/{job.media_id}/source?token={token}"

    def max_encoders(self) -> int:
        """The ``encoders`` bulkhead's count bound; with 0 (auto) only a process ceiling, the
        measured encoding capacity decides admission below it (EncoderManager._admit)."""
        return self.config.transcoder.max_encoders or auto_max_encoders()

    def _bulkhead_rejected(self, name: str, reason: str) -> None:
        self.metrics.bulkhead_rejected.labels(name, reason).inc()

    def _export_bulkhead(self, b: Bulkhead) -> None:
        self.metrics.bulkhead_active.labels(b.name).set_function(lambda: float(b.active))
        self.metrics.bulkhead_queued.labels(b.name).set_function(lambda: float(b.queued))

    def _register_workers(self) -> None:
        """Background workers, each supervised (lifecycle.md §2, revenge's children)."""
        assert self.playback is not None and self.encoders is not None and self.rate_limiter is not None
        sup = self.supervisor
        sup.add(ChildSpec("session_sweeper", lambda: self._every(5.0, self.playback.sweep)))  # type: ignore[union-attr]
        sup.add(ChildSpec("encoder_reaper", lambda: self._every(2.0, self.encoders.reap)))  # type: ignore[union-attr]
        sup.add(ChildSpec("memory_monitor", self.memory_monitor.run))
        sup.add(ChildSpec("progress_writer", self.progress.run))
        if self.auth is not None:
            sup.add(ChildSpec("auth_writer", self.auth.run_writer))
            sup.add(ChildSpec("auth_sweeper", lambda: self._every(3600.0, self.auth.sweep)))  # type: ignore[union-attr]
        sup.add(ChildSpec("disk_cache_maintenance", lambda: self._every(
            self.config.cache.disk.maintenance_interval, self._maintain_disk)))
        sup.add(ChildSpec("rate_limit_sweeper", lambda: self._every(
            self.config.rate_limit.sweep_interval, self._sweep_rate_limits)))
        sup.add(ChildSpec("config_watcher", lambda: self.reloader.watch() if self.reloader else asyncio.Event().wait()))
        assert self.jobs is not None and self.scans is not None
        sup.add(ChildSpec("job_runner", self.jobs.runner.run))
        sup.add(ChildSpec("job_stats", lambda: self._every(self.config.jobs.stats_interval, self.jobs.sample)))  # type: ignore[union-attr]
        sup.add(ChildSpec("leader_election", self.jobs.leadership.run))
        sup.add(ChildSpec("leader", lambda: self.jobs.leader(  # type: ignore[union-attr]
            self._scheduled_scan, lambda: self.config.library.scan_interval)))

    async def _maintain_disk(self) -> None:
        if self.disk_cache is not None:
            await asyncio.to_thread(self.disk_cache.maintain)

    async def _sweep_rate_limits(self) -> None:
        if self.rate_limiter is not None:
            self.rate_limiter.sweep()

    async def _scheduled_scan(self) -> None:
        """Due when the last scan finished ``library.scan_interval`` ago (the schedule lives in the
        database, so a restart neither doubles nor skips a scan)."""
        assert self.scans is not None
        status = await self.scans.status()
        finished = status.get("finished_at")
        if status["state"] == "running":
            return
        if finished is not None:
            import datetime as _dt

            ago = time.time() - _dt.datetime.fromisoformat(finished.replace("Z", "+00:00")).timestamp()
            if ago < self.config.library.scan_interval:
                return
        await self.scans.enqueue_if_idle()

    def _register_hooks(self) -> None:
        """Ordered shutdown (lifecycle.md §3); HTTP drain happens in granian before these run."""
        sd = self.shutdown

        async def sessions() -> None:
            if self.playback is not None:
                await self.playback.end_all()

        async def encoders() -> None:
            self.background.close()  # nothing stays stopped through the jobs' shutdown
            if self.encoders is not None:
                await self.encoders.stop_all()

        async def caches() -> None:
            self.memory_cache.clear()
            if self.disk_cache is not None:
                await asyncio.to_thread(self.disk_cache.write_index)
            if self.remote_client is not None:
                await self.remote_client.lazy.close()
            if self.library is not None and self.library.providers is not None:
                await self.library.providers.close()  # the metadata providers' HTTP clients

        async def jobs() -> None:
            if self.jobs is not None:
                await self.jobs.runner.hand_back()

        async def database() -> None:
            if self.progress is not None:  # held watch-state writes: written, else pending_writes.jsonl
                await self.progress.stop(min(2.0, self.config.shutdown.hook_timeout / 2))
            if self.scanner is not None:
                await self.scanner.cancel()
            if self.jobs is not None:
                await self.jobs.queue.close()
            if self.jobs is not None and hasattr(self.jobs.leadership, "close"):
                await self.jobs.leadership.close()  # drops the leader lock with its connection
            if self.stores is not None:
                await self.stores.close()  # PostgreSQL: the pool; SQLite: checkpoint and close

        async def flush_logs() -> None:
            for h in logging.getLogger("revenge").handlers:
                h.flush()

        sd.register(20, "sessions", sessions)
        sd.register(25, "jobs", jobs, timeout=self.config.jobs.cancel_grace + 2)
        sd.register(30, "encoders", encoders, timeout=self.config.transcoder.kill_grace + 3)
        sd.register(40, "supervisor", self.supervisor.stop)
        sd.register(50, "caches", caches)
        sd.register(60, "database", database)
        sd.register(70, "logging", flush_logs)

    def _install_sighup(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(self._reload_quietly("SIGHUP")))
            # sent by revenge's granian main process on the first SIGTERM/SIGINT, before the drain
            loop.add_signal_handler(signal.SIGUSR1, self.begin_shutdown)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread (tests), or no signals
            pass

    def begin_shutdown(self) -> None:
        """Phase 1 of shutdown: not ready, no new sessions; in-flight responses keep streaming."""
        if self.state != "stopping":
            log.info("shutdown begins: not ready; draining in-flight responses")
            self.state = "stopping"
            self.health._report = None

    async def _reload_quietly(self, source: str) -> None:
        if self.reloader is None:
            return
        try:
            await self.reloader.reload(source)
        except ConfigError:
            pass

    def apply_config(self, new: Config, keys: list[str]) -> None:
        """Applies reloadable changes to running components; nothing is reset."""
        self.config = new
        if self.rate_limiter is not None and any(k.startswith("rate_limit.") for k in keys):
            self.rate_limiter.reconfigure(new.rate_limit)
        if self.disk_cache is not None:
            self.disk_cache.cfg = new.cache.disk
        if any(k.startswith("cache.memory.") for k in keys):
            self.memory_cache.reconfigure(new.cache.memory)
            self.memory_monitor.cfg = new.cache.memory
        if any(k.startswith("logging.") for k in keys):
            from .logs import setup_logging

            setup_logging(new.logging.level, new.logging.format)
        if self.remote_bulkhead is not None:
            rb = new.resilience.bulkhead.transcoder_remote
            self.remote_bulkhead.resize(rb.max_concurrent, rb.max_queue, rb.max_wait)
        if self.remote_client is not None:
            self.remote_client.retry.cfg = new.resilience.retry.transcoder_remote
        if self.encoder_bulkhead is not None:
            self.encoder_bulkhead.resize(self.max_encoders(), new.resilience.bulkhead.encoders.max_queue,
                                         new.playback.segment_wait_timeout)
        if self.encoders is not None:
            tc = new.transcoder
            self.encoders.lookahead = tc.lookahead_segments
            self.encoders.idle_seconds = tc.encoder_idle_seconds
            self.encoders.max_ahead = tc.max_ahead_segments
        self.api_keys = ApiKeys(list(new.auth.api_keys) or self.api_keys_fallback())
        if self.passwords is not None:
            self.passwords.reconfigure(new.auth.argon2)
        if self.jobs is not None:
            self.jobs.reconfigure(new.jobs)
        if self.playback is not None:
            self.playback.sessions.max_per_key = new.playback.sessions_per_user
        self.client_address = ClientAddress(new.server.trusted_proxies)
        self.health.cache_ttl = new.health.cache_ttl
        self.health.default_timeout = new.health.default_timeout
        self.breakers.reconfigure()
        if self.library is not None and self.library.providers is not None:
            self.library.providers.reconfigure(new)  # metadata providers' retry and bulkhead

    def api_keys_fallback(self) -> list[str]:
        return [ensure_secret(self.data_dir, "api_key")]

    async def _every(self, seconds: float, job) -> None:  # type: ignore[no-untyped-def]
        while True:
            await asyncio.sleep(seconds)
            await job()

    async def stop(self) -> None:
        """The lifespan shutdown event: granian has drained HTTP; run the ordered hooks once."""
        self.state = "stopping"
        self.health._report = None
        ok = await self.shutdown.trigger("lifespan shutdown")
        if not ok:
            log.error("shutdown finished with problems: %s", self.shutdown.results)

    @property
    def uptime(self) -> float:
        return time.monotonic() - self.started_at

    # --- health ------------------------------------------------------------------------------
    def _register_checks(self) -> None:
        h = self.health
        h.register("lifecycle", "critical", self._check_lifecycle)
        h.register("database", "critical", self._check_database)
        h.register("jobs", "warm", self._check_jobs)
        h.register("disk_space", "warm", self._check_disk_space, blocking=True)
        h.register("ffmpeg", "warm", self._check_ffmpeg, timeout=5.0, blocking=True)
        h.register("memory", "warm", self._check_memory)
        h.register("config", "cold", self._check_config)
        h.register("supervisor", "warm", self._check_supervisor)
        if self.remote_client is not None:
            h.register("transcoder_remote", "cold", self._check_remote, timeout=2.5)
        for c in self.library.providers.clients if self.library is not None and self.library.providers else []:
            h.register(f"metadata_{c.name}", "cold", c.check, timeout=min(c.request_timeout, 5.0) + 0.5)

    def _check_lifecycle(self) -> None:
        if self.state == "starting":
            raise CheckFailed("starting")
        if self.state == "stopping":
            raise CheckFailed("shutting down")

    async def _check_database(self) -> None:
        """One round trip within the check's timeout, and a schema no older than this code needs;
        the error names ``host:port/database`` (never credentials)."""
        assert self.stores is not None
        try:
            version = await self.stores.schema_version()
        except Exception as exc:
            raise CheckFailed(f"{self.stores.where}: {type(exc).__name__}") from None
        needed = latest_migration(self.stores.backend)
        if version < needed:
            raise CheckFailed(f"the database schema is at {version}, older than the {needed} this revenge needs")

    async def _check_jobs(self) -> None:
        assert self.jobs is not None
        await self.jobs.check()

    def library_real_path(self, root: str, rel_path: str) -> str | None:
        """The real path (symlinks resolved) of a catalogued file, only if it lies inside a
        configured library root; None otherwise (logged)."""
        real = os.path.realpath(os.path.join(root, rel_path))
        if not any(real.startswith(r + os.sep) for r in self.library_real_roots):
            log.warning("refusing a media file outside the library roots")
            return None
        return real

    async def media_source_path(self, media_id: str) -> str | None:
        """The real path of a catalogued regular file inside a configured library root."""
        row = await self.media_file(media_id)
        real = self.library_real_path(*row) if row is not None else None
        return real if real is not None and os.path.isfile(real) else None

    def _probe_ffmpeg(self) -> None:
        """The lazy ffmpeg capability probe: which binary, its version, whether it can tone-map."""
        exe = find_ffmpeg(self.config.transcoder.ffmpeg_path)
        self._ffmpeg_checked = True
        if exe is None:
            return
        try:
            version = subprocess.run([exe, "-hide_banner", "-version"], capture_output=True, text=True, timeout=10)
            filters = subprocess.run([exe, "-hide_banner", "-filters"], capture_output=True, text=True, timeout=10)
            bsfs = subprocess.run([exe, "-hide_banner", "-bsfs"], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return
        if version.returncode != 0:
            return
        self.ffmpeg_path = exe
        self.ffmpeg_identity = (version.stdout.splitlines() or ["ffmpeg"])[0][:80]
        self.tone_map_available = " zscale " in filters.stdout and " tonemap " in filters.stdout
        self.subtitles_filter = " subtitles " in filters.stdout  # text burn-in (subtitles.md §3.1)
        # dovi_rpu (FFmpeg ≥ 7.1) marks the builds that strip DV and keep its record in HLS fMP4;
        # 5.1's HLS muxer writes no DV record at all (measured), so DV is never kept with it
        self.dolby_vision_hls = "dovi_rpu" in bsfs.stdout.split()

    async def _media_identity(self, media_id: str) -> tuple[dict, int, int] | None:
        """(item, size, mtime_ns) of a media row, for files derived from it."""
        assert self.stores is not None
        item = await self.stores.catalog.get_media(media_id)
        ids = await self.stores.catalog.identities(media_id) if item is not None else []
        return None if item is None or not ids else (item, ids[0][1], ids[0][2])

    async def media_file(self, media_id: str) -> tuple[str, str] | None:
        """(root, rel_path) of a media row, cached until the next scan finishes (§2.7)."""
        row = self._file_rows.get(media_id)
        if row is None:
            assert self.stores is not None
            row = await self.stores.catalog.get_file(media_id)
            if row is not None:
                if len(self._file_rows) > 50_000:
                    self._file_rows.clear()
                self._file_rows[media_id] = row
        return row

    async def _scan_finished(self, status: dict, seconds: float) -> None:
        self._file_rows.clear()
        self.metrics.library_scans.labels("ok" if status["state"] == "idle" else "failed").inc()
        self.metrics.library_scan_duration.observe(seconds)
        if self.stores is not None:
            try:
                self.media_items = await self.stores.catalog.count()
            except Exception:  # the gauge keeps its last value; the catalog check reports the fault
                log.exception("could not count the catalog")
        log.info("library scan %s: %s seen, %s added, %s updated, %s removed, %s errors", status["state"],
                 status["files_seen"], status["files_added"], status["files_updated"], status["files_removed"],
                 len(status["errors"]))
        if self.cluster is not None:  # the other nodes drop their cached file rows too (cluster.md §7)
            await self.cluster.events.publish("scan_finished", job_id=status.get("job_id"), state=status["state"])

    def _check_disk_space(self) -> None:
        free = shutil.disk_usage(self.data_dir).free
        if free < self.config.health.min_free_bytes:
            raise CheckFailed(f"only {free // (1024 * 1024)} MiB free in the data directory")
        if not os.access(self.data_dir, os.W_OK):
            raise CheckFailed("the data directory is not writable")

    def _check_ffmpeg(self) -> None:
        if not self._ffmpeg_checked:
            self._probe_ffmpeg()
        if self.ffmpeg_path is None:
            raise CheckFailed("ffmpeg was not found or does not run")

    def _check_memory(self) -> None:
        ratio = self.memory_monitor.ratio
        if ratio >= self.config.cache.memory.critical_pressure:
            raise CheckFailed(f"system memory use is {ratio:.0%}, above the critical threshold")

    def _check_config(self) -> None:
        if self.reloader is not None and not self.reloader.last_ok:
            raise CheckFailed("the last configuration reload failed; the previous configuration is serving")
        if self.reloader is not None and self.reloader.pending_restart:
            raise CheckFailed("a restart is needed to apply: " + ", ".join(self.reloader.pending_restart)[:200])

    async def _check_remote(self) -> None:
        assert self.remote_client is not None
        b = self.remote_client.breaker
        if b.state == "open":
            raise CheckFailed(f"circuit breaker open; retry in {b.retry_after():.0f} s")
        if not await self.remote_client.probe_health():
            raise CheckFailed("the remote transcoder does not answer /health/live")

    def _check_supervisor(self) -> None:
        problem = self.supervisor.healthy()
        if problem is not None:
            raise CheckFailed(problem)

    def _export_health(self, report: Report) -> None:
        m = self.metrics
        for name, r in report.results.items():
            m.health_check_status.labels(name, r.category).set(1 if r.status == "healthy" else 0)
            m.health_check_latency.labels(name).set(r.latency_ms / 1000.0)
        for s in ("healthy", "degraded", "unhealthy"):
            m.health_status.labels(s).set(1 if report.status == s else 0)

    async def health_report(self) -> Report:
        return await self.health.report()

