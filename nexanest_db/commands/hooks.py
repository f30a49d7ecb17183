"""`nndb hooks` commands."""

import typer

app = typer.Typer(help="hooks commands", no_args_is_help=True)
