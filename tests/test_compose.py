"""docker-compose.yml cannot run here (no Docker engine): check that it parses and that every command exists."""

from __future__ import annotations

import importlib
import shlex
from pathlib import Path

import yaml
from django.conf import settings
from django.core.management import get_commands

from config.celery import app as celery_app

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def _argv(service: str) -> list[str]:
    command = SERVICES[service]["command"]
    return command if isinstance(command, list) else shlex.split(command)


def test_full_stack_services_present_with_health_checks():
    assert {"postgres", "redis", "proxy", "web", "ws", "worker-cpu", "worker-gpu", "beat"} <= set(SERVICES)
    for name in ("postgres", "redis", "web", "worker-cpu", "worker-gpu"):
        assert "healthcheck" in SERVICES[name], name


def test_web_runs_migrations_before_the_wsgi_server():
    script = _argv("web")[-1]
    assert script.index("manage.py migrate") < script.index("gunicorn")
    for argv in (shlex.split(script), _argv("ws")):
        target = next(part for part in argv if part.endswith(":application"))
        module, attr = target.split(":")
        assert hasattr(importlib.import_module(module), attr)
    assert "migrate" in get_commands()


def test_web_and_ws_run_the_benchmarked_server_flags():
    """The figures in bench/RESULTS.md are taken with config/server.py's flags: compose ships them."""
    from config.server import FLAGS, gunicorn_argv, uvicorn_argv

    server = shlex.split(_argv("web")[-1].split("&&")[-1])
    assert server[0] == "exec"
    shipped = gunicorn_argv("python", host="0.0.0.0", port=8000, workers=4)  # noqa: S104 - in the container
    assert server[1:] == ["gunicorn", *shipped[3:]]
    ws = _argv("ws")
    assert ws[:2] == ["uvicorn", "config.asgi:application"]
    for flag, value in zip(FLAGS[::2], FLAGS[1::2], strict=True):
        assert ws[ws.index(flag) + 1] == value, flag
    assert ws == ["uvicorn", *uvicorn_argv("python", host="0.0.0.0", port=8001, workers=1)[3:]]  # noqa: S104


def test_one_address_through_the_proxy():
    """The browser opens one address: /ws/ and the password pages go to uvicorn (whose login gate parks waiting
    logins on the event loop), the rest to gunicorn (the pages build their socket URLs from location.host)."""
    proxy = SERVICES["proxy"]
    assert proxy["ports"] == ["8000:8000"]
    assert "ports" not in SERVICES["web"] and "ports" not in SERVICES["ws"]
    caddyfile = (ROOT / "deploy" / "Caddyfile").read_text()
    routes = [
        line.split() for line in caddyfile.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]
    assert ["@asgi", "path", "/ws/*", *settings.ARBITER_LOGIN_PATHS] in routes
    assert ["handle", "@asgi", "{"] in routes and ["reverse_proxy", "ws:8001"] in routes
    assert ["handle", "{"] in routes and ["reverse_proxy", "web:8000"] in routes
    from config.routing import websocket_urlpatterns

    assert all(str(route.pattern).startswith("ws/") for route in websocket_urlpatterns)
    for script in ROOT.glob("static/js/*.js"):
        text = script.read_text()
        if "WebSocket(" in text:
            assert "location.host" in text, script.name


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
