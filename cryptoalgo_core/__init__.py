"""cryptoalgo_core: the pure, typed library behind the cryptoalgo Dagster graph.

Never imports dagster (a test enforces it). Functions are deterministic given their inputs and seed.
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
