"""The gateway's Prometheus metrics, served on its own /metrics."""

from prometheus_client import Counter, Histogram

REQUESTS = Counter("kinfer_gateway_requests_total", "HTTP calls answered", ["endpoint", "status"])
LATENCY = Histogram(
    "kinfer_gateway_request_seconds",
    "Time to the response's first byte",
    ["endpoint"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
DISCONNECT_CANCELS = Counter(
    "kinfer_gateway_disconnect_cancels_total",
    "Requests cancelled because their HTTP caller went away (disconnected: before the answer; "
    "stream_closed: mid-stream)",
    ["why"],
)
