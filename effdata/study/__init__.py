"""Study layer: study files -> runs -> executed anywhere (local workers, SLURM) -> the results table.

Loading and planning a study (`effdata.study.study`, `effdata.study.cost`) never imports torch."""
