"""`python -m voxpop` runs the CLI."""

from voxpop.serving_cli import main

main()
