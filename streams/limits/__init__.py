"""Tiered rate limits: tier tables, token buckets, the shared Redis limiter."""
