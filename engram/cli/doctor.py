"""``engram doctor``: check the installation and the data directory, with a fix per failure.

Read-only: the database is opened with ``mode=ro`` (no migration runs, nothing is written)
and the index files are loaded, not rebuilt. On PostgreSQL (``ENGRAM_DATABASE_URL``) one
read-only connection reports the server, the schema against this code's migrations,
pgvector and whether row-level security applies to the role (engram.store.postgres.status). Each check
prints ✓, ! (a warning) or ✗; a warning or a failure also prints a hint, and a failure
makes the command exit with status 1.
"""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..errors import EngramError
from .main import Context, cli

if TYPE_CHECKING:
    from ..config import Settings

MIN_FREE_BYTES = 512 * 1024**2
PROBE_SENTENCE = "engram doctor: does the embedding model work?"


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str
    hint: str | None = None
    warning: bool = False  # passed, but needs attention (see hint)


class CheckFailed(Exception):
    def __init__(self, detail: str, hint: str | None = None) -> None:
        super().__init__(detail)
        self.detail, self.hint = detail, hint


def _run(name: str, probe: Callable[[], str]) -> Check:
    try:
        return Check(name, True, probe())
    except CheckFailed as exc:
        return Check(name, False, exc.detail, exc.hint)
    except EngramError as exc:
        return Check(name, False, exc.message, exc.hint)
    except Exception as exc:  # a doctor reports every failure, whatever its kind
        return Check(name, False, f"{type(exc).__name__}: {exc}")


def _ms(started: float) -> str:
    return f"{(time.perf_counter() - started) * 1000:.0f} ms"


def _existing(path: Path) -> Path:
    """``path`` or its nearest existing ancestor."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


# -- the data directory ----------------------------------------------------------------------
def check_data_dir(path: Path) -> str:
    if not path.exists():
        parent = _existing(path)
        if not os.access(parent, os.W_OK):
            raise CheckFailed(
                f"{path} does not exist and {parent} is not writable",
                hint="create the directory, or point --data-dir (ENGRAM_DATA_DIR) elsewhere",
            )
        return f"{path} does not exist yet: created at first use"
    if not path.is_dir():
        raise CheckFailed(
            f"{path} is not a directory", hint="point --data-dir (ENGRAM_DATA_DIR) at a directory"
        )
    probe = path / f".engram-doctor-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise CheckFailed(
            f"{path} is not writable: {exc.strerror}",
            hint=f"fix its permissions (chmod u+w {path}) or point --data-dir elsewhere",
        ) from exc
    return f"{path} is writable"


def check_disk(path: Path) -> str:
    usage = shutil.disk_usage(_existing(path))
    free = f"{usage.free / 1024**3:.1f} GiB free of {usage.total / 1024**3:.1f} GiB"
    if usage.free < MIN_FREE_BYTES:
        raise CheckFailed(
            free,
            hint="free some space: SQLite needs room for its WAL, and index files are saved"
            " beside the old ones before replacing them",
        )
    return free


@contextmanager
def _read_only(db_path: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(db_path.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        yield conn
    finally:
        conn.close()


def check_database(db_path: Path) -> str:
    from ..store.migrations import check_applied, load_migrations

    if not db_path.exists():
        return "no database yet: created at first use"
    with _read_only(db_path) as conn:
        try:
            applied = dict(conn.execute("SELECT version, sha256 FROM schema_migrations"))
            integrity = conn.execute("PRAGMA quick_check").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise CheckFailed(
                f"cannot read {db_path}: {exc}",
                hint="restore it from a backup, or point --data-dir elsewhere",
            ) from exc
    if integrity != "ok":
        raise CheckFailed(
            f"{db_path} is damaged: {integrity}",
            hint="restore it from a backup (index files are rebuilt from it)",
        )
    pending = check_applied(applied, load_migrations("sqlite"))  # raises on a changed schema
    detail = f"{db_path}: schema version {max(applied, default=0)}"
    if pending:
        detail += f", {len(pending)} migration(s) to apply at the next open"
    return detail


def postgres_checks(settings: Settings) -> list[Check]:
    """The PostgreSQL server, schema, pgvector and row-level security, from one probe."""
    from ..store.postgres.status import PGVECTOR_HINT, RLS_HINT, url_status

    url = settings.database_url or ""
    try:
        found = url_status(url)
    except EngramError as exc:
        return [Check("database", False, exc.message, exc.hint)]
    except Exception as exc:  # a doctor reports every failure, whatever its kind
        return [Check("database", False, f"{type(exc).__name__}: {exc}")]
    from ..store.postgres.sql import redact  # psycopg is importable: the probe ran

    rls = found.rls_bypass_reason()
    return [
        Check(
            "database",
            True,
            f"{redact(url)}: PostgreSQL {found.server_version}, answered in"
            f" {found.latency_ms:.0f} ms; {found.connections} of {found.max_connections}"
            f" connections in use, up to {settings.database_pool_size} per engram process"
            " (ENGRAM_DATABASE_POOL_SIZE)",
        ),
        Check("schema", found.schema_ok, found.schema_detail(), found.schema_hint),
        Check(
            "pgvector",
            bool(found.pgvector),
            f"version {found.pgvector}"
            if found.pgvector
            else f"not installed in database {found.database!r}",
            None if found.pgvector else PGVECTOR_HINT,
        ),
        Check(
            "row-level security",
            True,
            rls or f"applies to role {found.role!r}",
            RLS_HINT if rls else None,
            warning=rls is not None,
        ),
    ]


# -- models ----------------------------------------------------------------------------------
def check_embedder(settings: Settings, name: str | None = None) -> str:
    """Load the model ``name`` (default: embedding_model) and embed a sentence with it."""
    import numpy as np

    from ..providers import get_embedder

    name = name or settings.embedding_model
    opts = settings.embedder_options(name)
    started = time.perf_counter()
    embedder = get_embedder(name, **opts)
    try:
        loaded = _ms(started)
        started = time.perf_counter()
        vector = np.asarray(embedder.embed_query(PROBE_SENTENCE))
        embedded = _ms(started)
        if vector.shape != (embedder.dimension,) or not np.all(np.isfinite(vector)):
            raise CheckFailed(
                f"{embedder.model_id} returned a vector of shape {vector.shape},"
                f" expected ({embedder.dimension},)",
                hint="the model files are damaged or not an embedding model: reinstall them",
            )
        if not math.isclose(float(np.linalg.norm(vector)), 1.0, abs_tol=1e-3):
            raise CheckFailed(
                f"{embedder.model_id} returned a vector that is not of unit length",
                hint="the model files are damaged or not an embedding model: reinstall them",
            )
        return (
            f"{embedder.model_id} ({embedder.dimension}-d): loaded in {loaded},"
            f" one sentence embedded in {embedded}"
        )
    finally:
        embedder.close()


def multilingual_checks(settings: Settings) -> list[Check]:
    """The model of new French and mixed collections, when it is not embedding_model. Left
    to "auto" and not installed, French collections fall back to embedding_model: a warning."""
    from ..embedders import Embedders
    from ..errors import MissingDependency, ModelUnavailable
    from ..providers.models import canonical_name

    name = Embedders(settings).multilingual_name()
    default = settings.embedding_model
    if (canonical_name(name) or name) == (canonical_name(default) or default):
        return []
    auto = settings.multilingual_model.strip().lower() == "auto"
    missing: list[EngramError] = []

    def probe() -> str:
        try:
            return check_embedder(settings, name)
        except (ModelUnavailable, MissingDependency) as exc:
            if not auto:
                raise
            missing.append(exc)
            return ""

    check = _run("multilingual model", probe)
    if missing:
        return [
            Check(
                check.name,
                True,
                f"{name} is not available: new French collections get {default}",
                missing[0].hint or "pip install 'engram[multilingual]'",
                warning=True,
            )
        ]
    return [check]


def check_reranker(settings: Settings) -> str:
    from ..providers import resolve_model

    resolved = resolve_model(settings.reranker_model, kind="reranker")
    return f"{resolved.name} ({resolved.source}: {resolved.path})"


# -- collections and their index files -------------------------------------------------------
def collection_checks(settings: Settings) -> list[Check]:
    db_path = settings.db_path
    if settings.database_url or not db_path.exists():
        return []  # PostgreSQL has no index files: its indexes live in the database
    try:
        with _read_only(db_path) as conn:
            rows = conn.execute(
                "SELECT id, tenant, name, model_id, dimension FROM collections"
                " ORDER BY tenant, name"
            ).fetchall()
            chunks = dict(
                conn.execute("SELECT collection_id, count(*) FROM chunks GROUP BY collection_id")
            )
            heads = dict(
                conn.execute("SELECT collection_id, max(seq) FROM chunk_log GROUP BY collection_id")
            )
            pruned = dict(conn.execute("SELECT collection_id, pruned_seq FROM index_state"))
    except sqlite3.DatabaseError as exc:
        return [Check("collections", False, f"cannot list collections: {exc}")]
    checks = []
    for cid, tenant, name, model_id, dimension in rows:
        label = f"collection {name}" if tenant == "default" else f"collection {tenant}/{name}"
        counts = (chunks.get(cid, 0), heads.get(cid, 0), pruned.get(cid, 0))
        probe = functools.partial(check_indexes, settings, cid, name, model_id, dimension, *counts)
        checks.append(_run(label, probe))
    return checks


def check_indexes(
    settings: Settings,
    cid: int,
    name: str,
    model_id: str,
    dimension: int,
    chunks: int,
    log_head: int,
    pruned: int,
) -> str:
    """The index files of one collection against its rows. States engram repairs by itself
    at the next open — files missing (never saved, or a process killed before saving),
    unreadable, stale, or behind the change log — pass with a note; index files that would
    be *used* while disagreeing with the database fail."""
    from ..search.ann import HnswParams, VectorIndex
    from ..search.bm25 import BM25Index
    from ..store.sqlite.derived import IndexFiles

    files = IndexFiles(settings.index_dir, cid)
    base = settings.index_dir / str(cid)
    detail = f"{chunks} chunks, model {model_id}"
    rebuild = (
        f"delete {base}.* to have them rebuilt from the database at the next search"
        f" (or run `engram search -c {name} ...` once)"
    )
    # Saving index files prunes the log up to what they hold: the head is the larger mark.
    head = max(log_head, pruned)
    manifest = files.read_manifest()
    if manifest is None and chunks == 0 and head == 0:
        return detail + ", no index yet"
    if manifest is None:
        return detail + ", no saved index files: they will be rebuilt at next open"
    generation = str(manifest["generation"])
    vectors = VectorIndex(files.vectors(generation), dimension, HnswParams(settings.hnsw_m))
    keywords = BM25Index(files.keywords(generation))
    unreadable = [
        path.name
        for path, loaded in (
            (files.vectors(generation), vectors.load()),
            (files.keywords(generation), keywords.load()),
        )
        if not loaded
    ]
    if unreadable:
        return (
            detail + f", index file(s) unreadable ({', '.join(unreadable)}): they will be"
            " rebuilt at next open"
        )
    if vectors.seq != keywords.seq or vectors.seq != int(manifest["seq"]):
        return detail + ", index files saved at different points: they will be rebuilt at next open"
    if vectors.seq > head:
        raise CheckFailed(
            f"{detail}, but the index files hold changes up to {vectors.seq}, beyond the"
            f" database's {head}: they belong to another database (or to a newer state of"
            " this one, restored from a backup since)",
            hint=rebuild,
        )
    if vectors.seq < pruned:
        return detail + (
            f", index files stale (changes up to {vectors.seq}, log pruned up to {pruned}):"
            " they will be rebuilt at next open"
        )
    if head > vectors.seq:
        return detail + f", indexes {head - vectors.seq} change(s) behind (replayed at next use)"
    if len(vectors) != chunks or len(keywords) != chunks:
        raise CheckFailed(
            f"{detail}, but the vector index holds {len(vectors)} and the keyword index"
            f" {len(keywords)}",
            hint=rebuild,
        )
    return detail + ", indexes complete"


# -- chat models -----------------------------------------------------------------------------
def llm_checks(settings: Settings) -> list[Check]:
    from ..providers.llms.probe import probe_llms

    if not settings.llm.strip():
        return [Check("llm", True, "not configured: answers are extractive (ENGRAM_LLM)")]
    return [
        Check(f"llm {p.name}", True, f"{p.url} answered in {p.latency_ms:.0f} ms")
        if p.ok
        else Check(
            f"llm {p.name}",
            False,
            f"{p.url or 'bad spec'}: {p.error}",
            hint="start the model server or fix its URL in ENGRAM_LLM"
            " (PROVIDER:MODEL[@BASE_URL][#KEY_ENV])",
        )
        for p in probe_llms(settings.llm, timeout=2.0)
    ]


def run_checks(settings: Settings) -> list[Check]:
    """Every check, in the order printed."""
    return [
        _run("data directory", lambda: check_data_dir(settings.data_dir)),
        _run("disk space", lambda: check_disk(settings.data_dir)),
        *(
            postgres_checks(settings)
            if settings.database_url
            else [_run("database", lambda: check_database(settings.db_path))]
        ),
        _run("embedding model", lambda: check_embedder(settings)),
        *multilingual_checks(settings),
        _run("reranker", lambda: check_reranker(settings)),
        *collection_checks(settings),
        *llm_checks(settings),
    ]


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per check.")
@click.pass_obj
def doctor(obj: Context, as_json: bool) -> None:
    """Check the data directory, database, models, index files and LLM endpoints."""
    checks = run_checks(obj.settings())
    failed = [c for c in checks if not c.ok]
    warned = [c for c in checks if c.ok and c.warning]
    if as_json:
        for check in checks:
            click.echo(json.dumps(asdict(check), ensure_ascii=False))
    else:
        width = max(len(c.name) for c in checks)
        for check in checks:
            if not check.ok:
                mark = click.style("✗", fg="red")
            elif check.warning:
                mark = click.style("!", fg="yellow")
            else:
                mark = click.style("✓", fg="green")
            click.echo(f"{mark} {check.name:<{width}}  {check.detail}")
            if check.hint:
                click.echo(f"  {'':<{width}}  hint: {check.hint}")
        summary = f"{len(failed)} of {len(checks)} checks failed" if failed else "all checks passed"
        if warned:
            summary += f", {len(warned)} warning{'s' if len(warned) > 1 else ''}"
        click.echo(summary)
    if failed:
        raise click.exceptions.Exit(1)
