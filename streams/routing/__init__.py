"""Region and partition routing by consistent hashing."""
