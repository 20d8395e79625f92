"""Reading BEIR datasets: the happy path, every malformed-input error, the real SciFact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engram.errors import InvalidInput
from engram.eval import BeirDataset, iter_corpus, load_beir, load_qrels, load_queries

SCIFACT = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "scifact"

CORPUS: list[dict[str, object]] = [
    {"_id": "d1", "title": "Cats", "text": "Cats purr.", "metadata": {"year": 2020}},
    {"_id": "d2", "text": "Dogs bark."},  # no title, no metadata
    {"_id": "d3", "title": "", "text": "Fish swim.", "metadata": {}},
]
QUERIES: list[dict[str, object]] = [
    {"_id": "q1", "text": "do cats purr", "metadata": {}},
    {"_id": "q2", "text": "do dogs bark"},
    {"_id": "q3", "text": "unjudged query"},
]


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


@pytest.fixture
def dataset_dir(tmp_path: Path) -> Path:
    root = tmp_path / "tiny"
    (root / "qrels").mkdir(parents=True)
    write_jsonl(root / "corpus.jsonl", CORPUS)
    write_jsonl(root / "queries.jsonl", QUERIES)
    (root / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td3\t0\nq2\td2\t1\n", encoding="utf-8"
    )
    (root / "qrels" / "train.tsv").write_text("q3\td3\t1\n", encoding="utf-8")
    return root


def test_load_beir(dataset_dir: Path) -> None:
    ds = load_beir(dataset_dir)
    assert isinstance(ds, BeirDataset)
    assert (ds.name, ds.split, ds.root) == ("tiny", "test", dataset_dir)
    assert ds.corpus_path == dataset_dir / "corpus.jsonl"
    assert ds.qrels == {"q1": {"d1": 2, "d3": 0}, "q2": {"d2": 1}}
    # q3 has no judgement in this split
    assert ds.queries == {"q1": "do cats purr", "q2": "do dogs bark"}


def test_other_split_and_name(dataset_dir: Path) -> None:
    ds = load_beir(dataset_dir, "train", name="custom")
    assert ds.name == "custom"
    assert ds.queries == {"q3": "unjudged query"}


def test_iter_corpus(dataset_dir: Path) -> None:
    docs = list(load_beir(dataset_dir).iter_corpus())
    assert [d.key for d in docs] == ["d1", "d2", "d3"]
    assert (docs[0].title, docs[0].text, docs[0].metadata) == ("Cats", "Cats purr.", {"year": 2020})
    assert (docs[1].title, docs[1].metadata) == ("", {})
    assert docs[2].source.endswith("corpus.jsonl:3")


def test_qrels_without_header_blank_lines_and_trec_layout(tmp_path: Path) -> None:
    path = tmp_path / "q.tsv"
    path.write_text("q1\td1\t1\n\nq1\td2\t-1\nq2 0 d9 3\nq1\td1\t1\n", encoding="utf-8")
    # the identical duplicate judgement (last line) is accepted
    assert load_qrels(path) == {"q1": {"d1": 1, "d2": -1}, "q2": {"d9": 3}}


def test_load_queries_filter(dataset_dir: Path) -> None:
    assert load_queries(dataset_dir / "queries.jsonl", ids={"q2"}) == {"q2": "do dogs bark"}
    assert len(load_queries(dataset_dir / "queries.jsonl")) == 3


def test_utf8_bom_is_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "queries.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"_id": "q", "text": "t"}).encode() + b"\n")
    assert load_queries(path) == {"q": "t"}


# --- errors name the file and the line --------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("q1\td1\n", r"test\.tsv:1: expected 3 tab-separated columns"),
        ("query-id\tcorpus-id\tscore\nq1\td1\thigh\n", r"test\.tsv:2: score must be an integer"),
        ("q1\td1\t1\nq1\td1\t2\n", r"test\.tsv:2: \(q1, d1\) judged 1 earlier and 2 here"),
        ("query-id\tcorpus-id\tscore\n", r"test\.tsv: no relevance judgements"),
        ("q1\td1\t1\nquery-id\tcorpus-id\tscore\n", r"test\.tsv:2: score must be an integer"),
    ],
)
def test_bad_qrels(dataset_dir: Path, content: str, message: str) -> None:
    (dataset_dir / "qrels" / "test.tsv").write_text(content, encoding="utf-8")
    with pytest.raises(InvalidInput, match=message):
        load_beir(dataset_dir)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", r"corpus\.jsonl:2: invalid JSON"),
        ("[1, 2]", r"corpus\.jsonl:2: expected a JSON object, got list"),
        ('{"text": "no id"}', r'corpus\.jsonl:2: missing or invalid "_id"'),
        ('{"_id": "d9"}', r'corpus\.jsonl:2: "text" is missing or not a string'),
        ('{"_id": "d9", "text": "t", "title": 5}', r'corpus\.jsonl:2: "title" is missing'),
        ('{"_id": "d9", "text": "t", "metadata": [1]}', r'corpus\.jsonl:2: "metadata" must be'),
        ('{"_id": "d1", "text": "again"}', r"corpus\.jsonl:2: duplicate doc id 'd1'"),
    ],
)
def test_bad_corpus_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "corpus.jsonl"
    path.write_text(json.dumps(CORPUS[0]) + "\n" + line + "\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match=message) as info:
        list(iter_corpus(path))
    assert info.value.details["line"] == 2


def test_numeric_ids_are_read_as_strings(tmp_path: Path) -> None:
    path = tmp_path / "corpus.jsonl"
    write_jsonl(path, [{"_id": 42, "text": "t"}])
    assert [d.key for d in iter_corpus(path)] == ["42"]


def test_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "queries.jsonl"
    lines = [json.dumps({"_id": f"q{i}", "text": "t"}).encode() for i in range(2)]
    path.write_bytes(b"\n".join([*lines, b'{"_id": "r", "text": "\xff"}']) + b"\n")
    with pytest.raises(InvalidInput, match=r"queries\.jsonl:3: not valid UTF-8"):
        load_queries(path)


def test_duplicate_query(tmp_path: Path) -> None:
    path = tmp_path / "queries.jsonl"
    write_jsonl(path, [{"_id": "q", "text": "a"}, {"_id": "q", "text": "b"}])
    with pytest.raises(InvalidInput, match=r"queries\.jsonl:2: duplicate query id"):
        load_queries(path)


@pytest.mark.parametrize("name", ["corpus.jsonl", "queries.jsonl"])
def test_missing_file(dataset_dir: Path, name: str) -> None:
    (dataset_dir / name).unlink()
    with pytest.raises(InvalidInput, match=f"not found: .*{name}"):
        load_beir(dataset_dir)


def test_missing_split_lists_available(dataset_dir: Path) -> None:
    with pytest.raises(InvalidInput, match="split 'dev'") as info:
        load_beir(dataset_dir, "dev")
    assert info.value.hint == "available splits: test, train"


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="directory not found"):
        load_beir(tmp_path / "nope")


def test_judged_query_missing_from_queries(dataset_dir: Path) -> None:
    with (dataset_dir / "qrels" / "test.tsv").open("a", encoding="utf-8") as fh:
        fh.write("q404\td1\t1\n")
    with pytest.raises(InvalidInput, match=r"1 judged queries are not in .*'q404'"):
        load_beir(dataset_dir)


def test_fingerprints(dataset_dir: Path) -> None:
    ds = load_beir(dataset_dir)
    corpus_fp, full_fp = ds.corpus_fingerprint(), ds.fingerprint()
    assert len(corpus_fp) == 64 and corpus_fp != full_fp
    assert load_beir(dataset_dir).fingerprint() == full_fp  # stable

    with (dataset_dir / "qrels" / "test.tsv").open("a", encoding="utf-8") as fh:
        fh.write("q2\td3\t1\n")
    assert ds.corpus_fingerprint() == corpus_fp  # qrels do not touch the collection
    assert ds.fingerprint() != full_fp

    write_jsonl(dataset_dir / "corpus.jsonl", [*CORPUS, {"_id": "d4", "text": "new"}])
    assert ds.corpus_fingerprint() != corpus_fp


@pytest.mark.skipif(not SCIFACT.is_dir(), reason="SciFact not available at ../shared/datasets")
def test_real_scifact() -> None:
    ds = load_beir(SCIFACT)
    assert ds.name == "scifact"
    assert len(ds.queries) == 300
    assert set(ds.queries) == set(ds.qrels)
    assert sum(len(j) for j in ds.qrels.values()) == 339
    keys = [doc.key for doc in ds.iter_corpus()]
    assert len(keys) == 5183 == len(set(keys))
    judged_docs = {d for judgements in ds.qrels.values() for d in judgements}
    assert judged_docs <= set(keys)
    assert len(ds.corpus_fingerprint()) == 64
