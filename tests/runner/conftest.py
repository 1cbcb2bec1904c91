"""Fixtures for the runner / report tests: stand-in runbooks and synthetic sidecars."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

from imds_helpers.model.findings import CheckResult, Report, Status
from imds_helpers.fleet.sidecar import build_sidecar, write_sidecar

NOTEBOOKS = Path(__file__).resolve().parent / "notebooks"


@pytest.fixture
def notebooks_dir() -> Path:
    return NOTEBOOKS


@pytest.fixture
def param_file(tmp_path: Path) -> Callable[..., Path]:
    """Write ``<name>.yaml`` with the given YAML text (or key/values) under tmp_path/params."""
    folder = tmp_path / "params"

    def make(name: str, text: str | None = None, **values: Any) -> Path:
        folder.mkdir(exist_ok=True)
        path = folder / f"{name}.yaml"
        if text is None:
            text = "".join(f"{k}: {v}\n" for k, v in values.items())
        path.write_text(text, encoding="utf-8")
        return path

    return make


def make_report(*statuses: tuple[str, str, str, float]) -> Report:
    """A Report from (check id, code, status, elapsed_ms) tuples."""
    return Report(
        target="vm", endpoint="http://169.254.169.254",
        checks=tuple(
            CheckResult(id=cid, code=code, status=Status(st), title=f"title of {code}",
                        detail="detail", fix=f"fix for {code}" if st != "ok" else "",
                        elapsed_ms=ms)
            for cid, code, st, ms in statuses
        ),
    )


def write_host(folder: Path, host: str, report: Report, *, run: dict | None = None,
               started_at: str = "2026-11-26T08:00:00Z") -> Path:
    """A sidecar for ``host`` in ``folder/<host>/<host>.json`` (as the runner lays it out)."""
    sidecar = build_sidecar(report, host=host, notebook="01_azure_vm_imds",
                            parameters={"endpoint": ""}, started_at=started_at, duration_s=1.25)
    if run is not None:
        sidecar["run"] = run
    (folder / host).mkdir(parents=True, exist_ok=True)
    return write_sidecar(folder / host / f"{host}.json", sidecar)
