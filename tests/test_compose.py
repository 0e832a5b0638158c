"""``docker-compose.yml`` runs the harness' own role code (no Docker engine here: checked
statically).

The file is read with a tiny reader of the YAML subset it keeps to (block mappings, ``- item``
lists, one-line JSON-style ``[...]``/``{}`` values), so PyYAML is not needed. Every service that
runs Python must name a module that exists, whose ``--help`` exits 0 and whose argument parser
accepts the service's whole command line.
"""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
COMPOSE = REPO / "docker-compose.yml"


def _scalar(text: str) -> Any:
    text = text.strip()
    if text[:1] in ("[", "{") or re.fullmatch(r"-?\d+(\.\d+)?|true|false|null", text):
        return json.loads(text)
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


def read_simple_yaml(text: str) -> Any:
    """Parse block mappings and lists by indentation (comments and blank lines skipped)."""
    lines = [
        (len(line) - len(line.lstrip(" ")), line.strip())
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]

    def block(index: int, indent: int) -> tuple[Any, int]:
        if lines[index][1].startswith("- "):
            items: list[Any] = []
            while index < len(lines) and lines[index][0] == indent:
                body = lines[index][1]
                assert body.startswith("- "), f"mixed block at {body!r}"
                items.append(_scalar(body[2:]))
                index += 1
            return items, index
        mapping: dict[str, Any] = {}
        while index < len(lines) and lines[index][0] == indent:
            key, sep, rest = lines[index][1].partition(":")
            assert sep, f"not a mapping entry: {lines[index][1]!r}"
            index += 1
            if rest.strip():
                mapping[key] = _scalar(rest)
            elif index < len(lines) and lines[index][0] > indent:
                mapping[key], index = block(index, lines[index][0])
            else:
                mapping[key] = None
        return mapping, index

    data, end = block(0, lines[0][0])
    assert end == len(lines), f"unparsed from {lines[end]!r}"
    return data


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    data = read_simple_yaml(COMPOSE.read_text())
    result: dict[str, Any] = data["services"]
    return result


def _python_commands(services: dict[str, Any]) -> list[tuple[str, list[str]]]:
    return [
        (name, service["command"])
        for name, service in services.items()
        if isinstance(service.get("command"), list) and service["command"][:2] == ["python", "-m"]
    ]


def test_reader_handles_the_subset() -> None:
    text = 'a:\n  b: [1, "x"]\n  c:\n    - "9"\n    - y\n  d: {}\n# note\ne: redis:7\n'
    expected = {"a": {"b": [1, "x"], "c": ["9", "y"], "d": {}}, "e": "redis:7"}
    assert read_simple_yaml(text) == expected


def test_services(services: dict[str, Any]) -> None:
    assert services["redis"]["image"] == "redis:7"
    assert services["instance"]["deploy"]["replicas"] >= 2
    assert {"writer", "prometheus"} <= set(services)
    roles = {name: cmd[3] for name, cmd in _python_commands(services)}
    assert roles == {"instance": "instance", "writer": "writer"}
    for name in ("instance", "writer"):
        build = services[name]["build"]
        assert (REPO / build["context"] / build["dockerfile"]).is_file()


@pytest.mark.parametrize("service", ["instance", "writer"])
def test_command_entry_point_exists(services: dict[str, Any], service: str) -> None:
    command = dict(_python_commands(services))[service]
    module_name = command[2]
    module = importlib.import_module(module_name)
    assert callable(module.main)
    # The parser accepts the whole command line as compose runs it.
    args = module.build_parser().parse_args(command[3:])
    assert args.role == service
    # And the command, up to its first option, answers --help.
    head = [arg for arg in command[3:] if not arg.startswith("-")][:1]
    result = subprocess.run(
        [sys.executable, "-m", module_name, *head, "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "--redis-url" in result.stdout


def test_prometheus_scrapes_the_instances(services: dict[str, Any]) -> None:
    mounts = services["prometheus"]["volumes"]
    config_mount = next(m for m in mounts if m.endswith("/etc/prometheus/prometheus.yml:ro"))
    config_path = REPO / config_mount.split(":")[0]
    # Lists of mappings (`- job_name: ...`) are beyond the reader: regexes on the text.
    text = config_path.read_text()
    command = services["instance"]["command"]
    port = command[command.index("--metrics-port") + 1]
    assert command[command.index("--metrics-host") + 1] == "0.0.0.0"
    assert re.search(r'names:\s*\["instance"\]', text)
    assert re.search(rf"port:\s*{port}\b", text)
    assert str(port) in services["instance"]["expose"]
