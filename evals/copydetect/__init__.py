"""The copy detector: how much of a sample was copied from the training text, and the longest copy.

One package, its own room: the index (copying.py: window hashes with a presence filter and a
suffix array, cached beside the corpus), the suffix-array searches (suffixes.py), the window
hashes shared with the repetition metric (grams.py), and the optional C inner loops
(_copyfast.c, dispatched by compiled.py; numpy versions give the same figures).
"""
