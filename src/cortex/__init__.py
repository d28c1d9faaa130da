"""Cortex: move vector collections into Qdrant, fast, resumably and provably intact."""

from __future__ import annotations

__version__ = "0.1.0"
