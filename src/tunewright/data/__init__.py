"""Read, check and split datasets into `Example` records."""
