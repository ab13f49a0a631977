"""A real-time presence and routing-status monitor for Genesys Cloud contact centres."""

__version__ = "0.1.0"
