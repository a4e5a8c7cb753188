"""The command-line interface: thin adapters from typer options to the pure core."""
