"""``bench summarise RUN RUN RUN ...``: the README's short answer from several runs.

One run can be lucky; the short answer rests on three or more. Runs whose
verdicts disagree are not refused: the table says how many runs gave each
status, and every claim-2 comparison cell is pooled over the runs with the run
as a random effect (``bench.analyse.runs.pool_runs``): the pooled ratio, its
interval, the status the claim-2 rule (``RULES["equivalence"]``) gives that
interval, and the between-run spread (tau and the range of the runs' ratios).
It also states the run-to-run spread of the numbers each claim rests on:
claim 1 the connections select served, claim 2 each judged ratio, claim 3
epoll's growth per metric. It prints Markdown to paste under the README's
"The short answer".
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bench.commands.common import EXIT_OK, EXIT_USAGE, add_results_dir, err, load_run, resolve

HELP = "the README's short answer from 3+ runs, claim 2's cells pooled over the runs"
MIN_RUNS = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", help=f"{MIN_RUNS} or more run folders or ids")
    add_results_dir(parser)


def _verdict(run: str, results_dir: str | None) -> dict[str, Any]:
    """The run's verdict.json as written (read through the typed reader, which refuses
    versions it does not know); computed once only for a run that has none."""
    from bench.analyse.verdict import compute_typed_verdict
    from bench.store.verdict_file import read_verdict

    path = resolve(run, results_dir)
    # The folder is checked first: a verdict is only as good as the data it came from.
    data = load_run(path)
    typed = read_verdict(path) if data.verdict is not None else None
    return (typed if typed is not None else compute_typed_verdict(data)).to_dict()


def main(args: argparse.Namespace) -> int:
    if len(args.runs) < MIN_RUNS:
        err(f"give at least {MIN_RUNS} runs (got {len(args.runs)}): one run can be lucky")
        return EXIT_USAGE
    verdicts = [_verdict(run, args.results_dir) for run in args.runs]
    ids = [v["run_id"] for v in verdicts]
    if len(set(ids)) < len(ids):
        err(f"the same run was given twice ({', '.join(ids)}): give {MIN_RUNS} different runs")
        return EXIT_USAGE
    from bench.present.summary_md import summary_table

    print(summary_table(args.runs, verdicts), file=sys.stdout)
    return EXIT_OK
