"""The embedded default model `tiny`: a character-level GPT-2 shipped in this folder."""

from __future__ import annotations

from pathlib import Path

TINY_DIR = Path(__file__).parent / "model"
"""The folder `AutoModelForCausalLM` and `AutoTokenizer` load `tiny` from."""
