"""Optimization: presets and search space, the fold objective, the prediction cache, the study and the holdout."""
