"""The admission worker's Prometheus metrics."""

from prometheus_client import Counter, Histogram

ADMITTED = Counter("kinfer_admission_admitted_total", "Requests forwarded to a region", ["region"])
REJECTED = Counter("kinfer_admission_rejected_total", "Requests answered with an error", ["code"])
DEAD_LETTERS = Counter("kinfer_admission_dead_letters_total", "Records written to the DLQ")
DECISION_SECONDS = Histogram(
    "kinfer_admission_decision_seconds",
    "Time to decide one record",
    buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1),
)
