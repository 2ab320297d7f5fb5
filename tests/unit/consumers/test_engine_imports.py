"""The echo and fail test models start without torch: the suite starts many such workers,
and each would otherwise pay torch's import (seconds on a small machine) before it serves."""

import subprocess
import sys


def test_echo_and_fail_workers_do_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from kinfer.consumers.engine import load_runner\n"
        "from kinfer.schemas import SamplingParams\n"
        "for name in ('echo', 'fail'):\n"
        "    load_runner(name).sampling_problem(SamplingParams(logit_bias={5: 1.0}))\n"
        "import kinfer.consumers.worker\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-1000:]
