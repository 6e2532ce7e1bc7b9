"""The installed package holds every module of the source tree (a plain, non-editable install)."""

from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed_in_pyproject():
    # a folder missing from [tool.setuptools] packages installs without its modules: `pip install .`
    # then fails at `import sen_rl` although an editable install (and so the tests) works
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed, dirs = set(config["packages"]), config.get("package-dir", {})
    on_disk = set()
    for name in listed:
        root = ROOT / dirs.get(name, name.replace(".", "/"))
        for init in root.rglob("__init__.py"):
            rel = init.parent.relative_to(root).parts
            on_disk.add(".".join((name, *rel)))
    assert on_disk <= listed, f"add {sorted(on_disk - listed)} to [tool.setuptools] packages in pyproject.toml"
