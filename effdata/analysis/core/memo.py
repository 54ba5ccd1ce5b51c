"""A pure function's results remembered by the content of its arguments, within one process.

The from-scratch laws and their audit's refits depend on a table's from-scratch points alone, and the committed
reports share a few from-scratch tables among many (v4's 24 runs under six reports: the fine-tuning and
pretraining LR checks change only the fine-tunes). Fitted once per process, they are read back for the next table
with the same points: the same numbers, because the same function ran on the same bytes. Keys are a hash of the
pickled arguments (arrays by their bytes, so a point that differs in its last bit is another key); results are
copied on the way out, so that no caller can change what the next one reads. A small bound keeps a long process
(a notebook, `benchmarks/regenerate_reports.py`) from growing.
"""
from __future__ import annotations

import copy
import functools
import hashlib
import pickle
from collections import OrderedDict
from typing import Callable

MAX_ENTRIES = 64
_enabled = True


def remember(enabled: bool) -> None:
    """Turn remembering on or off for the whole process: a benchmark that times these functions turns it off, so
    that a repeat is computed again rather than read back."""
    global _enabled
    _enabled = enabled


def by_content(ignore: tuple[str, ...] = ()) -> Callable:
    """Remember `function`'s results by its arguments' content; keyword arguments named in `ignore` (progress
    bars) are passed through but not part of the key. `function.cache_clear()` forgets them all."""
    def decorate(function: Callable) -> Callable:
        remembered: OrderedDict[bytes, object] = OrderedDict()

        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            if not _enabled:
                return function(*args, **kwargs)
            keyed = {k: v for k, v in sorted(kwargs.items()) if k not in ignore}
            key = hashlib.sha256(pickle.dumps((args, keyed), protocol=pickle.HIGHEST_PROTOCOL)).digest()
            if key in remembered:
                remembered.move_to_end(key)
            else:
                remembered[key] = function(*args, **kwargs)
                while len(remembered) > MAX_ENTRIES:
                    remembered.popitem(last=False)
            return copy.deepcopy(remembered[key])

        wrapper.cache_clear = remembered.clear
        return wrapper
    return decorate
