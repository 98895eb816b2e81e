"""Shared test settings: deterministic hypothesis runs, float64 references, the plugin registry,
and a throwaway PostgreSQL server for the tests that need a real one."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, settings

# Deterministic property tests (CI and local runs draw the same examples) with no per-example
# deadline: the first example of a test pays for torch's lazy initialisation.
settings.register_profile(
    "normx", deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("NORMX_HYPOTHESIS_PROFILE", "normx"))

#: Tolerance of every comparison against an independent reference (float64).
TOL = 1e-5


@pytest.fixture
def registry():
    from explorer.plugins import get_registry

    return get_registry()


@pytest.fixture
def normx_exe() -> list[str]:
    """The installed console script, or ``python -m explorer`` when it is not on PATH."""
    exe = shutil.which("normx")
    return [exe] if exe else [sys.executable, "-m", "explorer"]


@pytest.fixture(autouse=False)
def float64():
    """Run a test with float64 as the default dtype."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


#: How to get a server when none can be started here: the skip reason of every PostgreSQL test.
NO_POSTGRES = ("needs PostgreSQL: install the server binaries (Debian/Ubuntu: apt-get install postgresql; "
               "macOS: brew install postgresql) so pg_ctl is on PATH or in /usr/lib/postgresql/*/bin, "
               "or set NORMX_TEST_POSTGRES_URL to a server the tests may create studies in")
POSTGRES_PASSWORD = "normx-test-pw"


def find_pg_ctl() -> str | None:
    """pg_ctl on PATH, else the newest Debian-style install (which does not put it on PATH)."""
    found = shutil.which("pg_ctl")
    if found:
        return found
    installed = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                       key=lambda path: int(Path(path).parts[-3]) if Path(path).parts[-3].isdigit() else 0)
    return installed[-1] if installed else None


class PostgresUnavailable(Exception):
    """No throwaway server can be started here (the message says why and what to install)."""


@pytest.fixture(scope="session")
def postgres_url():
    """A real PostgreSQL server for the session: ``$NORMX_TEST_POSTGRES_URL``, else a throwaway one."""
    url = os.environ.get("NORMX_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(throwaway_postgres())
        except PostgresUnavailable as err:
            pytest.skip(str(err))
        yield url


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[str]:
    """A throwaway PostgreSQL server, stopped and removed at the end: its URL.

    It is pytest-postgresql's pg_ctl executor on a free loopback port, with password
    authentication on TCP (the tests check that a wrong password's error hides it). PostgreSQL
    refuses to run as root, so as root pg_ctl runs as the ``postgres`` system user through
    runuser, as Debian's own scripts do; its data directory then belongs to that user. The
    mutation benchmark starts one for a whole run (``benchmarks/mutation.py``).
    """
    pg_ctl = find_pg_ctl()
    if pg_ctl is None:
        raise PostgresUnavailable(NO_POSTGRES)
    from port_for import get_port
    from pytest_postgresql.executors import PostgreSQLExecutor

    base = Path(tempfile.mkdtemp(prefix="normx-pg-"))
    executable = pg_ctl
    if os.geteuid() == 0:
        if shutil.which("runuser") is None or subprocess.run(["id", "postgres"], capture_output=True).returncode:
            shutil.rmtree(base)
            raise PostgresUnavailable("PostgreSQL cannot run as root and there is no postgres user to run it as "
                                      "(Debian's postgresql package creates one); " + NO_POSTGRES)
        shutil.chown(base, "postgres", "postgres")
        base.chmod(0o755)
        executable = str(base / "pg_ctl")
        Path(executable).write_text(f'#!/bin/sh\nexec runuser -u postgres -- "{pg_ctl}" "$@"\n')
        Path(executable).chmod(0o755)
    port = get_port(None)
    server = PostgreSQLExecutor(
        executable=executable, host="127.0.0.1", port=port, datadir=str(base / "data"),
        unixsocketdir=str(base), logfile=str(base / "server.log"), startparams="-w", dbname="normx",
        user="postgres", postgres_options="-c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off",
    )
    server.start()
    try:
        _create_role_and_database(server, base, executable)
        yield f"postgresql+psycopg2://normx:{POSTGRES_PASSWORD}@127.0.0.1:{port}/normx"
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def _create_role_and_database(server, base: Path, pg_ctl: str) -> None:
    """A ``normx`` role with a password and its database; TCP then asks for the password."""
    import psycopg2

    connection = psycopg2.connect(host=str(base), port=server.port, user="postgres", dbname="postgres")
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE ROLE normx LOGIN PASSWORD '{POSTGRES_PASSWORD}'")
        cursor.execute("CREATE DATABASE normx OWNER normx")
    connection.close()
    hba = Path(server.datadir) / "pg_hba.conf"
    lines = [line for line in hba.read_text().splitlines() if not line.startswith("host")]
    hba.write_text("\n".join([*lines, "host all all 127.0.0.1/32 scram-sha-256",
                              "host all all ::1/128 scram-sha-256"]) + "\n")
    subprocess.run([pg_ctl, "reload", "-D", server.datadir], check=True, capture_output=True)
