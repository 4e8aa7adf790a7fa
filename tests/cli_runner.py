"""Running the command line in tests: in-process through ``digitnet.cli.main`` (fast), or
the real entry point ``python3 -m digitnet`` in a subprocess."""
from __future__ import annotations

import io
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

from digitnet.cli import main

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()


def run_cli(*argv) -> Result:
    """``main(argv)`` in-process, capturing stdout/stderr and the exit status."""
    out, err, code = io.StringIO(), io.StringIO(), 0
    with redirect_stdout(out), redirect_stderr(err):
        try:
            main([str(a) for a in argv])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return Result(code, out.getvalue(), err.getvalue())


def run_process(*argv, timeout: float = 120) -> Result:
    """The real entry point: ``python3 -m digitnet ...`` from the repo root."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    env["PYTHONPATH"] = str(REPO / "py" / "src")
    p = subprocess.run([sys.executable, "-m", "digitnet", *map(str, argv)], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=timeout)
    return Result(p.returncode, p.stdout, p.stderr)
