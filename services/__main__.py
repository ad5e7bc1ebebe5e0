"""`python -m bbrange`: the same CLI as the `bbrange` script, for child processes of the local range."""

from bbrange.cli import app

app(prog_name="bbrange")
