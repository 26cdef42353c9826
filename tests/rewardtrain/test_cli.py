"""The command line the worker launches: one process, and two processes under torchrun (DDP over gloo)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from transformers import AutoModelForSequenceClassification

from rewardtrain.trainer import checkpoints, procs
from rewardtrain.trainer.data import write_pairs_jsonl
from rewardtrain.trainer.training import run_spec
from tests.rewardtrain.rewardtrain_toys import polite_rude_pairs

REPO = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def _spec(tmp_path: Path, base_model: str, **config) -> Path:
    write_pairs_jsonl(polite_rude_pairs(96, seed=5), tmp_path / "pairs.jsonl")
    spec = {
        "config": {
            "base_model": base_model,
            "lr": 3e-3,
            "epochs": 2,
            "batch_size": 8,
            "max_length": 48,
            "eval_fraction": 0.25,
            "progress_every": 1,
            "num_threads": 1,
            **config,
        },
        "pairs_path": str(tmp_path / "pairs.jsonl"),
        "output_dir": str(tmp_path / "run"),
        "progress_path": str(tmp_path / "progress.jsonl"),
        "stop_path": str(tmp_path / "STOP"),
    }
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    return path


def _events(tmp_path: Path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "progress.jsonl").read_text().splitlines()]


def test_ddp_with_two_cpu_processes_trains_and_saves_one_model(tiny_model, tmp_path):
    spec = _spec(tmp_path, tiny_model)
    done = subprocess.run(
        procs.training_command(spec, nproc_per_node=2), cwd=REPO, env=_env(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]

    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["status"] == "completed"
    assert result["metrics"]["world_size"] == 2
    assert result["metrics"]["eval_accuracy"] >= 0.9
    events = _events(tmp_path)
    assert [e["event"] for e in events][0] == "start" and events[-1]["event"] == "done"
    steps = [e["step"] for e in events if e["event"] == "progress"]
    assert steps == list(range(1, result["metrics"]["steps"] + 1))  # rank 0 alone writes progress
    AutoModelForSequenceClassification.from_pretrained(result["model_dir"])


def test_killed_process_resumes_from_its_checkpoint(tiny_model, tmp_path):
    spec = _spec(tmp_path, tiny_model, checkpoint_every=2, epochs=6)
    command = procs.training_command(spec)
    child = subprocess.Popen(command, cwd=REPO, env=_env(), stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    latest = None
    while time.monotonic() < deadline and child.poll() is None:
        latest = checkpoints.latest(tmp_path / "run" / "checkpoints")
        if latest is not None and latest.step >= 4:
            break
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert latest is not None and latest.step >= 4, "no checkpoint before the kill"
    assert not (tmp_path / "run" / "result.json").exists()

    done = subprocess.run(command, cwd=REPO, env=_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["resumed_from_step"] >= 4
    assert result["metrics"]["steps_run"] == result["metrics"]["steps"] - result["resumed_from_step"]


def test_stop_file_cancels_the_run(tiny_model, tmp_path):
    spec = _spec(tmp_path, tiny_model)
    (tmp_path / "STOP").touch()
    assert run_spec(json.loads(spec.read_text())) == 3
    assert json.loads((tmp_path / "run" / "result.json").read_text()) == {"status": "cancelled", "step": 0}
    assert _events(tmp_path)[-1]["event"] == "cancelled"


def test_launched_child_dies_with_its_parent(tmp_path):
    pid_file = tmp_path / "child.pid"
    (tmp_path / "child.py").write_text(
        f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(60)\n"
    )
    (tmp_path / "parent.py").write_text(
        "import sys, time\nfrom rewardtrain.trainer import procs\n"
        f"procs.launch([sys.executable, {str(tmp_path / 'child.py')!r}])\ntime.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, str(tmp_path / "parent.py")], cwd=REPO, env=_env())
    deadline = time.monotonic() + 20
    while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.02)
    child_pid = int(pid_file.read_text())
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(child_pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        os.kill(child_pid, signal.SIGKILL)
        raise AssertionError("the launched child outlived its parent")
