"""Nested settings: one merge for the config, the studies' blocks and the data layer.

Free of every third-party import, so that any rule's environment can use it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping


def merge(default: Mapping, given: Mapping | None) -> dict:
    """``given`` merged over a deep copy of ``default`` (nested mappings merged key by key)."""
    out = copy.deepcopy(dict(default))
    for k, v in (given or {}).items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out
