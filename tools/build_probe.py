"""Build ``imds-probe.pyz``: the standard-library core of imds-runbook as one file.

    python3 tools/build_probe.py [OUT]        # default dist/imds-probe.pyz (what `make probe` runs)
    python3 dist/imds-probe.pyz check         # on any machine with Python >= 3.10 and nothing else

A zipapp (the standard library's ``zipapp``) of every ``.py`` module of ``imds_helpers``,
without ``__pycache__`` or data files, and a ``__main__`` that runs the CLI's ``main()`` and
exits with its return code. The whole package goes in because it imports lazily: ``check``
and ``emulator`` load the standard library only (tests/core/test_probe.py runs the probe under
``python3 -S -I``); the commands that need the notebook stack (``run``, ``report``, ``demo``,
``lab``) stop with one line naming the extra to install, as an installed core without it does
(``imds_helpers.cli.missing_extras``); ``__main__`` keeps a last one-line guard of its own.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import zipapp
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "imds_helpers"
DEFAULT_OUT = ROOT / "dist" / "imds-probe.pyz"

MAIN = '''\
"""imds-probe: the standard-library core of imds-runbook (`python3 imds-probe.pyz check --help`)."""
import sys

if sys.version_info < (3, 10):
    sys.stderr.write("imds-probe: needs Python 3.10 or newer\\n")
    raise SystemExit(2)
try:
    from imds_helpers.cli import main

    code = main()
except ModuleNotFoundError as err:
    sys.stderr.write(f"imds-probe: this command needs {err.name!r}, which the probe does not carry "
                     "(it holds the standard-library core: check, collect, analyze, emulator); "
                     "use an installed imds-runbook for it\\n")
    raise SystemExit(2)
raise SystemExit(code)
'''


def build_probe(out: Path = DEFAULT_OUT, package: Path = PACKAGE) -> Path:
    """Write the zipapp to ``out`` (its folder is created) and return ``out``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="imds-probe-") as staging:
        root = Path(staging)
        for source in sorted(package.rglob("*.py")):
            relative = source.relative_to(package.parent)
            if "__pycache__" in relative.parts:
                continue
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / relative)
        (root / "__main__.py").write_text(MAIN, encoding="utf-8")
        zipapp.create_archive(root, out, interpreter="/usr/bin/env python3", compressed=True)
    return out


def main(argv: list[str]) -> int:
    if len(argv) > 1 or (argv and argv[0].startswith("-")):
        sys.stderr.write("usage: build_probe.py [OUT.pyz]\n")
        return 2
    out = build_probe(Path(argv[0]) if argv else DEFAULT_OUT)
    print(f"{out} ({out.stat().st_size // 1024} KiB): python3 {out.name} check --help")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
