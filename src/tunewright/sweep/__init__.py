"""`tunewright sweep`: learning rate x epochs x rank (x label weight) chosen by successive halving on the
validation split's task metric, within a time budget, never looking at the test split. grid.py and
halving.py decide what to train (no torch), run.py trains and validates, table.py is the sweep.json record."""
