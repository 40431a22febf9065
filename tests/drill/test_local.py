"""The local drill's settings: the shutdown timeline arithmetic and the control switch."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.drill.local import STOCK_WORKER_ARGS, LocalSettings, allocate_ports
from tools.drill.replica import SERVICE_COMMAND


def test_termination_grace_covers_prestop_grace_and_cleanup() -> None:
    s = LocalSettings(prestop_s=3, grace_s=10)
    assert s.termination_grace == 18
    assert LocalSettings(termination_grace_s=4).termination_grace == 4


def test_replica_env_follows_the_contract() -> None:
    env = LocalSettings(workers=2, grace_s=10, shutdown_delay_s=1.5).replica_env(Path("/run"))
    assert env["WEB_CONCURRENCY"] == "2"
    assert env["GRACE_PERIOD_SECONDS"] == "10"
    assert env["SHUTDOWN_DELAY_SECONDS"] == "1.5"
    assert env["DATABASE_URL"] == "sqlite:////run/drill.db"
    assert env["DEMO_ROUTES"] == "true"  # the load calls /api/slow and /api/long-task
    assert LocalSettings(database_url="postgresql://u@h/db").replica_env(Path("/run"))[
        "DATABASE_URL"
    ] == ("postgresql://u@h/db")


def test_control_switches_the_protections_off() -> None:
    protected = LocalSettings(prestop_s=3, shutdown_delay_s=1)
    control = LocalSettings(prestop_s=3, shutdown_delay_s=1, control=True)
    assert protected.replica_command() == SERVICE_COMMAND
    assert control.replica_command() == SERVICE_COMMAND + STOCK_WORKER_ARGS
    assert (control.prestop_s, control.shutdown_delay_s) == (0, 0)
    assert control.endpoint_lags_s == protected.endpoint_lags_s  # the world stays the same
    assert SERVICE_COMMAND[1:] == ("-c", "python:service.gunicorn_conf", "service.main:app")


def test_endpoint_lags_cycle() -> None:
    s = LocalSettings(endpoint_lags_s=(1.0, 3.5))
    assert [s.endpoint_lag(i) for i in range(3)] == [1.0, 3.5, 1.0]


@pytest.mark.parametrize(
    "changes",
    [{"replicas": 0}, {"prestop_s": -1}, {"endpoint_lags_s": ()}, {"endpoint_lags_s": (-1,)}],
)
def test_settings_validation(changes: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must"):
        LocalSettings(**changes)  # type: ignore[arg-type]


def test_allocate_ports_are_distinct() -> None:
    ports = allocate_ports(7)
    assert len(set(ports)) == 7
