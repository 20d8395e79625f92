"""``engram backup PATH`` / ``engram restore PATH``: a consistent copy of the whole database.

* SQLite: the ``sqlite3`` online backup API copies the database file page by page from one
  read snapshot, while engram keeps serving. The HNSW and BM25 index files are copied just
  before it: they are derived, and after a restore (which replaces the old ones, since they
  describe the database being replaced) they replay the database's change log from where
  they were saved, or are rebuilt from the tables if they cannot (missing or mismatched).
* PostgreSQL: ``pg_dump --format=custom`` / ``pg_restore`` (API keys, jobs and every table
  included). pg_dump must be at least the server's major version: it is looked for on PATH
  and in the ``pgserver`` package. Row-level security applies to the dump and the restore
  as to engram itself, so both run with ``engram.tenant = '*'`` and ``--enable-row-security``.
* ``method="logical"`` (PostgreSQL without a suitable pg_dump, or asked for): the portable
  export of engram.transfer. It does not hold API keys (secrets) or background jobs.

A backup is a folder with ``manifest.json`` (format, backend, method, engram version,
creation time, each file's size and SHA-256). Restore verifies the files first, and refuses
a target that holds data unless ``force``.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..config import Settings
from ..errors import Conflict, InvalidInput, MissingDependency, StoreError
from . import archive
from . import format as fmt
from .report import TransferReport

BACKUP_FORMAT = "engram-backup"
BACKUP_VERSION = 1
SQLITE_FILE = "engram.db"
DUMP_FILE = "engram.dump"
EXPORT_DIR = "export"
INDEX_DIR = "indexes"

Method = Literal["auto", "native", "logical"]

# Tables whose rows make a database "not empty" for restore (both backends).
_DATA_TABLES = (
    "collections",
    "documents",
    "conversations",
    "memories",
    "events",
    "jobs",
    "api_keys",
)


# -- entry points -----------------------------------------------------------------------------
def backup(
    settings: Settings, path: str | Path, *, method: Method = "auto", force: bool = False
) -> TransferReport:
    """Back the database of ``settings`` up into the new folder ``path``."""
    try:
        return _backup(settings, Path(path), method, force)
    except OSError as exc:
        raise InvalidInput(
            f"cannot write the backup to {path}: {exc.strerror or exc}",
            hint="check the path, its permissions and the free disk space",
        ) from exc


ROTATED = re.compile(r"engram-\d{8}T\d{6}(?:\d{6})?Z")


def backup_rotating(
    settings: Settings, folder: str | Path, *, keep: int, method: Method = "auto"
) -> TransferReport:
    """A new backup in ``folder/engram-<UTC time>``, then all but the ``keep`` newest
    backups of that form in ``folder`` removed (other files there are left alone). Meant
    for a timer (docs/operations.md has a systemd unit); ``keep`` >= 1."""
    if keep < 1:
        raise InvalidInput(f"--keep must be at least 1, got {keep}")
    parent = Path(folder)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    target = parent / f"engram-{stamp}Z"
    if target.exists():  # two backups within a second
        target = parent / f"engram-{stamp}{time.time_ns() // 1000 % 1_000_000:06d}Z"
    parent.mkdir(parents=True, exist_ok=True)
    report = backup(settings, target, method=method)
    rotated = sorted(  # only what `engram backup` wrote: its name and its manifest
        (
            p
            for p in parent.iterdir()
            if p.is_dir() and ROTATED.fullmatch(p.name) and (p / fmt.MANIFEST).exists()
        ),
        key=lambda p: p.name,
    )
    removed = []
    for old in rotated[: max(0, len(rotated) - keep)]:
        shutil.rmtree(old)
        removed.append(old.name)
    report.extra.update(kept=[p.name for p in rotated if p.name not in removed], removed=removed)
    return report


def _backup(settings: Settings, path: Path, method: Method, force: bool) -> TransferReport:
    started = time.perf_counter()
    target = Path(path)
    postgres = bool(settings.database_url)
    report = TransferReport("backup", str(target))
    with archive.writing(target, force=force) as root:
        manifest: dict[str, Any]
        if method == "logical":
            manifest = _logical_backup(settings, root, report)
        elif postgres:
            url = settings.database_url or ""
            tools = find_pg_tools(url, need="pg_dump")
            if tools.error and method == "native":
                raise StoreError(tools.error, hint=tools.hint)
            if tools.error:
                report.notes.append(f"{tools.error}: made a logical backup instead")
                manifest = _logical_backup(settings, root, report)
            else:
                manifest = _manifest("postgres", "native", _pg_dump(url, tools, root / DUMP_FILE))
                manifest["server_version"] = tools.server_version
                manifest["pg_dump"] = {"path": str(tools.pg_dump), "version": tools.version}
        else:
            # Index files first, the database second: the files are then never newer than
            # the database, so after a restore they only need to replay its change log.
            files = _copy_indexes(settings.index_dir, root / INDEX_DIR)
            db_files, counts = _sqlite_backup(settings.db_path, root / SQLITE_FILE)
            files.update(db_files)
            manifest = _manifest("sqlite", "native", files)
            manifest["counts"] = counts
            report.counts.update(counts)
        report.bytes = sum(int(f["bytes"]) for f in manifest["files"].values())
        (root / fmt.MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    report.extra.update(backend=manifest["backend"], method=manifest["method"])
    report.seconds = time.perf_counter() - started
    return report


def restore(settings: Settings, path: str | Path, *, force: bool = False) -> TransferReport:
    """Make the database of ``settings`` the backup's. Refuses a target holding data unless
    ``force`` (whose data is then replaced, not merged)."""
    started = time.perf_counter()
    source = Path(path)
    manifest = read_backup_manifest(source)
    report = TransferReport("restore", str(source))
    report.extra.update(backend=manifest["backend"], method=manifest["method"])
    postgres = bool(settings.database_url)
    if manifest["method"] == "logical":
        _verify(source, manifest["files"])  # the export's manifest; import checks the rest
        _logical_restore(settings, source, force, report)
    elif manifest["backend"] != ("postgres" if postgres else "sqlite"):
        raise InvalidInput(
            f"this is a {manifest['backend']} backup; the configured database is"
            f" {'PostgreSQL' if postgres else 'SQLite'}",
            hint="restore it where it came from, or move data across backends with"
            " `engram export` / `engram import`",
        )
    elif postgres:
        _verify(source, manifest["files"])
        _pg_restore(settings.database_url or "", source / DUMP_FILE, force)
    else:
        _verify(source, manifest["files"])
        report.counts.update(_sqlite_restore(settings, source / SQLITE_FILE, force))
    report.bytes = sum(int(f.get("bytes", 0)) for f in manifest["files"].values())
    report.seconds = time.perf_counter() - started
    return report


def read_backup_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((path / fmt.MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInput(
            f"{path} is not an engram backup (no {fmt.MANIFEST})",
            hint="pass the folder written by `engram backup`",
        ) from None
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{path / fmt.MANIFEST} is unreadable: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != BACKUP_FORMAT:
        raise InvalidInput(
            f"{path} is not an engram backup",
            hint="`engram import` reads exports; `engram restore` reads backups",
        )
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > BACKUP_VERSION:
        raise InvalidInput(
            f"backup format version {version!r} is not supported (this engram reads up to"
            f" {BACKUP_VERSION})",
            hint=f"upgrade engram (the backup was made by {manifest.get('engram_version')})",
        )
    if manifest.get("method") not in ("native", "logical") or not isinstance(
        manifest.get("files"), dict
    ):
        raise InvalidInput(f"{path / fmt.MANIFEST} is malformed")
    return manifest


# -- shared -----------------------------------------------------------------------------------
def _manifest(backend: str, method: str, files: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "format": BACKUP_FORMAT,
        "format_version": BACKUP_VERSION,
        "engram_version": fmt.engram_version(),
        "created_at": fmt.now(),
        "backend": backend,
        "method": method,
        "files": files,
    }


def _file_info(path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
            size += len(block)
    return {"bytes": size, "sha256": digest.hexdigest()}


def _verify(root: Path, files: dict[str, Any]) -> None:
    for name, expected in files.items():
        path = root / name
        if not path.is_file():
            raise InvalidInput(f"the backup lacks {name}", hint="copy the backup folder whole")
        if _file_info(path) != {"bytes": expected.get("bytes"), "sha256": expected.get("sha256")}:
            raise InvalidInput(
                f"{path} does not match the backup's manifest: it is damaged or was modified"
            )


# -- SQLite -----------------------------------------------------------------------------------
def _sqlite_counts(conn: sqlite3.Connection) -> dict[str, int]:
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return {
        t: int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0])
        for t in _DATA_TABLES
        if t in names
    }


def _sqlite_backup(db_path: Path, target: Path) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
    if not db_path.is_file():
        raise InvalidInput(
            f"there is no database to back up at {db_path}",
            hint="point --data-dir (ENGRAM_DATA_DIR) at an engram data directory",
        )
    try:
        src = sqlite3.connect(db_path, timeout=30.0)
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)  # one step: one read snapshot, consistent whatever writers do
            check = dst.execute("PRAGMA integrity_check").fetchone()[0]
            counts = _sqlite_counts(dst)
        finally:
            dst.close()
            src.close()
    except sqlite3.Error as exc:
        raise StoreError(f"SQLite backup failed: {exc}") from exc
    if check != "ok":
        raise StoreError(f"the backup copy fails its integrity check: {check}")
    return {SQLITE_FILE: _file_info(target)}, counts


def _copy_indexes(source: Path, target: Path) -> dict[str, dict[str, Any]]:
    """Copy each collection's current index files (its manifest and the generation it
    names), holding the collection's index lock shared so that no save replaces them
    mid-copy. Lock files, temporary files and stale generations are not copied."""
    from ..store.sqlite.derived import IndexFiles
    from ..store.sqlite.filelock import file_lock

    files: dict[str, dict[str, Any]] = {}
    if not source.is_dir():
        return files
    for manifest_path in sorted(source.glob("*.manifest.json")):
        cid = manifest_path.name.split(".", 1)[0]
        if not cid.isdigit():
            continue
        index = IndexFiles(source, int(cid))
        with file_lock(index.lock, exclusive=False):
            manifest = index.read_manifest()
            if manifest is None:
                continue
            for path in [index.manifest, *index.generation_files(str(manifest["generation"]))]:
                target.mkdir(parents=True, exist_ok=True)
                with contextlib.suppress(FileNotFoundError):  # deleted with its collection
                    shutil.copyfile(path, target / path.name)
                    files[f"{INDEX_DIR}/{path.name}"] = _file_info(target / path.name)
    return files


def _sqlite_restore(settings: Settings, backup_file: Path, force: bool) -> dict[str, int]:
    db_path = settings.db_path
    db_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        dst = sqlite3.connect(db_path, timeout=30.0)
        try:
            existing = {t: n for t, n in _sqlite_counts(dst).items() if n}
            if existing and not force:
                raise Conflict(
                    f"{db_path} holds data ({_describe(existing)})",
                    hint="restore into an empty data directory, or pass --force to replace it",
                )
            src = sqlite3.connect(backup_file)
            try:
                src.backup(dst)  # page by page into the live file, under its write lock
            finally:
                src.close()
            check = dst.execute("PRAGMA integrity_check").fetchone()[0]
            counts = _sqlite_counts(dst)
        finally:
            dst.close()
    except sqlite3.Error as exc:
        raise StoreError(f"SQLite restore failed: {exc}") from exc
    if check != "ok":
        raise StoreError(f"the restored database fails its integrity check: {check}")
    # The index files describe the database that was replaced: the backup's take their
    # place (they catch up with its change log on first use), or none and they are rebuilt.
    shutil.rmtree(settings.index_dir, ignore_errors=True)
    saved = backup_file.parent / INDEX_DIR
    if saved.is_dir():
        shutil.copytree(saved, settings.index_dir)
    return counts


def _describe(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {t}" for t, n in counts.items())


# -- PostgreSQL -------------------------------------------------------------------------------
@dataclass(slots=True)
class PgTools:
    pg_dump: Path | None = None
    pg_restore: Path | None = None
    version: int = 0  # major version of the chosen tools
    server_version: int = 0
    error: str | None = None
    hint: str | None = None


def _tool_major(path: Path) -> int | None:
    try:
        out = subprocess.run(
            [str(path), "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    # "pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)": the first version number.
    match = re.search(r"\b(\d+)(?:\.\d+)+", out)
    return int(match[1]) if match else None


def _candidate_dirs() -> list[Path]:
    dirs: list[Path] = []
    for tool in ("pg_dump", "pg_restore"):
        found = shutil.which(tool)
        if found:
            dirs.append(Path(found).resolve().parent)
    spec = importlib.util.find_spec("pgserver")
    if spec and spec.origin:
        dirs.append(Path(spec.origin).parent / "pginstall" / "bin")
    return list(dict.fromkeys(dirs))


def _server_major(url: str) -> int:
    try:
        import psycopg
    except ImportError as exc:
        raise MissingDependency(
            "PostgreSQL backups need psycopg", hint='pip install "engram[postgres]"'
        ) from exc
    try:
        with psycopg.connect(url, connect_timeout=10) as conn:
            row = conn.execute("SHOW server_version_num").fetchone()
    except psycopg.Error as exc:
        raise StoreError(f"cannot reach PostgreSQL: {exc}") from exc
    return int(row[0]) // 10000 if row else 0


def find_pg_tools(url: str, *, need: str) -> PgTools:
    """pg_dump and pg_restore of a major version >= the server's (an older pg_dump refuses
    to dump a newer server: e.g. Debian 12's pg_dump 15 against PostgreSQL 16)."""
    server = _server_major(url)
    seen: list[str] = []
    for directory in _candidate_dirs():
        dump, rest = directory / "pg_dump", directory / "pg_restore"
        if not (dump.is_file() and rest.is_file()):
            continue
        major = _tool_major(dump)
        seen.append(f"{dump} ({major})")
        if major is not None and major >= server:
            return PgTools(dump, rest, major, server)
    return PgTools(
        server_version=server,
        error=f"no {need} of major version >= {server} (the server's) was found"
        + (f"; found {', '.join(seen)}" if seen else ""),
        hint=f"install the PostgreSQL {server} client tools, or `pip install pgserver` (which"
        " bundles them), or use --method logical",
    )


def _pg_env() -> dict[str, str]:
    """Environment of pg_dump / pg_restore: every tenant visible to row-level security."""
    env = dict(os.environ)
    env["PGOPTIONS"] = (env.get("PGOPTIONS", "") + " -c engram.tenant=*").strip()
    return env


def _run(args: list[str], what: str) -> None:
    try:
        done = subprocess.run(args, capture_output=True, text=True, env=_pg_env(), check=False)
    except OSError as exc:
        raise StoreError(f"{what} could not start: {exc}") from exc
    if done.returncode != 0:
        message = (done.stderr or done.stdout).strip().splitlines()
        raise StoreError(
            f"{what} failed: {' / '.join(message[-3:]) or f'exit code {done.returncode}'}",
            hint="check the database URL, the role's rights, and that the vector extension exists",
        )


def _pg_dump(url: str, tools: PgTools, target: Path) -> dict[str, dict[str, Any]]:
    assert tools.pg_dump is not None
    _run(
        [
            str(tools.pg_dump),
            "--format=custom",
            "--enable-row-security",
            "--no-owner",
            "--no-privileges",
            f"--file={target}",
            f"--dbname={url}",
        ],
        "pg_dump",
    )
    return {DUMP_FILE: _file_info(target)}


def _pg_counts(url: str) -> dict[str, int]:
    import psycopg

    counts: dict[str, int] = {}
    try:
        with psycopg.connect(url, connect_timeout=10) as conn:
            conn.execute("SELECT set_config('engram.tenant', '*', false)")
            present = {
                r[0]
                for r in conn.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
                )
            }
            for table in _DATA_TABLES:
                if table in present:
                    row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
                    counts[table] = int(row[0]) if row else 0
    except psycopg.Error as exc:
        raise StoreError(f"cannot read the target database: {exc}") from exc
    return counts


def _pg_restore(url: str, dump: Path, force: bool) -> None:
    existing = {t: n for t, n in _pg_counts(url).items() if n}
    if existing and not force:
        raise Conflict(
            f"the target database holds data ({_describe(existing)})",
            hint="restore into an empty database, or pass --force to replace its contents",
        )
    tools = find_pg_tools(url, need="pg_restore")
    if tools.error or tools.pg_restore is None:
        raise StoreError(tools.error or "no pg_restore", hint=tools.hint)
    with tempfile.TemporaryDirectory(prefix="engram-restore-") as tmp:
        # The extension (vector) needs a superuser to create: it must exist already, so the
        # restore leaves it alone and only replaces engram's own objects.
        listing = subprocess.run(
            [str(tools.pg_restore), "--list", str(dump)],
            capture_output=True,
            text=True,
            check=False,
        )
        if listing.returncode != 0:
            raise StoreError(f"pg_restore cannot read {dump}: {listing.stderr.strip()}")
        keep = [
            line
            for line in listing.stdout.splitlines()
            if not re.search(r"\b(EXTENSION|COMMENT - EXTENSION)\b", line)
        ]
        list_file = Path(tmp) / "restore.list"
        list_file.write_text("\n".join(keep) + "\n")
        _run(
            [
                str(tools.pg_restore),
                "--clean",
                "--if-exists",
                "--no-owner",
                "--no-privileges",
                "--enable-row-security",
                "--single-transaction",
                "--exit-on-error",
                f"--use-list={list_file}",
                f"--dbname={url}",
                str(dump),
            ],
            "pg_restore",
        )


# -- logical (the portable export) ------------------------------------------------------------
@contextlib.contextmanager
def _store(settings: Settings) -> Iterator[Any]:
    from ..store import open_store

    store = open_store(settings)
    try:
        yield store
    finally:
        store.close()


def _logical_backup(settings: Settings, root: Path, report: TransferReport) -> dict[str, Any]:
    from .export import export_data

    with _store(settings) as store:
        exported = export_data(store, root / EXPORT_DIR)
        backend = fmt.backend_name(store)
    report.counts.update(exported.counts)
    report.notes.append("a logical backup holds no API keys and no background jobs")
    files = {f"{EXPORT_DIR}/{fmt.MANIFEST}": _file_info(root / EXPORT_DIR / fmt.MANIFEST)}
    manifest = _manifest(backend, "logical", files)
    manifest["counts"] = dict(exported.counts)
    return manifest


def _logical_restore(settings: Settings, source: Path, force: bool, report: TransferReport) -> None:
    from .import_ import import_data

    with _store(settings) as store:
        with store.snapshot() as snap:
            tenants = snap.tenants()
        if tenants or store.list_api_keys():
            # Replacing would need to delete what the backup does not describe (API keys,
            # jobs, events): a logical backup restores into an empty database only.
            raise Conflict(
                "the target database holds data; a logical backup restores into an empty"
                " database only" + (" (even with --force)" if force else ""),
                hint="restore into a new database or data directory, or use `engram import"
                " --replace` to overwrite collections",
            )
        imported = import_data(store, source / EXPORT_DIR)
    report.counts.update(imported.counts)
    report.notes += imported.notes
