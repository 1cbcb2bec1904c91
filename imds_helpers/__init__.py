"""imds-runbook helpers: checks, findings, emulator, runner and CLI.

Importing this package is cheap on purpose (no pandas, no Jupyter, no requests): the quick
``imds-runbook check`` path must start about as fast as ``import requests``.
"""

__version__ = "0.1.0"
