"""One module per ``nndb`` command group; each exposes ``app`` (a ``typer.Typer``) or a command function."""
