"""``kill -9`` in the middle of saves: the registry always loads a whole version, the old or the new.

A child process saves versions of one product in a loop, each with a 20 MB memory filled with that
version's marker (also written in its product.yaml), so most of its time is spent inside a save.
The parent kills it with SIGKILL at random moments, round after round, and checks what is left.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from edge.products.registry import ProductRegistry
from tests.registry_support import make_product

REPO = Path(__file__).resolve().parents[1]
TOKENS, CHANNELS = 5000, 1000  # float32: 20 MB a version
ROUNDS = 5
LEFTOVER = re.compile(r"\.v\d+\.tmp-\d+|\.CURRENT\..+\.tmp")

# Saves forever, printing each saved version; keeps only the last versions (renamed away first, so
# a kill during the clean-up never leaves a partly deleted version folder).
CHILD = f"""
import os, shutil, sys
import numpy as np
from pathlib import Path
from edge.products.registry import ProductRegistry
from tests.registry_support import make_product

state, seed = Path(sys.argv[1]), int(sys.argv[2])
registry = ProductRegistry(state)
rng = np.random.default_rng(seed)
while True:
    marker = float(rng.integers(1, 1_000_000))
    memory = np.full(({TOKENS}, {CHANNELS}), marker, np.float32)
    saved = registry.save(make_product(memory=memory, marker=marker), note=f"marker {{marker}}")
    print(saved.version, flush=True)
    for old in registry.versions("cookie"):
        if old < saved.version - 1:
            gone = registry.folder("cookie") / f".gone-{{old}}"
            os.rename(registry.folder("cookie") / f"v{{old:04d}}", gone)
            shutil.rmtree(gone)
"""


def run_and_kill(state: Path, seed: int, delay_s: float) -> list[int]:
    """Start the saving child, SIGKILL it ``delay_s`` after its first save; the versions it reported."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(state), str(seed)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        first = child.stdout.readline()  # type: ignore[union-attr]
        assert first.strip().isdigit(), f"the child did not save: {first!r}"
        time.sleep(delay_s)
        os.kill(child.pid, signal.SIGKILL)
        rest, _ = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    return [int(line) for line in [first, *rest.splitlines()] if line.strip()]


def assert_whole(registry: ProductRegistry, version: int | None = None) -> int:
    product = registry.load("cookie", version=version)
    assert product.memory is not None and product.memory.shape == (TOKENS, CHANNELS)
    marker = product.enrollment["marker"]
    assert product.memory.min() == marker == product.memory.max(), f"{product.label()} memory is not its own"
    return product.version


def test_kill_9_mid_save_leaves_a_whole_current_version(tmp_path: Path) -> None:
    registry = ProductRegistry(tmp_path)
    folder = tmp_path / "products" / "cookie"
    chance = random.Random(20261130)
    killed_mid_save = 0
    for round_index in range(ROUNDS):
        reported = run_and_kill(tmp_path, seed=round_index, delay_s=chance.uniform(0.0, 0.3))
        current = assert_whole(registry)
        assert current in (
            reported[-1],
            reported[-1] + 1,
        )  # the last finished save, or the one being finished
        for version in registry.versions("cookie"):
            assert_whole(registry, version)
        leftovers = [path.name for path in folder.iterdir() if LEFTOVER.fullmatch(path.name)]
        newest = registry.versions("cookie")[-1]
        killed_mid_save += bool(leftovers) or newest > current or current > reported[-1]
    # evidence that kills landed inside saves: a temp folder or CURRENT temp file left behind, a
    # version renamed into place but not yet current, or a save finished but not yet reported
    assert killed_mid_save >= 1
    memory = np.full((TOKENS, CHANNELS), 7.0, np.float32)
    saved = registry.save(make_product(memory=memory, marker=7.0))
    assert assert_whole(registry) == saved.version
    assert not [path for path in folder.iterdir() if ".tmp" in path.name]
