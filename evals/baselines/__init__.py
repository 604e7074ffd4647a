"""Baselines that say what a model learned beyond counting: character n-gram models (ngram.py),
their cache beside the corpus and `gen baseline` (command.py)."""
