"""Running kinfer: local stack, topics, settings, the kinfer CLI."""
