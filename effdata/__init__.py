"""effdata: measure the effective data transferred by pretraining (Hernandez et al. 2021)."""

from effdata import numerics as _numerics

_numerics.pin()   # before anything imports numpy: the same analysis numbers on every x86-64 CPU (effdata/numerics.py)

__version__ = "0.1.0"
