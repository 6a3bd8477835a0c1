"""Several instances as one service over PostgreSQL and Redis (cluster.md).

``link`` is the Redis connection with its timeouts and metrics; ``clock`` the offset to Redis's
clock; ``nodes`` the node registry (claim, heartbeat, live nodes, the shared fingerprints);
``events`` the pub/sub channel; ``ratelimit`` the cluster-wide GCRA buckets; ``leases`` the segment
leases and holder sets (§4); ``peers`` the peer segment fetch client (§5); ``service`` builds them
for the runtime and answers the ``redis``/``cluster`` checks and ``/api/v1/admin/cluster``.
"""
