"""``engram search``."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, cast

import click

from ..search.filters import parse_where_args
from ..search.fusion import Alpha, check_alpha
from .main import Context, cli
from .options import collections_option, mode_option

if TYPE_CHECKING:
    from ..types import SearchMode


@cli.command()
@click.argument("query")
@collections_option(
    "The collection to search; repeat it to search several as one ranking "
    "(each result names its collection), or '*' for all of them."
)
@click.option(
    "-k", "--top-k", "k", default=10, show_default=True, type=int, help="Results to return."
)
@click.option("--offset", default=0, type=int, help="Skip this many results (paging).")
@mode_option
@click.option(
    "--rerank", is_flag=True, help="Rescore the top candidates with the local cross-encoder."
)
@click.option(
    "--rerank-weight",
    "rerank_weight",
    type=click.FloatRange(0.0, 1.0),
    help="With --rerank: the cross-encoder's share of the order, 0 fused order to 1 the "
    "model alone (default: ENGRAM_RERANK_WEIGHT).",
)
@click.option(
    "--where",
    multiple=True,
    help="Metadata filter: key=value, key!=v, 'year>=2020', 'lang in en,fr', 'author exists',"
    " 'title contains tax'.",
)
@click.option(
    "--fusion",
    type=click.Choice(["dbsf", "minmax", "rrf"]),
    help="Fuse the two legs this way for this search (default: the collection's).",
)
@click.option(
    "--alpha",
    callback=lambda _ctx, _param, value: _alpha(value),
    help="The vector leg's weight in the fusion: 0 keyword only, 1 vector only, or 'auto' "
    "(by the query's length and language; default: the collection's).",
)
@click.option(
    "--group-by",
    "group_by",
    type=click.Choice(["document"]),
    help="One result per document (its best chunk); -k then counts documents.",
)
@click.option("--explain", is_flag=True, help="Show each result's rank and score in each leg.")
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
@click.pass_obj
def search(
    obj: Context,
    query: str,
    collections: tuple[str, ...],
    k: int,
    offset: int,
    mode: str,
    rerank: bool,
    rerank_weight: float | None,
    where: tuple[str, ...],
    fusion: str | None,
    alpha: Alpha | None,
    group_by: str | None,
    explain: bool,
    as_json: bool,
) -> None:
    """Search a collection, or several as one ranking.

    Repeat -c to search several collections (-c kb -c faq), or pass -c '*' for all of them:
    their results are ranked together, and each one names its collection."""
    filters = parse_where_args(where) if where else None
    several = len(collections) > 1 or "*" in collections
    if mode != "keyword":
        obj.prefetch_model(None if several else collections[0])
    response = obj.db(existing=True).search(
        query,
        collection=list(collections) if several else collections[0],
        k=k,
        offset=offset,
        mode=cast("SearchMode", mode),
        where=filters,
        rerank=rerank,
        rerank_weight=rerank_weight,
        fusion=fusion,
        alpha=alpha,
        group_by="document" if group_by else None,
    )
    if as_json:
        click.echo(json.dumps(response.to_dict(), ensure_ascii=False))
        return
    if not response.results:
        click.echo("No results.")
        return
    for i, r in enumerate(response.results, offset + 1):
        where_in = f" p.{r.page}" if r.page else ""
        section = f" § {' > '.join(r.heading_path)}" if r.heading_path else ""
        click.secho(f"{i}. {r.title or r.document_key}", bold=True, nl=False)
        source = f"{r.collection}: " if several else ""
        click.echo(
            f"  [{source}{r.document_key} v{r.version}{where_in} chars {r.start}-{r.end}{section}]"
            f"  score {r.score:.4f}"
        )
        snippet = re.sub(r"\s+", " ", r.highlight or r.text[:240])
        click.echo(
            "   "
            + re.sub(
                r"<mark>(.*?)</mark>", lambda m: click.style(m[1], fg="yellow", bold=True), snippet
            )
        )
        if r.more_chunks:
            click.secho(f"   + {r.more_chunks} more passage(s) of this document", dim=True)
        if explain:
            click.echo(f"   explain: {json.dumps(r.explain)}")
    timing = ", ".join(f"{name} {ms:.1f} ms" for name, ms in response.timings_ms.items())
    click.secho(f"({timing})", dim=True, err=True)


@cli.command()
@click.argument("prefix")
@click.option(
    "-c", "--collection", default="default", show_default=True, envvar="ENGRAM_COLLECTION"
)
@click.option(
    "-n",
    "--limit",
    default=10,
    show_default=True,
    type=click.IntRange(1, 50),
    help="Completions to return.",
)
@click.option("--json", "as_json", is_flag=True, help="Print completions as JSON.")
@click.pass_obj
def suggest(obj: Context, prefix: str, collection: str, limit: int, as_json: bool) -> None:
    """Complete a prefix from past searches, document titles and the collection's words.

    Accents and case are ignored ("teletr" finds "télétravail"), and a last word of 4 letters
    or more may have one letter wrong. Each line is a completion, its source (query, title or
    term) and that source's count (times asked, documents, chunks)."""
    found = obj.db(existing=True).suggest(prefix, collection=collection, limit=limit)
    if as_json:
        click.echo(json.dumps([s.to_dict() for s in found], ensure_ascii=False))
        return
    if not found:
        click.echo("No suggestions.")
        return
    for s in found:
        click.echo(f"{s.text}  ", nl=False)
        click.secho(f"[{s.source} ×{s.count}]", dim=True)


def _alpha(value: str | None) -> Alpha | None:
    """``--alpha``: a number in [0, 1] or "auto"."""
    if value is None:
        return None
    try:
        return check_alpha(value if value == "auto" else float(value))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a number between 0 and 1, nor 'auto'") from None
