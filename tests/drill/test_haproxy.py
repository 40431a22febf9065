"""HAProxy configuration rendering and runtime-API / log parsing (no haproxy process here)."""

from __future__ import annotations

from pathlib import Path

from tools.drill.haproxy import (
    HAProxySettings,
    LogFailure,
    ServerSlot,
    failures_in_log,
    parse_stat_csv,
    render_config,
    server_status,
)


def settings(mode: str = "http") -> HAProxySettings:
    return HAProxySettings(
        frontend_port=18080,
        socket_path=Path("/run-dir/haproxy.sock"),
        servers=(ServerSlot("r1", 18001, True), ServerSlot("r2", 18002, False)),
        mode="tcp" if mode == "tcp" else "http",
    )


def test_config_never_retries_nor_redispatches() -> None:
    text = render_config(settings())
    lines = [line.strip() for line in text.splitlines()]
    assert "retries 0" in lines
    assert not any("redispatch" in line and not line.startswith("#") for line in lines)
    assert "bind 127.0.0.1:18080" in lines
    assert "stats socket /run-dir/haproxy.sock mode 600 level admin" in lines


def test_config_checks_readiness_and_declares_slots() -> None:
    lines = [line.strip() for line in render_config(settings()).splitlines()]
    assert "http-check send meth GET uri /health/ready ver HTTP/1.1 hdr Host drill-check" in lines
    assert "http-check expect status 200" in lines
    assert "default-server inter 1000ms fall 2 rise 1" in lines
    assert "server r1 127.0.0.1:18001 check" in lines
    assert "server r2 127.0.0.1:18002 check disabled" in lines
    assert "http-response set-header X-Drill-Server %s" in lines


def test_tcp_mode_has_no_http_only_directives() -> None:
    text = render_config(settings("tcp"))
    assert "mode tcp" in text
    assert "http-response" not in text
    assert "http-keep-alive" not in text
    assert "option httpchk" in text  # health checks stay HTTP


STAT = """# pxname,svname,qcur,scur,status,weight
drill,FRONTEND,,,OPEN,
replicas,r1,0,0,UP,1
replicas,r2,0,0,MAINT,1
replicas,r3,0,3,DRAIN,0
replicas,r4,0,0,UP 1/2,1
replicas,BACKEND,0,3,UP,2
"""


def test_parse_stat_csv() -> None:
    rows = parse_stat_csv(STAT)
    assert {name: server_status(row) for name, row in rows.items()} == {
        "r1": "UP",
        "r2": "MAINT",
        "r3": "DRAIN",
        "r4": "UP",
    }
    assert rows["r3"]["scur"] == "3"


def test_failures_in_log() -> None:
    lines = [
        'drill-log 1764170000.123 replicas/r1 200 ---- 3 "GET /api/slow?ms=1 HTTP/1.1"',
        'drill-log 1764170000.123 replicas/r1 503 SC-- 0 "GET /api/slow?ms=1 HTTP/1.1"',
        'drill-log 1764170000.123 replicas/r1 503 SC-- 0 "GET /api/items HTTP/1.1"',
        'drill-log 1764170000.123 replicas/<NOSRV> 503 SC-- 0 "GET / HTTP/1.1"',
        'drill-log 1764170000.123 replicas/r2 -1 SH-- 5 "GET / HTTP/1.1"',
        "[WARNING]  (1) : Server replicas/r1 is DOWN.",
    ]
    assert failures_in_log(lines) == {
        LogFailure("r1", "503", "SC"): 2,
        LogFailure("<NOSRV>", "503", "SC"): 1,
        LogFailure("r2", "-1", "SH"): 1,
    }
    tcp = [
        "drill-log 1764170000.123 replicas/r1 - -- 100 -",
        "drill-log 1764170000.123 replicas/r2 - SC 0 -",
    ]
    assert failures_in_log(tcp, "tcp") == {LogFailure("r2", "-", "SC"): 1}
