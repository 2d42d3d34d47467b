"""The package imports downwards only (ARCHITECTURE.md).

errors < audio < metrics/results/predictions < synth < augment < data < models < callbacks < inference < cli (and
describe) < experiment. Every ``import`` counts, inside functions too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ser_lightning"

#: Rank of each top-level module or subpackage of ser_lightning; a module may import only equal or lower ranks.
LAYERS: dict[str, int] = {
    "__init__": 0,
    "errors": 0,
    "audio": 1,
    "metrics": 2,
    "results": 2,
    "predictions": 2,
    "synth": 3,
    "augment": 4,
    "data": 5,
    "models": 6,
    "callbacks": 7,
    "inference": 8,
    "cli": 9,
    "describe": 9,
    "__main__": 10,
    "experiment": 10,
}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names.extend(f"{node.module}.{a.name}" for a in node.names if node.module == "ser_lightning")
    return [n for n in names if n.split(".")[0] == "ser_lightning"]


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_top_level_name_has_a_layer() -> None:
    tops = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in MODULES}
    assert tops <= set(LAYERS), f"add {sorted(tops - set(LAYERS))} to LAYERS"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_go_downwards(path: Path) -> None:
    own = "ser_lightning." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
    rank = LAYERS[_layer(own)]
    upward = [name for name in _imports(path) if name != "ser_lightning" and LAYERS[_layer(name)] > rank]
    assert not upward, f"{own} (layer {_layer(own)}) imports from above: {upward}"
