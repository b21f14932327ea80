"""`python -m tunewright` runs the CLI."""

from tunewright.cli import main

main()
