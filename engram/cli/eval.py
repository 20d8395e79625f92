"""``engram eval``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, cast

import click

from .main import Context, cli

# engram.memory.recall.REPRESENTATIONS, named here so that --help imports nothing heavy
# (tests/test_recall.py checks they agree).
TURN_REPRESENTATIONS = ("turn", "speaker", "dated", "context")

if TYPE_CHECKING:
    from ..types import SearchMode

SHOWN = ("ndcg@10", "recall@10", "recall@100", "mrr@10", "p@5")


@cli.command("eval")
@click.argument("dataset_dir", type=click.Path(exists=True))
@click.option(
    "--mode",
    "modes",
    multiple=True,
    type=click.Choice(["hybrid", "keyword", "vector"]),
    help="Mode(s) to evaluate (repeatable; default all three).",
)
@click.option("--rerank", is_flag=True, help="Rescore candidates with the cross-encoder.")
@click.option("--limit", type=int, help="Evaluate only the first N queries.")
@click.option(
    "--representation",
    "representations",
    multiple=True,
    type=click.Choice(TURN_REPRESENTATIONS),
    help="Conversation datasets: how turns are indexed (repeatable; default: engram's).",
)
@click.option(
    "--rewrite",
    "rewrites",
    multiple=True,
    type=click.Choice(["none", "heuristic"]),
    help="Conversation datasets: how follow-ups are asked (repeatable; default heuristic).",
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def eval_command(
    obj: Context,
    dataset_dir: str,
    modes: tuple[str, ...],
    rerank: bool,
    limit: int | None,
    representations: tuple[str, ...],
    rewrites: tuple[str, ...],
    as_json: bool,
) -> None:
    """Measure retrieval quality on a BEIR-format dataset (corpus.jsonl, queries.jsonl,
    qrels/test.tsv): nDCG@10, Recall@10/100, MRR@10, P@5 and query latency. The metrics are
    per document: a document ranks where its best chunk ranks among the top 150 chunks (as
    search with group_by="document" shows it).

    Given a conversation dataset (a .json file of sessions and questions, such as
    datasets/conversations/engram-dev-v1.json), measure conversation recall instead:
    Recall@5/10, nDCG@10, MRR@10 per question category, and recall latency. It runs in a
    scratch database with the configured model, leaving the data directory untouched."""
    if Path(dataset_dir).is_file():
        _conversations(obj, dataset_dir, modes, representations, rewrites, as_json)
        return
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


def _conversations(
    obj: Context,
    path: str,
    modes: tuple[str, ...],
    representations: tuple[str, ...],
    rewrites: tuple[str, ...],
    as_json: bool,
) -> None:
    import tempfile

    from ..engine import Engram
    from ..eval.conversations import Rewrite, run_recall_eval
    from ..memory.recall import DEFAULT_REPRESENTATION, Representation

    with tempfile.TemporaryDirectory(prefix="engram-eval-") as scratch:
        settings = obj.settings().model_copy(
            update={"data_dir": Path(scratch), "database_url": None, "redis_url": None}
        )
        with Engram(settings) as db:
            results = run_recall_eval(
                db,
                path,
                representations=cast(
                    tuple[Representation, ...], representations or (DEFAULT_REPRESENTATION,)
                ),
                modes=cast("tuple[SearchMode, ...]", modes or ("hybrid", "keyword", "vector")),
                rewrites=cast(tuple[Rewrite, ...], rewrites or ("heuristic",)),
            )
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in results]))
        return
    first = results[0]
    click.echo(f"{first.dataset}: {first.questions} questions with evidence")
    shown = ("recall@5", "recall@10", "ndcg@10", "mrr@10")
    click.echo(
        f"{'turns':<10}{'mode':<9}{'rewrite':<11}"
        + "".join(f"{m:>11}" for m in shown)
        + f"{'p50 ms':>9}{'p95 ms':>9}"
    )
    for r in results:
        click.echo(
            f"{r.representation:<10}{r.mode:<9}{r.rewrite:<11}"
            + "".join(f"{r.metrics[m]:>11.4f}" for m in shown)
            + f"{r.latency_ms['p50']:>9.1f}{r.latency_ms['p95']:>9.1f}"
        )
    click.echo(f"(latency includes query embedding: p50 {first.embed_ms['p50']:.1f} ms)")
    best = results[0]
    click.echo(f"recall@10 by category ({best.representation}, {best.mode}, {best.rewrite}):")
    for category, scores in best.by_category.items():
        click.echo(f"  {category:<16}{scores['recall@10']:.4f}  ({int(scores['n'])} questions)")
