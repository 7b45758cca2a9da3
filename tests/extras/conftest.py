"""Fixtures for the beyond-torch tests (helpers live in ``extras_helpers``)."""

from .extras_helpers import sim, trace_backend

__all__ = ["sim", "trace_backend"]
