"""The shape of the code: no module imports another that imports it back, and the batch job's
workers load only what scoring needs."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from service.config import PROJECT_ROOT

pytestmark = pytest.mark.unit  # make test-fast: no processes, no servers

PACKAGES = ("service", "batch", "training")


def module_name(path: Path) -> str:
    parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_imports() -> dict[str, set[str]]:
    """Each project module and the project modules it imports, TYPE_CHECKING imports included."""
    modules = {module_name(p): p for package in PACKAGES for p in (PROJECT_ROOT / package).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                candidates = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
            elif isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names]
            else:
                continue
            targets |= {c for c in candidates if c in modules and c != name and not name.startswith(f"{c}.")}
        graph[name] = {t for t in targets if t not in PACKAGES}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_module_imports_one_that_imports_it_back() -> None:
    graph = project_imports()
    assert len(graph) > 40
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_batch_scoring_loads_no_web_socket_video_or_tracking_code() -> None:
    probe = (
        "import sys, batch.scoring; "
        "print(sorted(m for m in sys.modules if m.startswith(('service.video', 'service.tracking', "
        "'service.live', 'service.api', 'starlette.websockets', 'websockets'))))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def floors() -> dict[str, int]:
    """The floor of each room of `service/`, from the table docs/architecture.md draws."""
    text = (PROJECT_ROOT / "docs" / "architecture.md").read_text()
    table = text.split("<!-- floors:start -->")[1].split("<!-- floors:end -->")[0]
    rooms = {}
    for line in table.strip().strip("`").strip().splitlines():
        floor, *names = line.split()
        rooms.update({name: int(floor) for name in names})
    return rooms


def room(module: str) -> str:
    """service.jobs.worker -> jobs; service.answers -> answers."""
    return module.split(".")[1]


def test_service_imports_run_down_the_floors_the_architecture_draws() -> None:
    rooms = floors()
    modules = [m for m in project_imports().items() if m[0].startswith("service.")]
    unplaced = {room(name) for name, _ in modules} - set(rooms)
    assert not unplaced, f"rooms missing from docs/architecture.md's floors: {sorted(unplaced)}"
    upward = [
        f"{name} -> {target}"
        for name, targets in modules
        for target in targets
        if target.startswith("service.") and room(target) != room(name) and rooms[room(target)] >= rooms[room(name)]
    ]
    assert not upward, "imports that do not run down the floors: " + "; ".join(sorted(upward))
