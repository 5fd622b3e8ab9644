"""Purged, embargoed walk-forward model training with calibrated probabilities."""
