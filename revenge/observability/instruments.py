"""Every metric revenge exports, declared once with the names, labels and buckets of
observability.md. Components receive the ``Instruments`` they update; gauges that describe
current state are callbacks bound by the owning component at wiring time (exact, never drift).
"""
from __future__ import annotations

from .metrics import Counter, Gauge, Histogram, Info, Registry

BUCKETS_A = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
BUCKETS_B = (0.1, 0.25, 0.5, 1, 2, 3, 4, 6, 9, 12, 20, 30, 60)
BUCKETS_C = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30)
BUCKETS_D = (1, 5, 15, 60, 300, 900, 3600, 10800)


class Instruments:
    def __init__(self, registry: Registry) -> None:
        r = registry
        self.registry = r
        self.build_info = Info("revenge_build", "Build information (always 1).", ["version", "git_commit", "native"], registry=r)
        self.http_requests = Counter(
            "revenge_http_requests_total", "HTTP responses sent.", ["method", "route", "status"], registry=r
        )
        self.http_duration = Histogram(
            "revenge_http_request_duration_seconds",
            "Request start to last body byte.",
            ["method", "route"],
            buckets=BUCKETS_A,
            registry=r,
        )
        self.http_in_flight = Gauge("revenge_http_requests_in_flight", "Requests started and not finished.", ["route"], registry=r)
        self.http_bytes = Counter("revenge_http_response_bytes_total", "Body bytes actually written.", ["route"], registry=r)
        self.rate_limited = Counter("revenge_rate_limited_total", "429 answers.", ["policy"], registry=r)
        # subtitles.md §6
        self.subtitle_extractions = Counter("revenge_subtitle_extractions_total", "Subtitle tracks converted.",
                                            ["result"], registry=r)
        self.subtitle_extraction_duration = Histogram(
            "revenge_subtitle_extraction_duration_seconds", "One extraction pass or one sidecar.", ["source"],
            buckets=(0.01, 0.05, 0.25, 1, 5, 15, 60, 300, 900, 3600), registry=r)
        self.subtitle_not_ready = Counter("revenge_subtitle_not_ready_total", "503 subtitle_not_ready answers.",
                                          registry=r)
        self.health_check_status = Gauge(
            "revenge_health_check_status", "1 passing, 0 failing (latest cached result).", ["check", "category"], registry=r
        )
        self.health_check_latency = Gauge(
            "revenge_health_check_latency_seconds", "Duration of the latest run of each check.", ["check"], registry=r
        )
        self.health_status = Gauge(
            "revenge_health_status", "1 for the current overall status, 0 for the others.", ["status"], registry=r
        )
        self.config_reloads = Counter(
            "revenge_config_reloads_total", "Reload attempts that changed something.", ["result"], registry=r
        )
        self.config_last_reload_success = Gauge(
            "revenge_config_last_reload_success", "1 after a good reload (and at start), 0 after a failed one.", registry=r
        )
        self.config_last_reload_ts = Gauge(
            "revenge_config_last_reload_timestamp_seconds", "Unix time of the last reload attempt.", registry=r
        )
        self.config_restart_required = Gauge(
            "revenge_config_restart_required", "1 while restart-only changes are pending.", registry=r
        )
        self.segment_cache_hits = Counter("revenge_segment_cache_hits_total", "Memory segment cache hits.", registry=r)
        self.segment_cache_misses = Counter("revenge_segment_cache_misses_total", "Memory segment cache misses.", registry=r)
        self.segment_cache_evictions = Counter(
            "revenge_segment_cache_evictions_total", "Memory segment cache entries evicted.", ["reason"], registry=r
        )
        self.segment_cache_bytes = Gauge("revenge_segment_cache_bytes", "Memory segment cache size.", registry=r)
        self.segment_cache_entries = Gauge("revenge_segment_cache_entries", "Memory segment cache entries.", registry=r)
        self.segment_cache_max_bytes = Gauge("revenge_segment_cache_max_bytes", "Memory segment cache bound.", registry=r)
        self.library_items = Gauge("revenge_library_media_items", "Rows in the catalog.", registry=r)
        self.library_scans = Counter("revenge_library_scans_total", "Finished scans.", ["result"], registry=r)
        self.library_scan_duration = Histogram(
            "revenge_library_scan_duration_seconds", "Scan wall time.", buckets=BUCKETS_D, registry=r
        )
        self.sessions_active = Gauge("revenge_playback_sessions_active", "Live playback sessions.", registry=r)
        self.playback_starts = Counter("revenge_playback_starts_total", "Sessions created.", ["mode"], registry=r)
        self.sessions_ended = Counter("revenge_playback_sessions_ended_total", "Sessions ended.", ["reason"], registry=r)
        self.sessions_rejected = Counter(
            "revenge_playback_sessions_rejected_total", "429 answers on session start.", ["scope"], registry=r
        )
        self.encoders_active = Gauge(
            "revenge_encoders_active", "Running encoders and remote jobs.", ["backend", "kind"], registry=r
        )
        self.encoder_starts = Counter("revenge_encoder_starts_total", "Encoder starts.", ["backend", "reason"], registry=r)
        self.encoder_failures = Counter(
            "revenge_encoder_failures_total", "Encoders that ended abnormally.", ["backend"], registry=r
        )
        self.transcode_speed = Gauge(
            "revenge_transcode_speed_ratio", "Encoding speed of running encoders, x realtime (mean).", registry=r
        )
        self.encoder_capacity = Gauge(
            "revenge_encoder_capacity_pixels_per_second",
            "Measured local encoding capacity (output pixels/s, tone-mapping weighted) the encoders bulkhead admits by.",
            registry=r,
        )
        self.encoder_load = Gauge(
            "revenge_encoder_load_pixels_per_second",
            "Realtime cost of the running (not suspended) local video encoders.", registry=r,
        )
        self.encoder_preemptions = Counter(
            "revenge_encoder_preemptions_total", "Encoders suspended to make room for a request a viewer waits on.",
            ["victim"], registry=r,
        )
        self.viewer_first = Counter(
            "revenge_viewer_first_yields_total", "Work stopped while a viewer waited for a video segment being "
            "encoded here: an audio encoder run ahead of it (audio), the background jobs' ffmpeg (background).",
            ["work"], registry=r,
        )
        self.transcode_duration = Histogram(
            "revenge_transcode_duration_seconds", "Time to produce one segment.", ["backend", "kind"],
            buckets=BUCKETS_B, registry=r,
        )
        self.segment_wait = Histogram(
            "revenge_segment_wait_seconds", "Wait for a not-yet-produced segment.", ["outcome"], buckets=BUCKETS_C,
            registry=r,
        )
        self.prefetch = Counter("revenge_prefetch_total", "Prefetch decisions.", ["result"], registry=r)
        self.bulkhead_rejected = Counter(
            "revenge_bulkhead_rejected_total", "Bulkhead rejections.", ["name", "reason"], registry=r
        )
        self.rate_limit_keys = Gauge("revenge_rate_limit_keys", "Keys in the rate-limit table.", ["policy"], registry=r)
        self.rate_limit_evicted = Counter(
            "revenge_rate_limit_keys_evicted_total", "LRU evictions of a full rate-limit table.", ["policy"], registry=r
        )
        self.breaker_state = Gauge(
            "revenge_circuit_breaker_state", "0 closed, 1 open, 2 half-open.", ["name"], registry=r
        )
        self.breaker_transitions = Counter(
            "revenge_circuit_breaker_transitions_total", "Breaker state changes.", ["name", "to"], registry=r
        )
        self.breaker_rejected = Counter(
            "revenge_circuit_breaker_rejected_total", "Calls rejected by a breaker.", ["name"], registry=r
        )
        self.retries = Counter("revenge_retries_total", "Retries (not first attempts).", ["operation"], registry=r)
        # metadata.md §5.8: provider calls by outcome (``cached`` = answered from the disk cache)
        self.metadata_requests = Counter("revenge_metadata_requests_total", "Metadata provider calls by outcome.",
                                         ["provider", "result"], registry=r)
        self.metadata_duration = Histogram("revenge_metadata_request_duration_seconds",
                                           "One metadata provider HTTP attempt.", ["provider"], buckets=BUCKETS_A,
                                           registry=r)
        self.bulkhead_active = Gauge("revenge_bulkhead_active", "Running callers.", ["name"], registry=r)
        self.bulkhead_queued = Gauge("revenge_bulkhead_queued", "Waiting callers.", ["name"], registry=r)
        self.supervisor_restarts = Counter(
            "revenge_supervisor_restarts_total", "Worker restarts.", ["child"], registry=r
        )
        self.supervisor_child_up = Gauge("revenge_supervisor_child_up", "1 while the worker runs.", ["child"], registry=r)
        self.lazy_init = Gauge(
            "revenge_lazy_init_seconds", "Time the last initialisation of a lazy service took.", ["service"], registry=r
        )
        self.disk_cache_hits = Counter("revenge_disk_cache_hits_total", "Disk cache hits.", registry=r)
        self.disk_cache_misses = Counter("revenge_disk_cache_misses_total", "Disk cache misses.", registry=r)
        self.disk_cache_evictions = Counter(
            "revenge_disk_cache_evictions_total", "Disk cache entries removed.", ["reason"], registry=r
        )
        self.disk_cache_bytes = Gauge("revenge_disk_cache_bytes", "Disk cache size.", registry=r)
        self.disk_cache_entries = Gauge("revenge_disk_cache_entries", "Disk cache entries.", registry=r)
        self.disk_cache_max_bytes = Gauge("revenge_disk_cache_max_bytes", "Disk cache quota; 0 = none.", registry=r)
        self.disk_cache_free_bytes = Gauge(
            "revenge_disk_cache_free_bytes", "Measured free space of the disk cache's filesystem.", registry=r
        )
        self.disk_cache_writes_skipped = Counter(
            "revenge_disk_cache_writes_skipped_total", "Segments not stored on disk.", ["reason"], registry=r
        )
        self.memory_pressure_ratio = Gauge("revenge_memory_pressure_ratio", "System memory in use, 0-1.", registry=r)
        self.memory_pressure_level = Gauge("revenge_memory_pressure_level", "0 normal, 1 high, 2 critical.", registry=r)
