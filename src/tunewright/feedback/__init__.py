"""The feedback loop: every served exchange and its rating in SQLite, exported as new training rows."""
