"""The worker's Prometheus metrics."""

from prometheus_client import Counter, Gauge, Histogram

ANSWERS = Counter(
    "kinfer_worker_answers_total",
    "Terminal answers sent (error rate per region and model)",
    ["status", "region", "model"],
)
REQUEST_SECONDS = Histogram(
    "kinfer_worker_request_seconds",
    "A request's creation to its answer, end to end as its worker sees it (the design's p99 target: 1 s)",
    ["region"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
UTILISATION = Gauge(
    "kinfer_worker_utilisation",
    "Share of wall time the model computed (prefill and decode) over the last interval: the design's "
    "accelerator utilisation, target 0.70-0.85",
    ["device"],
)
WAITING = Gauge("kinfer_worker_waiting_requests", "Requests taken in and waiting to join the running batch")
BATCH_MIN = Gauge(
    "kinfer_worker_batch_min_requests",
    "Smallest batch a worker starts (one request: it never holds a lone request back for company); "
    "the design's target is a mean batch above twice this",
)
DUPLICATES = Counter(
    "kinfer_worker_duplicates_skipped_total", "Dispatched copies of requests already answered or in flight"
)
BATCH_SIZE = Histogram(
    "kinfer_worker_batch_size", "Requests per model batch", buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256)
)
BATCH_TOKENS = Histogram(
    "kinfer_worker_batch_tokens",
    "Budgeted tokens per model batch",
    buckets=(64, 256, 512, 1024, 2048, 4096, 8192, 16384),
)
COMPUTE_SECONDS = Histogram("kinfer_worker_compute_seconds", "Model time per batch")
QUEUE_SECONDS = Histogram("kinfer_worker_queue_seconds", "Request creation to start of compute")
GENERATED_TOKENS = Counter("kinfer_worker_generated_tokens_total", "New tokens generated")
ABORTED_TRANSACTIONS = Counter("kinfer_worker_aborted_transactions_total", "Reply transactions aborted")
TRANSACTION_SECONDS = Histogram(
    "kinfer_worker_transaction_seconds",
    "One reply transaction, begin to commit (on the commit thread while the batch decodes)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0),
)
TRANSACTION_RECORDS = Histogram(
    "kinfer_worker_transaction_records",
    "Records (answers, events, dead letters) in one reply transaction",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
PARAMETER_BYTES = Gauge("kinfer_worker_parameter_bytes", "Memory of the served model's weights (rank 0's)")
RANK_PARAMETER_BYTES = Gauge(
    "kinfer_worker_rank_parameter_bytes", "Weights each rank of a parallel worker holds", ["rank"]
)
TOKENS_PER_SECOND = Gauge(
    "kinfer_worker_tokens_per_second", "New tokens generated per second (last interval)"
)
CPU_UTILISATION = Gauge("kinfer_worker_cpu_utilisation", "Share of the machine's cores this worker kept busy")
GPU_UTILISATION = Gauge("kinfer_worker_gpu_utilisation", "GPU busy share reported by NVML (CUDA workers)")
GPU_MEMORY_BYTES = Gauge("kinfer_worker_gpu_memory_bytes", "GPU memory allocated by torch (CUDA workers)")
POOL_LAG = Gauge("kinfer_pool_lag_records", "Dispatch records the region's workers have not committed past")
POOL_MEMBERS = Gauge("kinfer_pool_members", "Live pool members by state", ["state"])
POOL_ACTIONS = Counter("kinfer_pool_actions_total", "Promotions and releases sent", ["kind"])
CANCELLED = Counter(
    "kinfer_worker_cancelled_total",
    "Requests answered cancelled, by where they were stopped (dispatched: before joining the batch; "
    "decoding: mid-decode)",
    ["where"],
)
CANCEL_SAVED_TOKENS = Counter(
    "kinfer_worker_cancel_saved_tokens_total",
    "Tokens a cancel spared (max_tokens not generated), by where the request was stopped",
    ["where"],
)
QUEUE_WAIT_SECONDS = Histogram(
    "kinfer_worker_queue_wait_seconds",
    "Time a request waited in the worker's fair queue before joining the batch, per priority band and tenant",
    ["band", "tenant"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
