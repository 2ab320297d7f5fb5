"""A worker as a group of ranks that serve one model together (tensor x pipeline parallel).

Rank 0 is the worker: it alone talks to Kafka and runs the continuous batch. Every other
rank holds a shard of the model and a replica of the batch's bookkeeping; rank 0 sends each
change of the batch (join, step, remove) as a command and each step's picked tokens, so
every replica's KV cache (its heads, its layers) changes exactly as rank 0's does. The
model's own collectives (tensor parallel) and point-to-point sends (pipeline parallel) run
inside each step. A rank that dies or hangs fails the group's next collective; the group
then exits non-zero and Kafka moves its partitions to another worker.
"""
