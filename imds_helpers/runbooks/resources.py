"""Where the runbooks and parameter examples are: the source checkout's ``notebooks/`` and
``parameters/`` when running from one, else the copies the wheel carries as package data
(``imds_helpers/_data/``, put there by setup.py's build step). So ``run``, ``demo`` and ``lab``
work from ``pip install 'imds-runbook[notebooks]'`` as from a clone."""

from __future__ import annotations

from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]
PACKAGED = Path(__file__).resolve().parents[1] / "_data"
# What marks each folder as the real one (a stray "notebooks" folder next to site-packages is not).
MARKERS = {"notebooks": "01_azure_vm_imds.ipynb", "parameters": "vm-defaults.yaml"}


def data_dir(name: str) -> Path:
    """``notebooks`` or ``parameters``: the checkout's, else the installed copy."""
    checkout = CHECKOUT / name
    return checkout if (checkout / MARKERS[name]).is_file() else PACKAGED / name


def is_installed_copy(path: Path) -> bool:
    """A folder inside the installed package (not to be written into: copy it first)."""
    try:
        Path(path).resolve().relative_to(PACKAGED.resolve())
        return True
    except ValueError:
        return False
