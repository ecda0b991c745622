"""Reporting: evidence bundles, time-to-patch figures and charts (see bundle.py)."""
