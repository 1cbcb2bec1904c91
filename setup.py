"""Only one thing pyproject.toml cannot say: the wheel carries the runbooks and parameter
examples from the repository's notebooks/ and parameters/ as package data (imds_helpers/_data),
so `run`, `demo` and `lab` work from an installed package (imds_helpers/runbooks/resources.py),
and the probe's builder (tools/build_probe.py), so `fleet` builds the probe it copies to each
host from an installed package too (imds_helpers/fleet/fleet_run.py)."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
DATA = ("notebooks/*.ipynb", "parameters/*.yaml", "parameters/*/*.yaml", "tools/build_probe.py")


class BuildPyWithRunbooks(build_py):
    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "imds_helpers" / "_data"
        for pattern in DATA:
            for source in sorted(ROOT.glob(pattern)):
                destination = target / source.relative_to(ROOT)
                destination.parent.mkdir(parents=True, exist_ok=True)
                self.copy_file(str(source), str(destination))


setup(cmdclass={"build_py": BuildPyWithRunbooks})
