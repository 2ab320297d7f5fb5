"""The admission worker's Prometheus metrics."""

from prometheus_client import Counter, Gauge, Histogram

ADMITTED = Counter("kinfer_admission_admitted_total", "Requests forwarded to a region", ["tier", "region"])
REJECTED = Counter("kinfer_admission_rejected_total", "Requests answered with an error", ["tier", "code"])
QUEUED = Counter("kinfer_admission_queued_total", "Requests put in the delay queue", ["tier"])
FAILED_OVER = Counter(
    "kinfer_admission_failed_over_total",
    "Requests sent to another region because a breaker was open",
    ["from_region", "to_region"],
)
CACHE = Counter(
    "kinfer_admission_cache_total", "Response-cache lookups (hit rate per tenant)", ["result", "tenant"]
)
BREAKER_STATE = Gauge(
    "kinfer_admission_breaker_state", "1 for the current state of each breaker", ["region", "model", "state"]
)
DEAD_LETTERS = Counter("kinfer_admission_dead_letters_total", "Records written to the DLQ")
REFUSALS_WITHHELD = Counter(
    "kinfer_admission_refusals_withheld_total",
    "Refusals of records that did not prove their tenant (secured pipeline): dead-lettered, never "
    "written to the reply topic they name, which may be another tenant's",
    ["code"],
)
DUPLICATES = Counter(
    "kinfer_admission_duplicates_total",
    "Records dropped because their request id was decided already (redeliveries, reused ids)",
)
UNDELIVERABLE = Counter(
    "kinfer_admission_undeliverable_total",
    "Effects that could not be carried out and were replaced (answer -> dead letter, forward -> unavailable)",
    ["effect"],
)
DECISION_SECONDS = Histogram(
    "kinfer_admission_decision_seconds",
    "Time to decide one record",
    buckets=(0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5),
)
REDIS_ROUND_TRIPS = Counter(
    "kinfer_admission_redis_round_trips_total", "Round trips to Redis (each carries one or more commands)"
)
REDIS_COMMANDS = Counter(
    "kinfer_admission_redis_commands_total", "Redis commands sent (coalesced per loop turn)"
)
CANCELS = Counter(
    "kinfer_admission_cancels_total", "Cancel records, by what they did (CancelAck status)", ["status"]
)
CANCELLED = Counter(
    "kinfer_admission_cancelled_total", "Requests answered cancelled, by where they were stopped", ["where"]
)
CANCEL_SAVED_TOKENS = Counter(
    "kinfer_admission_cancel_saved_tokens_total",
    "Tokens a cancel spared (max_tokens not generated), by where the request was stopped",
    ["where"],
)

FORWARDED = Counter(
    "kinfer_admission_forwarded_total",
    "Requests routed to another region's cluster than the one they entered (linked clusters)",
    ["from_region", "to_region"],
)
RESIDENCY_REFUSED = Counter(
    "kinfer_admission_residency_refusals_total",
    "Requests of a resident tenant refused because they entered another region's cluster",
    ["region"],
)
PEER_HEARTBEAT_AGE = Gauge(
    "kinfer_admission_peer_heartbeat_age_seconds",
    "Age of the newest MirrorMaker 2 heartbeat from each peer region's cluster (replication lag bound)",
    ["peer"],
)
