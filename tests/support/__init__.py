"""The unit tests' fixtures and helpers, a module per cluster they start (see tests/conftest.py)."""
