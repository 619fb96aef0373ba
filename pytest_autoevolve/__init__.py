"""pytest-autoevolve: a pytest plugin and CI regression gate for LLM models and agents."""

from __future__ import annotations

__version__ = "0.1.0"
