"""Child process of the SIGKILL test: runs the hourly ticks of a world (JSON on argv) one after the other."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import dagster as dg

from tests.assets import live_world as lw


def main(arg: str) -> None:
    spec = json.loads(arg)
    w = {**spec, "db": Path(spec["db"]), "data": Path(spec["data"]), "models": Path(spec["models"])}
    inst = dg.DagsterInstance.ephemeral()
    res = lw.resources(w)
    for t in spec["ticks"]:
        lw.tick(w, spec["coin"], int(t), inst, res)
        print(f"tick {t} done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
