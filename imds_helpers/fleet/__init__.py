"""Many hosts: the papermill runner, result sidecars, parameter files and the fleet reports."""
