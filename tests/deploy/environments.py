"""What `pip install relearn` and `relearn[trainer]` bring, computed from pyproject.toml and the installed metadata.

`python -m tests.deploy.environments` prints each install's distributions' size on disk (what the
README's "Running across machines" reports); tests/deploy/test_lean_install.py builds a venv of
the slim install's distributions, linked from this one, and runs the services' entry points in it.
"""

from __future__ import annotations

import importlib.metadata as metadata
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]


def project_requirements(*extras: str) -> list[Requirement]:
    """pyproject's dependencies plus those of the named extras (a self-reference is expanded)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    for extra in extras:
        lines += project["optional-dependencies"][extra]
    requirements: list[Requirement] = []
    for line in lines:
        requirement = Requirement(line)
        if canonicalize_name(requirement.name) == canonicalize_name(project["name"]):
            requirements += project_requirements(*requirement.extras)
        else:
            requirements.append(requirement)
    return requirements


def closure(requirements: list[Requirement]) -> dict[str, metadata.Distribution]:
    """Every installed distribution these requirements pull in, transitively (markers evaluated)."""
    found: dict[str, metadata.Distribution] = {}
    queue = [(requirement, "") for requirement in requirements]
    while queue:
        requirement, extra = queue.pop()
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": extra}):
            continue
        key = canonicalize_name(requirement.name)
        distribution = metadata.distribution(requirement.name)
        if key not in found:
            found[key] = distribution
            queue += [(Requirement(line), "") for line in distribution.requires or []]
        # An extra asked for (psycopg[binary]) adds its own requirements, even when seen before.
        for wanted in requirement.extras:
            queue += [(Requirement(line), wanted) for line in distribution.requires or []]
    return found


def top_level_entries(distribution: metadata.Distribution) -> set[Path]:
    """The entries of site-packages a distribution's files live under (packages, .libs, dist-info)."""
    base = Path(str(distribution.locate_file("")))
    entries: set[Path] = set()
    for file in distribution.files or []:
        parts = Path(file).parts
        if parts and parts[0] != ".." and not parts[0].endswith(".pth"):
            entries.add(base / parts[0])
    return entries


def size_on_disk(distributions: dict[str, metadata.Distribution]) -> int:
    total = 0
    for distribution in distributions.values():
        for file in distribution.files or []:
            path = Path(str(distribution.locate_file(file)))
            if path.is_file():
                total += path.stat().st_size
    return total


def main() -> None:
    for label, extras in (("relearn (slim)", ()), ("relearn[trainer]", ("trainer",))):
        distributions = closure(project_requirements(*extras))
        print(
            f"{label}: {len(distributions)} distributions, "
            f"{size_on_disk(distributions) / 2**20:,.0f} MiB installed"
        )


if __name__ == "__main__":
    main()
