"""The single entry point, `bbrange`: training, serving and attacking."""

from __future__ import annotations

import typer

from bbrange.oracle.cli import app as oracle_app

app = typer.Typer(help="blackbox-range: black-box attacks on deployed classifiers.", no_args_is_help=True)
app.add_typer(oracle_app, name="oracle")
