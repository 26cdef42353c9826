"""docker-compose.yml cannot run here (no Docker engine): check that it parses and that every command exists."""

from __future__ import annotations

import importlib
import shlex
from pathlib import Path

import yaml
from django.core.management import get_commands

from config.celery import app as celery_app

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def _argv(service: str) -> list[str]:
    command = SERVICES[service]["command"]
    return command if isinstance(command, list) else shlex.split(command)


def test_full_stack_services_present_with_health_checks():
    assert {"postgres", "redis", "web", "worker-cpu", "worker-gpu", "beat"} <= set(SERVICES)
    for name in ("postgres", "redis", "web", "worker-cpu", "worker-gpu"):
        assert "healthcheck" in SERVICES[name], name


def test_web_runs_migrations_before_the_asgi_server():
    script = _argv("web")[-1]
    assert script.index("manage.py migrate") < script.index("uvicorn")
    target = next(part for part in shlex.split(script) if part.endswith(":application"))
    module, attr = target.split(":")
    assert hasattr(importlib.import_module(module), attr)
    assert "migrate" in get_commands()


def test_web_runs_the_benchmarked_server_flags():
    """The figures in the README's Benchmarks are taken with config/server.py's flags: compose ships them."""
    from config.server import FLAGS

    server = shlex.split(_argv("web")[-1].split("&&")[-1])
    assert server[:3] == ["exec", "uvicorn", "config.asgi:application"]
    flags = server[3:]
    for flag, value in zip(FLAGS[::2], FLAGS[1::2], strict=True):
        assert flags[flags.index(flag) + 1] == value, flag
    assert "--no-access-log" in flags
    assert flags[flags.index("--workers") + 1] == "2"


def test_workers_consume_declared_queues():
    declared = {queue.name for queue in celery_app.conf.task_queues}
    for service in ("worker-cpu", "worker-gpu"):
        argv = _argv(service)
        assert argv[:3] == ["celery", "-A", "config"]
        queues = set(argv[argv.index("-Q") + 1].split(","))
        assert queues <= declared, service
    assert set(_argv("worker-gpu")[_argv("worker-gpu").index("-Q") + 1].split(",")) == {"gpu"}


def test_gpu_worker_runs_one_job_at_a_time_on_every_gpu():
    argv = _argv("worker-gpu")
    assert argv[argv.index("--concurrency") + 1] == "1"
    assert argv[argv.index("--prefetch-multiplier") + 1] == "1"
    (device,) = SERVICES["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert device["count"] == "all" and "gpu" in device["capabilities"]


def test_settings_come_from_an_env_file_and_volumes_are_declared():
    for name in ("web", "worker-cpu", "worker-gpu", "beat"):
        assert SERVICES[name]["env_file"] == ".env"
    env_example = (ROOT / ".env.example").read_text()
    for knob in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL", "ALLOWED_HOSTS"):
        assert f"{knob}=" in env_example
    assert {"postgres-data", "redis-data", "arbiter-data"} <= set(COMPOSE["volumes"])
