"""End-to-end tests: real ``patchgate`` processes on real databases.

The harness that starts, probes and stops those processes is ``tests.e2e.harness``.
"""
