"""Error types shared by the library, the resources and the CLI."""

from __future__ import annotations


class CryptoalgoError(Exception):
    """Base class: every error the user should see with a clear message."""


class ConfigError(CryptoalgoError):
    """A configuration file or value is wrong. The message names the file, key and problem."""


class UnknownCoinError(ConfigError):
    """A coin that is not in config/coins.yaml was requested."""


class DataValidationError(CryptoalgoError):
    """Input data is malformed in a way that cannot be split into clean rows and rejects."""
