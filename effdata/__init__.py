"""effdata: measure the effective data transferred by pretraining (Hernandez et al. 2021)."""

__version__ = "0.1.0"
