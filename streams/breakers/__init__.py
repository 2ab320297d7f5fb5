"""Circuit breakers per (region, model), driven by worker outcomes."""
