"""The command line's wiring: a module of ``globalconv.cli`` per command holds its parser and its
handler, parsing loads none of the heavy libraries, and the names the parsers offer are the
library's."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from globalconv import cli
from globalconv.cli import bench, common
from globalconv.cli import lengths as lengths_command

SRC = str(Path(__file__).resolve().parents[1] / "src")
COMMANDS = [
    ["train"],
    ["compare"],
    ["eval", "run"],
    ["sweep"],
    ["runs", "dir"],
    ["kernels", "run", "--out", "x"],
    ["lengths"],
    ["tasks"],
    ["report", "runs"],
    ["bench", "op"],
    ["bench", "mixers"],
    ["bench", "generate"],
    ["bench", "train"],
    ["bench", "gpu"],
    ["finetune", "model", "--out", "x"],
]


@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_every_handler_lives_in_the_command_line_package(argv):
    handler = cli.build_parser().parse_args(argv).func
    assert handler.__module__ == f"globalconv.cli.{argv[0]}"


def test_parsing_every_command_loads_no_torch_matplotlib_or_transformers():
    code = (
        "import sys\n"
        "from globalconv import cli\n"
        f"for argv in {COMMANDS!r}:\n"
        "    cli.build_parser().parse_args(argv)\n"
        "print(sorted({'torch', 'matplotlib', 'transformers'} & set(sys.modules)))\n"
    )
    env = {**os.environ, "PYTHONPATH": SRC}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_names_the_parsers_offer_are_the_librarys():
    from globalconv import ops
    from globalconv.analysis import bench_op, bench_train, lengths
    from globalconv.train import executors

    assert common.EXECUTORS == executors.EXECUTORS
    assert bench.OP_PARTS == bench_op.PARTS
    assert bench.MODES == ops.MODES
    assert bench.TRAIN_TASKS == tuple(bench_train.TASKS)
    assert bench.TRAIN_VARIANTS == tuple(bench_train.VARIANTS)
    assert lengths_command.MODELS == tuple(lengths.MODELS)
