"""livecommerce: cross-border livestream shopping backend."""

__version__ = "0.1.0"
