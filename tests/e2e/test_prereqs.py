"""make e2e's prerequisite check: each missing tool named with how to install it."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tests.e2e import prereqs
from tests.e2e.prereqs import (
    INSTALL_HINTS,
    Tool,
    inotify_problem,
    kind_version_problem,
    kubectl_skew_problem,
    locate,
    main,
    parse_kind_version,
    parse_tools,
    problems,
    read_inotify,
)


def executable(path: Path, prints: str = "") -> Path:
    path.write_text(f"#!/bin/sh\necho '{prints}'\nexit 0\n" if prints else "#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


HELM3 = "v3.19.0+g3d8990f"  # what `helm version --short` prints


def test_parse_tools_keeps_order_and_bare_names() -> None:
    assert parse_tools(["docker=/usr/bin/docker", "kind", "helm="]) == {
        "docker": "/usr/bin/docker",
        "kind": "kind",
        "helm": "helm",
    }
    with pytest.raises(ValueError, match="name=command"):
        parse_tools(["=kind"])


def test_locate_finds_names_on_path_and_checks_given_paths(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    executable(bin_dir / "kind")
    helm = executable(tmp_path / "helm")
    not_executable = tmp_path / "kubectl"
    not_executable.write_text("")
    tools = locate(
        {"kind": "kind", "docker": "docker", "helm": str(helm), "kubectl": str(not_executable)},
        path_env=str(bin_dir),
    )
    found = {t.name: t.path for t in tools}
    assert found == {
        "kind": str(bin_dir / "kind"),
        "docker": None,
        "helm": str(helm),
        "kubectl": None,
    }


def test_every_missing_tool_is_named_with_its_install_hint() -> None:
    tools = [Tool(name, name, None) for name in INSTALL_HINTS]
    lines = problems(tools, docker_info=None)
    assert len(lines) == 4
    for name, line in zip(INSTALL_HINTS, lines, strict=True):
        assert line.startswith(f"missing {name} ({name}): ")
        assert INSTALL_HINTS[name] in line
    assert "make e2e-kubectl" in INSTALL_HINTS["kubectl"] and "make tools" in INSTALL_HINTS["helm"]
    assert all("http" in hint for hint in INSTALL_HINTS.values())


def test_a_docker_daemon_that_does_not_answer_is_a_problem() -> None:
    tools = [Tool("docker", "docker", "/usr/bin/docker")]
    assert problems(tools, docker_info=(0, "27.0.1\n")) == []
    (line,) = problems(tools, docker_info=(1, "Client: ...\nCannot connect to the Docker daemon\n"))
    assert "daemon does not answer" in line and "Cannot connect to the Docker daemon" in line


def inotify_dir(tmp_path: Path, instances: int, watches: int) -> Path:
    directory = tmp_path / "inotify"
    directory.mkdir()
    (directory / "max_user_instances").write_text(f"{instances}\n")
    (directory / "max_user_watches").write_text(f"{watches}\n")
    return directory


def test_inotify_limits_below_kinds_needs_are_one_line_with_the_sysctl_fix(
    tmp_path: Path,
) -> None:
    low = read_inotify(inotify_dir(tmp_path, 128, 8192))
    assert low == {"max_user_instances": 128, "max_user_watches": 8192}
    line = inotify_problem(low)
    assert line is not None and "\n" not in line
    assert "fs.inotify.max_user_instances is 128 (needs 512)" in line
    assert "fs.inotify.max_user_watches is 8192 (needs 524288)" in line
    assert line.endswith(
        "sudo sysctl -w fs.inotify.max_user_instances=512 fs.inotify.max_user_watches=524288"
    )
    only_watches = inotify_problem({"max_user_instances": 8192, "max_user_watches": 65536})
    assert only_watches is not None
    assert only_watches.endswith("sudo sysctl -w fs.inotify.max_user_watches=524288")
    assert inotify_problem({"max_user_instances": 512, "max_user_watches": 524288}) is None
    assert read_inotify(tmp_path / "not-linux") == {} and inotify_problem({}) is None


def test_main_names_low_inotify_limits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(prereqs, "INOTIFY_DIR", inotify_dir(tmp_path, 128, 1048576))
    helm = executable(tmp_path / "helm", HELM3)
    assert main([f"helm={helm}"]) == 1
    out = capsys.readouterr().out
    assert "PROBLEM  fs.inotify.max_user_instances is 128 (needs 512)" in out
    assert "sudo sysctl -w fs.inotify.max_user_instances=512\n" in out


def test_main_exits_1_naming_what_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(prereqs, "INOTIFY_DIR", tmp_path / "no-inotify")
    helm = executable(tmp_path / "helm", HELM3)
    code = main([f"helm={helm}", "kind=kind-not-installed-here"])
    out = capsys.readouterr().out
    assert code == 1
    assert f"ok       helm     {helm} (a failed upgrade rolls back with --atomic)" in out
    assert "PROBLEM  missing kind (kind-not-installed-here): install kind" in out
    assert main([f"helm={helm}"]) == 0
    assert os.environ["PATH"] == str(tmp_path)


NODE_IMAGE_134 = "kindest/node:v1.34.11@sha256:" + "4" * 64


def kubectl_json(minor: str) -> str:
    return json.dumps(
        {"clientVersion": {"major": "1", "minor": minor, "gitVersion": f"v1.{minor}.1"}}
    )


@pytest.mark.parametrize("minor", ["33", "34", "35", "35+"])
def test_a_kubectl_within_one_minor_version_of_the_node_passes(minor: str) -> None:
    assert kubectl_skew_problem("kubectl", kubectl_json(minor), NODE_IMAGE_134) is None


@pytest.mark.parametrize("minor", ["32", "36", "37"])
def test_a_kubectl_further_away_is_named_with_what_fits(minor: str) -> None:
    problem = kubectl_skew_problem(".venv/bin/kubectl", kubectl_json(minor), NODE_IMAGE_134)
    assert problem is not None
    assert f"kubectl v1.{minor}.1 (.venv/bin/kubectl) is too far" in problem
    assert "Kubernetes 1.34" in problem and "a kubectl 1.33-1.35" in problem
    assert "kubectl v1.34.11 in .tools/bin (make e2e-kubectl" in problem


def test_an_unreadable_kubectl_version_is_a_problem_and_an_untagged_node_image_is_not() -> None:
    problem = kubectl_skew_problem("kubectl", "Error: unknown flag", NODE_IMAGE_134)
    assert problem is not None and problem.startswith("cannot read the version of kubectl")
    assert kubectl_skew_problem("kubectl", kubectl_json("37"), "kindest/node") is None


# `kind version` as kind prints it: releases, builds from source (pre-release, commit count
# and commit), and the bare version of kind before v0.6.
@pytest.mark.parametrize(
    ("output", "parsed"),
    [
        ("kind v0.33.0 go1.24.2 linux/amd64\n", (0, 33, 0, "")),
        ("kind v0.27.0 go1.24.0 darwin/arm64", (0, 27, 0, "")),
        ("kind v0.34.0-alpha go1.25.1 linux/arm64", (0, 34, 0, "alpha")),
        ("kind v0.34.0-alpha.12+0123456789abcd go1.25.1 linux/amd64", (0, 34, 0, "alpha.12")),
        ("v0.5.1\n", (0, 5, 1, "")),
        ("kind version unknown", None),
        ("", None),
    ],
)
def test_kind_version_is_read_from_every_output_format(
    output: str, parsed: tuple[int, int, int, str] | None
) -> None:
    assert parse_kind_version(output) == parsed


@pytest.mark.parametrize(
    "output",
    [
        "kind v0.33.0 go1.24.2 linux/amd64",
        "kind v0.33.1 go1.24.2 linux/amd64",
        "kind v0.34.0-alpha go1.25.1 linux/amd64",
        "kind v1.0.0 go1.26.0 darwin/arm64",
    ],
)
def test_kind_v0_33_or_later_passes(output: str) -> None:
    assert kind_version_problem("kind", output) is None


@pytest.mark.parametrize(
    ("output", "shown"),
    [
        ("kind v0.32.0 go1.24.2 linux/amd64", "v0.32.0"),
        ("kind v0.23.0 go1.22.2 darwin/arm64", "v0.23.0"),
        ("kind v0.33.0-alpha.3+abcdef01234567 go1.24.2 linux/amd64", "v0.33.0-alpha.3"),
        ("v0.5.1", "v0.5.1"),
    ],
)
def test_an_older_kind_is_named_with_the_fix(output: str, shown: str) -> None:
    problem = kind_version_problem("/usr/local/bin/kind", output)
    assert problem is not None
    assert problem.startswith(f"kind {shown} (/usr/local/bin/kind) is older than v0.33.0")
    assert "KIND_VERSION=v0.33.0 bash tests/e2e/install-kind.sh .tools/bin" in problem
    assert "https://kind.sigs.k8s.io/docs/user/quick-start/#installation" in problem


def test_an_unreadable_kind_version_is_a_problem() -> None:
    problem = kind_version_problem("kind", "Error: unknown command\n")
    assert problem is not None and "cannot read the version of kind" in problem
    assert "'Error: unknown command'" in problem and "install-kind.sh" in problem


def test_main_stops_on_an_old_kind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(prereqs, "INOTIFY_DIR", tmp_path / "no-inotify")
    kind = tmp_path / "kind"
    kind.write_text("#!/bin/sh\necho 'kind v0.31.0 go1.24.2 linux/amd64'\n")
    kind.chmod(0o755)
    assert main([f"kind={kind}"]) == 1
    assert f"PROBLEM  kind v0.31.0 ({kind}) is older than v0.33.0" in capsys.readouterr().out
    kind.write_text("#!/bin/sh\necho 'kind v0.33.0 go1.24.2 linux/amd64'\n")
    assert main([f"kind={kind}"]) == 0


@pytest.mark.parametrize(
    ("prints", "line"),
    [
        ("v4.1.4+g05fa379", "(a failed upgrade rolls back with --rollback-on-failure)"),
        ("v2.17.0+ga690bad", "PROBLEM  cannot use helm"),
    ],
)
def test_main_reads_the_helm_version(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    prints: str,
    line: str,
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(prereqs, "INOTIFY_DIR", tmp_path / "no-inotify")
    helm = executable(tmp_path / "helm4", prints)
    code = main([f"helm={helm}"])
    assert line in capsys.readouterr().out
    assert code == (0 if prints.startswith("v4") else 1)
