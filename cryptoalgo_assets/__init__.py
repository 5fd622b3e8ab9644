"""Thin Dagster layer over cryptoalgo_core: assets, checks, jobs, schedules, CLI."""
