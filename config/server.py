"""How Arbiter's servers start: one set of flags for `manage.py serve`, docker-compose and bench/annotate_bench.py,
so the README's figures describe the configuration that ships.

uvicorn (ASGI, config/asgi.py) serves websockets, and HTTP too; gunicorn (WSGI, config/wsgi.py, `gthread`
workers) serves pages and JSON.

- `--loop uvloop --http httptools`: the C event loop and HTTP parser (both come with `uvicorn[standard]`).
  uvicorn's `auto` picks them too when installed; naming them makes a missing one an error, not a silent
  fallback to the pure-Python ones.
- `--lifespan off`: Django has no lifespan events; with `auto` uvicorn probes and logs that it is unsupported.
- `--no-proxy-headers`: uvicorn would otherwise take the client's address from `X-Forwarded-For` whenever the
  connection comes from 127.0.0.1 (its default `--forwarded-allow-ips`), so anyone on the host could name any
  address and the login lockout (keyed on it) would never hold. Django reads the header itself, trusting only
  the proxies of `ARBITER_TRUSTED_PROXIES` / `ARBITER_TRUSTED_PROXY_COUNT` (infra/client_ip.py). gunicorn never
  rewrites `REMOTE_ADDR` (its `--forwarded-allow-ips` only decides whose `X-Forwarded-Proto` sets the scheme,
  which Django's `SECURE_PROXY_SSL_HEADER` reads in production anyway), so it needs no flag.
- `--no-access-log` in production: a proxy in front logs requests, and uvicorn's access line cost measurable
  CPU per request on the workbench's hot pair. `make run` keeps the log (`serve --access-log`).
"""

from __future__ import annotations

APP = "config.asgi:application"
WSGI_APP = "config.wsgi:application"
FLAGS: tuple[str, ...] = ("--loop", "uvloop", "--http", "httptools", "--lifespan", "off")


def uvicorn_argv(
    python: str,
    *,
    host: str,
    port: int,
    workers: int,
    log_level: str = "info",
    access_log: bool = False,
) -> list[str]:
    """The command line that starts the ASGI server (HTTP and websockets) with Arbiter's flags."""
    argv = [python, "-m", "uvicorn", APP, "--host", host, "--port", str(port), "--workers", str(workers)]
    argv += [*FLAGS, "--no-proxy-headers", "--log-level", log_level]
    if not access_log:
        argv.append("--no-access-log")
    return argv


def gunicorn_argv(
    python: str,
    *,
    host: str,
    port: int,
    workers: int,
    threads: int = 13,
    log_level: str = "info",
    access_log: bool = False,
) -> list[str]:
    """The command line that starts the WSGI server (pages and JSON): gunicorn's threaded workers."""
    argv = [python, "-m", "gunicorn", WSGI_APP, "--bind", f"{host}:{port}", "--workers", str(workers)]
    argv += ["--worker-class", "gthread", "--threads", str(threads), "--log-level", log_level]
    if access_log:
        argv += ["--access-logfile", "-"]
    return argv
