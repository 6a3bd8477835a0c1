"""Typed, validated settings: schema (dataclasses), loader (layers), and units (durations, sizes)."""
from .loader import load_config, load_layers
from .schema import Config

__all__ = ["Config", "load_config", "load_layers"]
