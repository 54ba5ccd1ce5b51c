"""Analysis layer: a results table -> effective data -> fitted laws -> figures and a report. Never torch."""
