"""What the steps of one build share (the contract between cartwatch/build.py and each step).

The rules are parsed once per build and handed to every step; the named SQL parameters are the
ones every sql/ file reads; frames that several steps read are read once and kept for the build.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable

import polars as pl

from transforms.rules import Rules
from transforms.units import UnitConverter


@dataclass
class BuildContext:
    rules: Rules
    params: dict
    _frames: dict = field(default_factory=dict, repr=False)

    @cached_property
    def converter(self) -> UnitConverter:
        return UnitConverter(self.rules)

    def frames(self, key: str, read: Callable[[], tuple[pl.DataFrame, ...]]) -> tuple[pl.DataFrame, ...]:
        """Frames that more than one step reads, read on first use and kept for the build."""
        if key not in self._frames:
            self._frames[key] = read()
        return self._frames[key]
