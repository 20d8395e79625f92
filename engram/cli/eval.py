"""``engram eval``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, cast

import click

from .main import Context, cli

if TYPE_CHECKING:
    from ..types import SearchMode

SHOWN = ("ndcg@10", "recall@10", "recall@100", "mrr@10", "p@5")


@cli.command("eval")
@click.argument("dataset_dir", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--mode",
    "modes",
    multiple=True,
    type=click.Choice(["hybrid", "keyword", "vector"]),
    help="Mode(s) to evaluate (repeatable; default all three).",
)
@click.option("--rerank", is_flag=True, help="Rescore candidates with the cross-encoder.")
@click.option("--limit", type=int, help="Evaluate only the first N queries.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def eval_command(
    obj: Context,
    dataset_dir: str,
    modes: tuple[str, ...],
    rerank: bool,
    limit: int | None,
    as_json: bool,
) -> None:
    """Measure retrieval quality on a BEIR-format dataset (corpus.jsonl, queries.jsonl,
    qrels/test.tsv): nDCG@10, Recall@10/100, MRR@10, P@5 and query latency."""
    from ..eval.runner import run_eval

    results = run_eval(
        obj.db(),
        dataset_dir,
        modes=cast("tuple[SearchMode, ...]", modes or ("hybrid", "keyword", "vector")),
        rerank=rerank,
        limit=limit,
    )
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in results]))
        return
    first = results[0]
    ing = first.ingest
    click.echo(
        f"{first.dataset}: {first.queries} queries · corpus {ing['added']} added,"
        f" {ing['updated']} updated, {ing['unchanged']} unchanged ({ing['seconds']}s)"
    )
    header = (
        f"{'mode':<8}{'rerank':<8}"
        + "".join(f"{m:>12}" for m in SHOWN)
        + f"{'p50 ms':>10}{'p95 ms':>10}"
    )
    click.echo(header)
    for r in results:
        row = f"{r.mode:<8}{'yes' if r.rerank else 'no':<8}" + "".join(
            f"{r.metrics[m]:>12.4f}" for m in SHOWN
        )
        click.echo(row + f"{r.latency_ms['p50']:>10.1f}{r.latency_ms['p95']:>10.1f}")
    click.echo(f"(latency includes query embedding: p50 {first.embed_ms['p50']:.1f} ms)")
