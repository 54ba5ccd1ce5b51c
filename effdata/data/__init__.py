"""Data layer: corpora -> the shared tokenizer -> token files. No torch; imports only effdata.paths."""
