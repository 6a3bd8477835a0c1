"""cluster.md §10's metrics, declared once; no label holds a node id or a key."""
from __future__ import annotations

from ..observability.instruments import BUCKETS_A, BUCKETS_C
from ..observability.metrics import Counter, Gauge, Histogram, Registry


class ClusterInstruments:
    def __init__(self, r: Registry) -> None:
        self.nodes = Gauge("revenge_cluster_nodes", "Live nodes of the service, as this node last saw them.",
                           registry=r)
        self.clock_offset = Gauge("revenge_cluster_clock_offset_seconds", "Redis's clock minus this node's.",
                                  registry=r)
        self.fail_open = Gauge("revenge_cluster_fail_open", "1 while Redis is unreachable and this node serves "
                                                            "its cached sessions alone.", registry=r)
        self.peer_fetches = Counter("revenge_cluster_peer_fetches_total", "Segment fetches from peers.", ["result"],
                                    registry=r)
        self.peer_fetch_seconds = Histogram("revenge_cluster_peer_fetch_duration_seconds", "Peer segment fetch time.",
                                            buckets=BUCKETS_C, registry=r)
        self.leases = Counter("revenge_cluster_leases_total", "Segment lease attempts.", ["result"], registry=r)
        self.takeovers = Counter("revenge_cluster_lease_takeovers_total", "Leases taken from a dead node.",
                                 registry=r)
        self.duplicates = Counter("revenge_cluster_segment_duplicates_total",
                                  "Segments published without holding their lease (must stay 0).", registry=r)
        self.reencodes = Counter("revenge_cluster_reencodes_total", "Segments encoded again.", ["cause"], registry=r)
        self.uncoordinated = Counter("revenge_cluster_uncoordinated_encodes_total",
                                     "Encodes without a lease (Redis or the owner unreachable).", registry=r)
        self.redis_seconds = Histogram("revenge_redis_command_duration_seconds", "Redis round trips.", ["op"],
                                       buckets=BUCKETS_A, registry=r)
        self.redis_errors = Counter("revenge_redis_errors_total", "Failed Redis calls.", ["kind"], registry=r)
        for result in ("ok", "not_found", "not_ready", "error", "unreachable"):
            self.peer_fetches.labels(result)
        for result in ("won", "lost"):
            self.leases.labels(result)
        for cause in ("lost", "evicted"):
            self.reencodes.labels(cause)
        for kind in ("connection", "timeout", "script"):
            self.redis_errors.labels(kind)
        self.fail_open.set(0)
