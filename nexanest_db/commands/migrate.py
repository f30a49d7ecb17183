"""`nndb migrate` commands."""

import typer

app = typer.Typer(help="migrate commands", no_args_is_help=True)
