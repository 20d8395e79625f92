"""datasets/build_manpages_fr.py on synthetic roff pages (no Debian package needed): the
roff renderer, the filters, and a BEIR directory that engram's loader reads."""

from __future__ import annotations

import gzip
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from engram.eval import load_beir

SCRIPT = Path(__file__).resolve().parents[1] / "datasets" / "build_manpages_fr.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_manpages_fr", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


bm = _load()

FILLER = " ".join(f"mot{i}" for i in range(60))
TRADUCTION = ".SH TRADUCTION\nLa traduction française de cette page a été créée par Personne.\n"

CP = r""".\" -*- coding: UTF-8 -*-
.\" SPDX-License-Identifier: GPL-2.0-or-later
.TH CP 1 "Septembre 2022" "GNU coreutils 9.1" "Commandes de l'utilisateur"
.SH NOM
cp \- Copier des fichiers et des répertoires
.SH SYNOPSIS
\fBcp\fP [\fI\,OPTION\/\fP]... \fI\,SOURCE CIBLE\/\fP
.SH DESCRIPTION
.ds Cp \fIcp\fP
\*(Cp copie la \fISOURCE\fP vers la \fICIBLE\fP\ ; voir \(lqcopie\(rq\-
.BR ln (1)
et
.B rsync
aussi. \" a comment
.if n \{\
.ds zz invisible
\}
.TS
allbox;
lb lb
l l.
Option	Effet
\-a	archive
.TE
.nf
ligne un
ligne deux
.fi
@FILLER@
@TRADUCTION@"""

LS = r""".TH LS 1
.SH NOM
ls \- Afficher le contenu de répertoires
.SH DESCRIPTION
Afficher des informations sur les fichiers. @FILLER@ alpha
@TRADUCTION@"""

DIR = r""".TH DIR 1
.SH NOM
dir \- Afficher le contenu de répertoires
.SH DESCRIPTION
Lister le contenu des répertoires, en colonnes. @FILLER@ beta gamma delta epsilon
@TRADUCTION@"""

# same body as ls, different description: a near-duplicate page that must go
VDIR = LS.replace("ls \\- Afficher le contenu de répertoires", "vdir \\- Lister en détail")

OPEN = r""".TH open 2 "5 février 2023" "Pages du manuel de Linux 6.03"
.SH NOM
open, openat, creat \- Ouvrir ou créer éventuellement un fichier
.SH DESCRIPTION
.PP
L'appel système \fBopen\fP() ouvre le fichier indiqué par \fIpathname\fP. @FILLER@
@TRADUCTION@"""

SHORT_QUERY = r""".TH cos 3
.SH NOM
cos, cosf \- Fonction cosinus
.SH DESCRIPTION
Ces fonctions calculent le cosinus de \fIx\fP. @FILLER@ zeta
"""

EMPTY = """.TH stub 8
.SH NOM
stub \\- Une page presque vide ici
.SH DESCRIPTION
Rien.
"""

MDOC = """.Dd 26 octobre 2022
.Dt FILE 1
.Sh NOM
.Nm file
.Nd Déterminer le type d'un fichier
"""


def _fill(page: str) -> str:
    return page.replace("@FILLER@", FILLER).replace("@TRADUCTION@", TRADUCTION)


@pytest.fixture
def man_root(tmp_path: Path) -> Path:
    """An extracted-.deb layout: usr/share/man/fr/manN/ plus a Debian changelog."""
    man = tmp_path / "root" / "usr" / "share" / "man" / "fr"
    for sub in ("man1", "man2", "man3", "man8"):
        (man / sub).mkdir(parents=True)
    pages = {
        "man1/cp.1.gz": CP,
        "man1/ls.1.gz": LS,
        "man1/dir.1.gz": DIR,
        "man1/vdir.1.gz": VDIR,
        "man1/file.1.gz": MDOC,
        "man2/open.2": OPEN,  # not compressed
        "man3/cos.3.gz": SHORT_QUERY,
        "man8/stub.8.gz": EMPTY,
        "man2/creat.2.gz": ".so man2/open.2\n",
    }
    for rel, text in pages.items():
        data = _fill(text).encode()
        (man / rel).write_bytes(gzip.compress(data, mtime=0) if rel.endswith(".gz") else data)
    (man / "man2" / "openat.2").symlink_to("open.2")
    doc = tmp_path / "root" / "usr" / "share" / "doc" / "manpages-fr"
    doc.mkdir(parents=True)
    changelog = "manpages-l10n (4.18.1-1) unstable; urgency=medium\n\n  * test\n"
    (doc / "changelog.Debian.gz").write_bytes(gzip.compress(changelog.encode(), mtime=0))
    return tmp_path / "root"


def test_render_turns_roff_into_plain_text() -> None:
    page = bm.render(_fill(CP))
    assert (page.title, page.section) == ("CP", "1")
    sections = dict(page.sections)
    assert sections["NOM"] == "cp - Copier des fichiers et des répertoires"
    desc = sections["DESCRIPTION"]
    # .ds strings, fonts, glyphs, \- and the alternating-font macros
    assert desc.startswith("cp copie la SOURCE vers la CIBLE ; voir “copie”- ln(1) et rsync aussi.")
    assert "comment" not in desc and "invisible" not in desc and "\\" not in desc
    assert "Option Effet\n-a archive" in desc  # one line per table row, format lines gone
    assert "ligne un\nligne deux\n" in desc  # no-fill lines keep their breaks
    assert bm.split_nom(sections["NOM"]) == ("cp", "Copier des fichiers et des répertoires")
    assert bm.render(MDOC).mdoc


def test_build_writes_a_beir_set_engram_reads(man_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    record = bm.build(man_root, out, min_body_words=40)
    ds = load_beir(out)
    docs = {d.key: d for d in ds.iter_corpus()}
    # vdir: near-duplicate of ls; stub: body too short; file: mdoc; creat/openat: aliases
    assert sorted(docs) == ["cos.3", "cp.1", "dir.1", "ls.1", "open.2"]
    # ls and dir share their description: both stay as documents, neither is a query;
    # "Fonction cosinus" is too short to be a query
    assert ds.queries == {
        "cp.1": "Copier des fichiers et des répertoires",
        "open.2": "Ouvrir ou créer éventuellement un fichier",
    }
    assert ds.qrels == {"cp.1": {"cp.1": 1}, "open.2": {"open.2": 1}}
    assert docs["open.2"].title == "open, openat, creat (2)"
    for doc in docs.values():
        assert "NOM" not in doc.text and "TRADUCTION" not in doc.text
        assert doc.text.startswith(("SYNOPSIS\n", "DESCRIPTION\n"))
    assert "Copier des fichiers" not in docs["cp.1"].text
    assert record["packages"] == {"manpages-fr": "manpages-l10n 4.18.1-1"}
    assert record["dropped"] == {
        "alias (.so)": 1,
        "alias (symlink)": 1,
        "body too short": 1,
        "mdoc or no .TH": 1,
        "near-duplicate page": 1,
        "query shared by several pages": 2,
        "query too short": 1,
    }
    assert json.loads((out / "provenance.json").read_text()) == record


def test_build_is_deterministic_and_truncates(man_root: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    bm.build(man_root / "usr" / "share" / "man" / "fr", a, max_chars=200, max_docs=3, seed=7)
    bm.build(man_root, b, max_chars=200, max_docs=3, seed=7)
    for name in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    rows = [json.loads(line) for line in (a / "corpus.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all(len(r["text"]) <= 200 for r in rows)
    assert [r["_id"] for r in rows] == sorted(r["_id"] for r in rows)
    other = tmp_path / "c"
    bm.build(man_root, other, max_chars=200, max_docs=3, seed=8)
    # another seed samples other pages from the 5 (with 10 possible samples, 7 and 8 differ)
    assert (other / "corpus.jsonl").read_bytes() != (a / "corpus.jsonl").read_bytes()


def test_command_line(man_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(man_root), "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["documents"] == 5
    missing = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path / "nowhere"), "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode != 0 and "no man[1-9]/ directory" in missing.stderr


def test_english_queries_over_the_same_corpus(man_root: Path, tmp_path: Path) -> None:
    en = tmp_path / "en"
    man = en / "usr" / "share" / "man"
    (man / "man1").mkdir(parents=True)
    (man / "man2").mkdir()
    pages = {
        "man1/cp.1.gz": ".TH CP 1\n.SH NAME\ncp \\- copy files and directories\n",
        "man2/open.2.gz": ".so man2/openat.2\n",  # an alias stub, followed once
        "man2/openat.2.gz": ".TH open 2\n.SH NAME\nopen, openat \\- open and possibly create a file\n",
    }
    for rel, text in pages.items():
        (man / rel).write_bytes(gzip.compress(text.encode(), mtime=0))
    fr, xling = tmp_path / "fr", tmp_path / "xling"
    bm.build(man_root, fr)
    record = bm.build(man_root, xling, english=en)
    assert (xling / "corpus.jsonl").read_bytes() == (fr / "corpus.jsonl").read_bytes()
    ds = load_beir(xling)
    assert ds.queries == {
        "cp.1": "copy files and directories",
        "open.2": "open and possibly create a file",
    }
    assert record["query_language"] == "en" and record["queries_verbatim_in_body"] == 0
