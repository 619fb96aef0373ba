"""Local LoRA training on TRL and accelerate: supervised (SFT), preference pairs (DPO), graded rewards (GRPO)."""

from pytest_autoevolve.loops.training.base import MANIFEST, METHODS, Job, TrainSettings, base_of, next_version
from pytest_autoevolve.loops.training.launch import train

__all__ = ["MANIFEST", "METHODS", "Job", "TrainSettings", "base_of", "next_version", "train"]
