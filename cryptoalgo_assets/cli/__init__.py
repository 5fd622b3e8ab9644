"""`cryptoalgo` command line. Every command submits the code location's jobs through the Dagster instance at
DAGSTER_HOME and follows them, so each run shows in the UI (`dagster dev`) with its origin.

Exit codes: 0 success, 1 a run failed, 2 bad input (nothing ran or was written), 3 a blocking gate failed,
130 interrupted (Ctrl-C cancels the submitted runs).
"""

from __future__ import annotations

import click

from cryptoalgo_assets.cli.demo import demo
from cryptoalgo_assets.cli.ingest import ingest, summary
from cryptoalgo_assets.cli.live import enable, live, paper, promote, rollback, stage
from cryptoalgo_assets.cli.optimize import launch, runs
from cryptoalgo_assets.cli.research import features, train
from cryptoalgo_assets.cli.validate import checklist, validate


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """cryptoalgo: cost-adjusted, robust edge research on a Dagster asset graph."""


for _cmd in (ingest, summary, features, train, demo, launch, runs, validate, checklist, stage, promote, rollback,
             live, paper, enable):
    main.add_command(_cmd)

__all__ = ["main"]
