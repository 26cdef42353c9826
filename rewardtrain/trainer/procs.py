"""Launching a training run as child processes that die with their parent. Imports no torch.

`launch()` starts `python -m rewardtrain.trainer.procs --expect-parent PID -- <command>`: that small wrapper asks Linux
to send it SIGTERM when its parent dies (prctl PR_SET_PDEATHSIG, which survives execve), checks the parent is
still the one expected (it may have died before the prctl), then execs the real command — `torchrun` for
several GPUs or `python -m rewardtrain.trainer.training` for one process. torchrun forwards SIGTERM to its workers, and
each worker sets the same signal against torchrun in `rewardtrain.trainer.training.main`, so the whole tree goes.
No `preexec_fn`: it is unsafe in a threaded parent such as a Celery worker.

Caveat of PR_SET_PDEATHSIG: it fires when the *thread* that forked the child exits, so call `launch()` from a
thread that lives as long as the run (a Celery prefork child's main thread does).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

PR_SET_PDEATHSIG = 1


def set_parent_death_signal(expected_parent: int | None = None, sig: int = signal.SIGTERM) -> None:
    """Ask the kernel to send `sig` to this process when its parent dies (Linux only)."""
    if not sys.platform.startswith("linux"):
        raise OSError("parent-death signals need Linux (prctl PR_SET_PDEATHSIG)")
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if expected_parent is not None and os.getppid() != expected_parent:
        os.kill(os.getpid(), sig)  # the parent died before the prctl took effect


def training_command(
    spec_path: str | Path, nproc_per_node: int = 1, python: str = sys.executable
) -> list[str]:
    """The command that runs one training spec: one process, or torchrun with one process per GPU."""
    if nproc_per_node < 1:
        raise ValueError(f"nproc_per_node must be at least 1, got {nproc_per_node}")
    tail = ["-m", "rewardtrain.trainer.training", "--spec", str(spec_path)]
    if nproc_per_node == 1:
        return [python, *tail]
    return [
        python,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc_per_node}",
        *tail,
    ]


def launch(command: Sequence[str], **popen_kwargs) -> subprocess.Popen:
    """Start `command` (e.g. from `training_command`) so that it receives SIGTERM if this process dies."""
    wrapper = [
        sys.executable,
        "-m",
        "rewardtrain.trainer.procs",
        "--expect-parent",
        str(os.getpid()),
        "--",
        *command,
    ]
    return subprocess.Popen(wrapper, **popen_kwargs)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="exec a command that dies with this process's parent")
    parser.add_argument("--expect-parent", type=int, required=True)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command to run")
    set_parent_death_signal(args.expect_parent)
    os.execvp(command[0], command)  # noqa: S606 - replacing ourselves is the point


if __name__ == "__main__":
    main()
