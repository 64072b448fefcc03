"""The package version (recorded with every result row and sent as the download user agent)."""

__version__ = "0.1.0"
