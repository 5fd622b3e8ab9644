"""Stage modules: one per pipeline stage, each holding its assets and their checks."""
