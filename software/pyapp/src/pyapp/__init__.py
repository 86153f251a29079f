"""pyapp: a small command-line app shipped with its own CPython by coach."""

__version__ = "1.0.0"
