"""``python -m xlingbench``: the command line, for environments without the console script."""
from xlingbench.cli.main import app

app(prog_name="xlingbench")
