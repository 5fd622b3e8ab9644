"""Feature registry and the causal feature builder."""
