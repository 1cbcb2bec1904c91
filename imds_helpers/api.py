"""The Python API the CLI and the runbooks call.

    opts = check_options(target="auto", resources=[...], client_ids=[...])
    report = run_checks(opts)            # Report: verdict, target, endpoint, checks
    report.to_dict()                     # what --json prints and the runbooks save
    report, bundle = check(opts)         # the same, with the evidence it was judged on
    Session(opts)                        # step by step on this machine (a runbook's cells)
    Session(evidence=bundle)             # step by step on a bundle collected elsewhere

The steps themselves are :mod:`imds_helpers.analyze.pipeline`; collection (:mod:`imds_helpers.collect`)
runs them against this machine and keeps every answer, analysis (:mod:`imds_helpers.analyze`)
runs them against the kept answers.
"""

from __future__ import annotations

from typing import Any, Mapping

from imds_helpers.model.findings import CheckResult, Report
from imds_helpers.analyze.pipeline import CheckOptions, check_options

__all__ = ["CheckOptions", "Session", "check", "check_options", "proxy_step", "run_checks"]


class Session:
    """The pipeline on this machine, one step at a time (what a runbook runs cell by cell), or
    on a bundle's evidence (``evidence=``: a bundle dict). Each step returns its results and
    keeps them for the report; :meth:`bundle` is the evidence the steps have collected so far."""

    def __init__(self, opts: CheckOptions | None = None, *, evidence: Mapping[str, Any] | None = None) -> None:
        from imds_helpers.analyze.pipeline import Pipeline

        if evidence is not None:
            from imds_helpers.analyze import EvidenceHost, options

            self.opts = options(evidence)
            self.host: Any = EvidenceHost(evidence)
        else:
            from imds_helpers.collect import LiveHost

            self.opts = opts or CheckOptions()
            self.host = LiveHost(env=self.opts.env, run=self.opts.runner)
        self._pipeline = Pipeline(self.opts, self.host)
        self.platform = self._pipeline.platform
        self.endpoint: str = self._pipeline.endpoint
        self.target: str = self._pipeline.target
        from imds_helpers.collect.hostcmd import CommandPrefetch

        if isinstance(self.opts.runner, CommandPrefetch) and evidence is None:
            from imds_helpers.analyze.network import route_commands

            # The network step's route lookups run while the proxy step does (and, in a
            # notebook, while papermill saves between cells).
            self.opts.runner.start(route_commands(self.endpoint, self.host.os_name))

    @property
    def results(self) -> list[CheckResult]:
        return self._pipeline.results

    def proxy(self) -> tuple[CheckResult, ...]:
        return self._pipeline.proxy()

    def network(self) -> tuple[CheckResult, ...]:
        return self._pipeline.network()

    def instance(self) -> tuple[CheckResult, ...]:
        return self._pipeline.instance()

    def tokens(self) -> tuple[CheckResult, ...]:
        return self._pipeline.tokens()

    def arc_environment(self) -> tuple[CheckResult, ...]:
        return self._pipeline.arc_environment()

    def arc_challenge(self) -> tuple[CheckResult, ...]:
        return self._pipeline.arc_challenge()

    def run_all(self) -> Report:
        return self._pipeline.run_all()

    def report(self) -> Report:
        return self._pipeline.report()

    def bundle(self) -> dict[str, Any]:
        """The evidence of what has run so far (live sessions only)."""
        from imds_helpers.collect import parameters

        return self.host.bundle(parameters(self.opts, self._pipeline.tokens_dir))


def run_checks(opts: CheckOptions | None = None) -> Report:
    """All steps in order for the chosen target, on this machine: collect, then analyze the
    bundle; the verdict is the worst status."""
    return check(opts)[0]


def check(opts: CheckOptions | None = None) -> tuple[Report, dict[str, Any]]:
    """Collect on this machine, then analyze the bundle: the report and its evidence."""
    from imds_helpers.analyze import analyze
    from imds_helpers.collect import collect

    bundle = collect(opts or CheckOptions())
    return analyze(bundle), bundle


def proxy_step(opts: CheckOptions) -> tuple[CheckResult, ...]:
    """The proxy step alone, on this machine (its endpoint chosen as the platform step does)."""
    session = Session(opts)
    return session.proxy()
