"""`nndb secrets` commands."""

import typer

app = typer.Typer(help="secrets commands", no_args_is_help=True)
