"""Build a French known-item retrieval set (BEIR layout) from the French Linux man pages.

Source: the Debian packages ``manpages-fr`` and ``manpages-fr-dev`` (translations by the
manpages-l10n project), extracted without installing them::

    apt-get download manpages-fr manpages-fr-dev
    for f in manpages-fr*.deb; do dpkg-deb -x "$f" /tmp/manpages-fr-src; done
    python datasets/build_manpages_fr.py /tmp/manpages-fr-src --out /tmp/manpages-fr

(``/usr/share/man/fr`` works too when the packages are installed.) Each man page becomes one
document: its text rendered from roff by a small renderer in this file (no groff needed, so
the output does not depend on a groff version), without its NOM section and without the
TRADUCTION and COLOPHON boilerplate, cut to ``--max-chars``. Its query is the one-line
description of the NOM line (``cp \\- Copier des fichiers et des répertoires`` gives
"Copier des fichiers et des répertoires"); the page is the only relevant document.
Dropped: symbolic links and ``.so`` stubs (aliases), mdoc pages (no ``.TH``), pages with
fewer than ``--min-body-words`` words, near-duplicate pages (word 5-gram Jaccard >=
``--near-dup``; the first in sorted order stays), and queries that are shorter than
``--min-query-words`` or shared by several pages (those pages stay as distractors).
``--english DIR`` (the ``manpages`` and ``manpages-dev`` packages extracted the same way)
writes a cross-lingual variant instead: the same corpus, the English originals' NAME lines
as queries. Name its output directory ``manpages-fr`` too (in another parent directory):
``engram eval`` names collections ``eval-<directory name>-<model>``, so it reuses the
French variant's ingest.

The output is deterministic: files are read in sorted order and any sampling down to
``--max-docs`` uses ``--seed``. A ``provenance.json`` next to the BEIR files records the
package versions, the parameters and the counts. See ``datasets/README.md``
for the licences.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import sys
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_OUT = Path("/tmp/manpages-fr")
SKIPPED_SECTIONS = {"NOM", "NAME", "TRADUCTION", "COLOPHON"}

# \(xx and \[xx] glyphs that occur in the pages; anything else renders as nothing
GLYPHS = {
    "bu": "•", "aq": "'", "em": "—", "en": "–", "co": "©", "hy": "-", "at": "@", "ha": "^",
    "ti": "~", "dq": '"', "lq": "“", "rq": "”", "cq": "’", "oq": "‘", "rs": "\\", "de": "°",
    "+-": "±", "ga": "`", "la": "⟨", "ra": "⟩", "bv": "|", "or": "|", "sl": "/", "pd": "∂",
    ">=": "≥", "<=": "≤", "mi": "−", "fm": "′", "sd": "″", "aa": "´", "*W": "Ω", "*p": "π",
    "*b": "β", "*i": "ι", "**": "∗", "mu": "×", "di": "÷", "->": "→", "<-": "←", "eq": "=",
    "pl": "+", "no": "¬", "tm": "™", "rg": "®", "ss": "ß", "Fo": "«", "Fc": "»", "fo": "‹",
    "fc": "›", "ua": "↑", "da": "↓", "lh": "☜", "rh": "☞", "ci": "○", "sq": "□",
}  # fmt: skip
# \*(xx strings defined by common preambles (pod2man, the man macros)
STRINGS = {"lq": "“", "rq": "”", "C`": '"', "C'": '"', "L\"": "“", "R\"": "”", "Tm": "™",
           "R": "®", "Aq": "'", "-": "—"}  # fmt: skip
SIMPLE_ESCAPES = {"-": "-", "e": "\\", "\\": "\\", " ": " ", "~": " ", "0": " ", "t": " ",
                  "'": "´", "`": "`", ".": ".", "_": "_"}  # fmt: skip

_ESCAPE = re.compile(
    r"""\\(?:
        \(\S\S | \[[^\]]*\] |                          # glyphs
        \*(?:\(\S\S|\[[^\]]*\]|\S) |                   # strings
        f(?:\(\S\S|\[[^\]]*\]|\S) |                    # fonts
        s[-+]?(?:\d\d?|\(\d\d|\[\d+\]) |               # sizes
        n[-+]?(?:\(\S\S|\[[^\]]*\]|\S) |               # registers
        [hvwlLoNbxXSDRZ](?:'[^']*'|\[[^\]]*\]) |       # drawing, motions, widths
        [kz$]\S? | [gmMFY](?:\(\S\S|\[[^\]]*\]|\S) |
        .
    )""",
    re.VERBOSE | re.DOTALL,
)


def render_inline(text: str, strings: dict[str, str] | None = None) -> str:
    """Render the escapes of one roff text line to plain text (fonts and motions dropped).

    ``strings`` holds the page's own ``.ds`` definitions (raw roff, rendered on use).
    """

    def one(match: re.Match[str]) -> str:
        esc = match.group(0)[1:]
        kind = esc[0]
        if kind in "([":
            name = esc[2:-1] if kind == "[" else esc[1:]
            return GLYPHS.get(name, "")
        if kind == "*":
            rest = esc[1:]
            name = rest[1:] if rest.startswith("(") else rest.strip("[]")
            if strings and name in strings:
                return render_inline(strings[name])  # one level: no recursion
            return STRINGS.get(name, "")
        if len(esc) == 1:
            return SIMPLE_ESCAPES.get(kind, "")
        return ""

    return _ESCAPE.sub(one, text)


def _strip_comment(line: str) -> str:
    # \" and \# start a comment unless the backslash is itself escaped (\\")
    for match in re.finditer(r"\\(.)", line):
        if match.group(1) in '"#':
            return line[: match.start()]
    return line


def _split_args(rest: str) -> list[str]:
    """Split request arguments: blanks separate, double quotes group ("" is a quote)."""
    args: list[str] = []
    i, n = 0, len(rest)
    while i < n:
        while i < n and rest[i] in " \t":
            i += 1
        if i >= n:
            break
        if rest[i] == '"':
            i += 1
            buf = []
            while i < n:
                if rest[i] == '"':
                    if i + 1 < n and rest[i + 1] == '"':
                        buf.append('"')
                        i += 2
                        continue
                    i += 1
                    break
                buf.append(rest[i])
                i += 1
            args.append("".join(buf))
        else:
            j = i
            while j < n and rest[j] not in " \t":
                j += 1
            args.append(rest[i:j])
            i = j
    return args


@dataclass
class Page:
    """A man page rendered to plain text, section by section (headings as given)."""

    title: str = ""
    section: str = ""
    sections: list[tuple[str, str]] = field(default_factory=list)
    mdoc: bool = False


_FONT_ALT = {"BR", "RB", "IR", "RI", "BI", "IB"}
_FONT_ONE = {"B", "I", "SM", "SB", "CW", "CR"}
_BREAKS = {"PP", "P", "LP", "sp", "br", "HP", "RS", "RE", "in", "ti", "SS", "TP", "TQ", "IP",
           "EX", "EE", "nf", "fi", "Vb", "Ve", "ne", "bp"}  # fmt: skip


class _Renderer:
    def __init__(self) -> None:
        self.page = Page()
        self.heading: str | None = None
        self.paragraphs: list[str] = []
        self.line: list[str] = []
        self.fill = True
        self.strings: dict[str, str] = {}

    def inline(self, text: str) -> str:
        return render_inline(text, self.strings)

    def text(self, words: str) -> None:
        if not words.strip():
            self.brk()
            return
        self.line.append(words.strip())
        if not self.fill:
            self.brk()

    def brk(self) -> None:
        if self.line:
            self.paragraphs.append(" ".join(self.line))
            self.line = []

    def end_section(self) -> None:
        self.brk()
        if self.heading is not None:
            body = "\n".join(p for p in self.paragraphs if p.strip())
            self.page.sections.append((self.heading, body))
        self.paragraphs = []

    def request(self, name: str, args: list[str]) -> None:
        if name == "TH":
            self.page.title = self.inline(args[0]) if args else ""
            self.page.section = args[1] if len(args) > 1 else ""
        elif name == "SH":
            self.end_section()
            self.heading = " ".join(self.inline(a) for a in args).strip()
        elif name in _FONT_ONE:
            if args:
                self.text(" ".join(self.inline(a) for a in args))
        elif name in _FONT_ALT:
            self.text("".join(self.inline(a) for a in args))
        elif name in {"UE", "ME"}:
            if args and self.line:  # trailing punctuation right after the link text
                self.line[-1] += self.inline(args[0])
        elif name in _BREAKS:
            self.brk()
            if name in {"nf", "EX", "Vb"}:
                self.fill = False
            elif name in {"fi", "EE", "Ve"}:
                self.fill = True
            if name == "SS" and args:
                self.text(" ".join(self.inline(a) for a in args))
                self.brk()
            elif name == "IP" and args and self.inline(args[0]).strip() not in {"", "•"}:
                self.line.append(self.inline(args[0]).strip())


def _lines(source: str) -> Iterator[str]:
    """Physical lines with comments removed and \\<newline> continuations joined."""
    pending = ""
    for raw in source.splitlines():
        if raw.startswith(('.\\"', "'\\\"", '\\"', ".\\#")):
            continue
        line = _strip_comment(raw) if "\\" in raw else raw
        if line.endswith("\\") and not line.endswith("\\\\"):
            pending += line[:-1]
            continue
        yield pending + line
        pending = ""
    if pending:
        yield pending


def render(source: str) -> Page:
    """Render the roff source of a man(7) page to a :class:`Page`."""
    r = _Renderer()
    lines = list(_lines(source))
    i = 0
    depth = 0  # inside a skipped \{ ... \} conditional block
    while i < len(lines):
        line = lines[i]
        i += 1
        if depth:
            depth += line.count("\\{") - line.count("\\}")
            continue
        if not line.startswith((".", "'")):
            r.text(r.inline(line))
            continue
        match = re.match(r"^[.']\s*(\S*)\s*(.*)$", line)
        if match is None:
            continue
        name, rest = match.group(1), match.group(2)
        if name in {"Dd", "Dt", "Sh", "Nm", "Nd"}:
            r.page.mdoc = True
        if name in {"if", "ie", "el"}:
            # conditionals only appear in preambles (pod2man) here: skip them and their block
            depth = max(0, line.count("\\{") - line.count("\\}"))
            continue
        if name in {"ds", "ds1"}:
            key, _, value = rest.partition(" ")
            r.strings[key] = value.lstrip().removeprefix('"')
            continue
        if name in {"de", "am", "ig", "de1"}:
            while i < len(lines) and not lines[i].startswith(".."):
                i += 1
            i += 1
            continue
        if name == "TS":
            i = _table(lines, i, r)
            continue
        if name in _FONT_ONE | _FONT_ALT and not rest.strip() and i < len(lines):
            rest, i = lines[i], i + 1  # the font applies to the next input line
        r.request(name, _split_args(rest))
    r.end_section()
    return r.page


def _table(lines: list[str], i: int, r: _Renderer) -> int:
    """Render a tbl(1) table as one line per row, cells separated by blanks."""
    tab = "\t"
    # options line (ends with ';'), then format lines up to the one ending with '.'
    if i < len(lines) and lines[i].rstrip().endswith(";"):
        m = re.search(r"tab\s*\((.)\)", lines[i])
        if m:
            tab = m.group(1)
        i += 1
    while i < len(lines) and not lines[i].rstrip().endswith("."):
        i += 1
    i += 1
    r.brk()
    while i < len(lines) and not lines[i].startswith(".TE"):
        line = lines[i]
        i += 1
        if line.startswith((".", "'")) or line.strip() in {"_", "=", "T}"}:
            continue
        cells = [c.strip().removeprefix("T{").removesuffix("T}") for c in line.split(tab)]
        r.text(" ".join(r.inline(c) for c in cells if c.strip()))
        r.brk()
    return i + 1


_NOM = re.compile(r"^(?P<names>.*?)\s+(?:-|—|–)\s+(?P<desc>.+)$", re.DOTALL)


def split_nom(nom: str) -> tuple[str, str] | None:
    """Split a rendered NOM line into (names, description); None when it has no ' - '."""
    match = _NOM.match(" ".join(nom.split()))
    if match is None:
        return None
    return match.group("names").strip(), match.group("desc").strip()


def normalize(text: str) -> str:
    """Case-, accent- and punctuation-insensitive form used to find duplicate descriptions."""
    text = unicodedata.normalize("NFKD", text.casefold())
    text = "".join(c for c in text if not unicodedata.combining(c))
    return " ".join(re.findall(r"\w+", text))


@dataclass
class Entry:
    doc_id: str
    title: str
    description: str
    body: str
    spdx: str  # the upstream page's SPDX-License-Identifier comment, if it has one


def read_source(path: Path) -> str:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return raw.decode("utf-8", errors="replace")


def find_man_dir(root: Path, below: tuple[str, ...] = ("usr/share/man/fr", "share/man/fr")) -> Path:
    """Accept a man directory (holding man1/ ...) or the root of extracted .deb files."""
    for candidate in (root, *(root / b for b in below)):
        if any(candidate.glob("man[1-9]")):
            return candidate
    where = " nor ".join(below)
    raise SystemExit(f"no man[1-9]/ directory under {root} (nor {where} below it)")


def package_versions(root: Path, pattern: str = "manpages-fr*") -> dict[str, str]:
    """Versions of the packages matching ``pattern`` from their changelog.Debian.gz."""
    versions: dict[str, str] = {}
    for doc in (root / "usr/share/doc", root.parents[1] / "doc" if len(root.parents) > 1 else root):
        for changelog in sorted(doc.glob(f"{pattern}/changelog.Debian.gz")):
            first = gzip.decompress(changelog.read_bytes()).decode().split("\n", 1)[0]
            m = re.match(r"^(\S+) \(([^)]+)\)", first)
            if m:
                versions[changelog.parent.name] = f"{m.group(1)} {m.group(2)}"
    return versions


def english_descriptions(
    en_dir: Path, doc_ids: Iterable[str], stats: Counter[str]
) -> dict[str, str]:
    """The NAME descriptions of the English originals (same file names) of ``doc_ids``."""
    found: dict[str, str] = {}
    for doc_id in doc_ids:
        section = doc_id.rsplit(".", 1)[-1][:1]
        path = next(
            (
                p
                for p in (en_dir / f"man{section}" / f"{doc_id}{x}" for x in (".gz", ""))
                if p.is_file()
            ),
            None,
        )
        source = read_source(path) if path else ""
        stub = re.match(r"^\.so\s+(\S+)", source.strip())
        target = stub and next(
            (p for p in (en_dir / f"{stub[1]}.gz", en_dir / stub[1]) if p.is_file()), None
        )
        if target:  # an alias stub: follow it once
            source = read_source(target)
        name = next((t for h, t in render(source).sections if h.upper() == "NAME"), None)
        parsed = split_nom(name) if name else None
        if parsed is None:
            stats["en: no English page or NAME"] += 1
        else:
            found[doc_id] = parsed[1]
    return found


def select_queries(
    descriptions: dict[str, str], min_words: int, stats: Counter[str], prefix: str = ""
) -> dict[str, str]:
    """Drop the descriptions that are too short or shared by several pages."""
    counts = Counter(normalize(d) for d in descriptions.values())
    queries: dict[str, str] = {}
    for doc_id, text in descriptions.items():
        if len(normalize(text).split()) < min_words:
            stats[f"{prefix}query too short"] += 1
        elif counts[normalize(text)] > 1:
            stats[f"{prefix}query shared by several pages"] += 1
        else:
            queries[doc_id] = text
    return queries


def collect(man_dir: Path, max_chars: int, min_body_words: int, stats: Counter[str]) -> list[Entry]:
    """Render every regular page file under man_dir/man*/ (sorted) to an Entry."""
    entries: list[Entry] = []
    for path in sorted(man_dir.glob("man[1-9]/*")):
        if path.is_symlink() or not path.is_file():
            stats["alias (symlink)"] += 1
            continue
        source = read_source(path)
        if re.search(r"^\.so\s", source, re.M) and len(source.strip().splitlines()) < 8:
            stats["alias (.so)"] += 1
            continue
        page = render(source)
        if page.mdoc or not page.title:
            stats["mdoc or no .TH"] += 1
            continue
        nom = next((t for h, t in page.sections if h.upper() in {"NOM", "NAME"}), None)
        parsed = split_nom(nom) if nom else None
        if parsed is None:
            stats["no NOM description"] += 1
            continue
        names, description = parsed
        parts = [
            f"{heading}\n{text}" if text else heading
            for heading, text in page.sections
            if heading.upper() not in SKIPPED_SECTIONS
        ]
        body = "\n\n".join(parts)
        if len(body.split()) < min_body_words:  # counted before the cut below
            stats["body too short"] += 1
            continue
        if len(body) > max_chars:
            cut = body.rfind(" ", 0, max_chars)
            body = body[: cut if cut > max_chars // 2 else max_chars]
            stats["truncated"] += 1
        name = path.name.removesuffix(".gz")
        spdx = re.search(r"SPDX-License-Identifier:\s*(\S+)", source)
        title = f"{names} ({page.section})"
        entries.append(Entry(name, title, description, body, spdx[1] if spdx else "not stated"))
    return entries


def _shingles(text: str, n: int = 5) -> set[str]:
    words = normalize(text).split()
    return {" ".join(words[i : i + n]) for i in range(max(1, len(words) - n + 1))}


def near_duplicates(entries: list[Entry], threshold: float) -> set[str]:
    """Ids of pages whose body's 5-gram Jaccard with an earlier page is >= threshold."""
    shingles = [_shingles(e.body) for e in entries]
    postings: dict[str, list[int]] = defaultdict(list)
    for idx, sh in enumerate(shingles):
        for s in sh:
            postings[s].append(idx)
    shared: Counter[tuple[int, int]] = Counter()
    for docs in postings.values():
        if len(docs) > 50:  # boilerplate n-grams cannot make two pages near-duplicates alone
            continue
        for a_pos, a in enumerate(docs):
            for b in docs[a_pos + 1 :]:
                shared[(a, b)] += 1
    dropped: set[str] = set()
    for (a, b), inter in sorted(shared.items()):
        union = len(shingles[a]) + len(shingles[b]) - inter
        if union and inter / union >= threshold and entries[a].doc_id not in dropped:
            dropped.add(entries[b].doc_id)
    return dropped


def build(
    source: Path,
    out: Path,
    *,
    max_chars: int = 3000,
    max_docs: int = 1500,
    min_query_words: int = 3,
    min_body_words: int = 40,
    near_dup: float = 0.8,
    seed: int = 0,
    english: Path | None = None,
) -> dict[str, object]:
    """Build the BEIR files in ``out`` and return the provenance record (also written).

    With ``english`` (extracted ``manpages``/``manpages-dev`` packages, or a man directory),
    the queries are the English NAME descriptions of the same pages instead: a cross-lingual
    set (English queries, French documents) over the very same corpus file.
    """
    man_dir = find_man_dir(source)
    stats: Counter[str] = Counter()
    kept = collect(man_dir, max_chars, min_body_words, stats)
    dups = near_duplicates(kept, near_dup)
    stats["near-duplicate page"] += len(dups)
    kept = [e for e in kept if e.doc_id not in dups]
    if len(kept) > max_docs:
        stats["sampled out"] += len(kept) - max_docs
        kept = sorted(random.Random(seed).sample(kept, max_docs), key=lambda e: e.doc_id)
    queries = select_queries({e.doc_id: e.description for e in kept}, min_query_words, stats)
    english_packages: dict[str, str] = {}
    if english is not None:
        en_dir = find_man_dir(english, ("usr/share/man", "share/man"))
        english_packages = package_versions(english, "manpages*")
        found = english_descriptions(en_dir, queries, stats)
        queries = select_queries(found, min_query_words, stats, prefix="en: ")
    bodies = {e.doc_id: normalize(e.body) for e in kept}
    verbatim = sum(normalize(q) in bodies[i] for i, q in queries.items())

    out.mkdir(parents=True, exist_ok=True)
    (out / "qrels").mkdir(exist_ok=True)
    with (out / "corpus.jsonl").open("w", encoding="utf-8") as fh:
        for e in kept:
            row = {"_id": e.doc_id, "title": e.title, "text": e.body}
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    with (out / "queries.jsonl").open("w", encoding="utf-8") as fh:
        for doc_id, text in queries.items():
            fh.write(json.dumps({"_id": doc_id, "text": text}, ensure_ascii=False) + "\n")
    with (out / "qrels" / "test.tsv").open("w", encoding="utf-8") as fh:
        fh.write("query-id\tcorpus-id\tscore\n")
        for doc_id in queries:
            fh.write(f"{doc_id}\t{doc_id}\t1\n")
    record: dict[str, object] = {
        "source": str(man_dir),
        "packages": package_versions(source) or package_versions(man_dir),
        "parameters": {
            "max_chars": max_chars,
            "max_docs": max_docs,
            "min_query_words": min_query_words,
            "min_body_words": min_body_words,
            "near_dup": near_dup,
            "seed": seed,
        },
        "documents": len(kept),
        "queries": len(queries),
        "query_language": "en" if english is not None else "fr",
        "english_source": str(english) if english is not None else None,
        "english_packages": english_packages,
        "queries_verbatim_in_body": verbatim,
        "dropped": dict(sorted(stats.items())),
        "upstream_licenses": dict(Counter(e.spdx for e in kept).most_common()),
        "license": "GPL-3+ translations (manpages-l10n) of pages under their own upstream "
        "licences; see datasets/README.md",
    }
    (out / "provenance.json").write_text(json.dumps(record, ensure_ascii=False, indent=1) + "\n")
    return record


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument(
        "source",
        nargs="?",
        type=Path,
        default=Path("/usr/share/man/fr"),
        help="extracted .deb root or a man directory with man1/ ... (default /usr/share/man/fr)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default {DEFAULT_OUT}")
    parser.add_argument("--max-chars", type=int, default=3000, help="cut each page's text")
    parser.add_argument("--max-docs", type=int, default=1500, help="sample down to this many")
    parser.add_argument("--min-query-words", type=int, default=3)
    parser.add_argument("--min-body-words", type=int, default=40)
    parser.add_argument("--near-dup", type=float, default=0.8, help="5-gram Jaccard threshold")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--english",
        type=Path,
        help="extracted manpages/manpages-dev root: English NAME lines as queries (cross-lingual)",
    )
    args = parser.parse_args(list(argv) if argv is not None else None)
    record = build(
        args.source,
        args.out,
        max_chars=args.max_chars,
        max_docs=args.max_docs,
        min_query_words=args.min_query_words,
        min_body_words=args.min_body_words,
        near_dup=args.near_dup,
        seed=args.seed,
        english=args.english,
    )
    json.dump(record, sys.stdout, ensure_ascii=False, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
