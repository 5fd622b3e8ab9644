"""I/O layer: the market store and the exchange/file/synthetic sources.

Modules here never import dagster, except `resources.dagster_resources`, which wraps them as
Dagster ConfigurableResources.
"""
