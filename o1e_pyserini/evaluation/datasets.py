"""Dataset ids -> ir_datasets loaders, with local copies registered under the same ids.

Every dataset of the paper is addressed by its ir_datasets id (``beir/scifact/test``,
``msmarco-passage/trec-dl-2019/judged``, ``bright/biology``) plus ``o1e/cosqa/dev``, which
ir_datasets lacks. Local files take precedence over ir_datasets' downloads so that the same
command works offline:

* a BEIR-format folder ``<data_dir>/<name>/`` (``corpus.jsonl``, ``queries.jsonl``,
  ``qrels/<split>.tsv``), e.g. ``../shared/data/scifact``;
* CoSQA as a BEIR folder or as the CoCLR JSON release (``cosqa-retrieval-*.json`` with ``doc``,
  ``code``, ``retrieval_idx`` + ``code_idx_map.txt``);
* official topics/qrels files in Pyserini's layout (``<topics_dir>/topics/…``, ``<topics_dir>/qrels/…``,
  by default ``~/.cache/pyserini/topics-and-qrels``), paired with ir_datasets' corpus or a local
  one (``corpus=``; BRIGHT needs one, its corpora are not shipped).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import ir_datasets
from ir_datasets.datasets.base import Dataset, FilteredQrels, FilteredQueries
from ir_datasets.datasets.beir import BeirTitleDoc
from ir_datasets.formats import BaseDocs, BaseQrels, BaseQueries, GenericQuery, TrecQrel

from o1e_tevatron.core import readers
from o1e_tevatron.core.fingerprint import O1E_CACHE  # noqa: F401  (one cache root for both sides)

PYSERINI_TOPICS_DIR = Path.home() / ".cache" / "pyserini" / "topics-and-qrels"
COSQA_ID = "o1e/cosqa/dev"
#: 100 SciFact train queries held out from every o1e training run: where settings are chosen (recipes/mini)
SCIFACT_DEV_ID = "o1e/scifact/dev"
SCIFACT_DEV_QUERY_IDS = Path(__file__).parents[1] / "resources" / "scifact_dev_query_ids.txt"


class DatasetUnavailableError(FileNotFoundError):
    """The dataset is neither in ir_datasets' cache nor local; the message says where files go."""


@dataclass(frozen=True)
class DatasetInfo:
    """How the paper scores a dataset and where its local copies live."""

    metrics: tuple[str, ...]
    folder: str  # BEIR-format folder name under a data dir
    split: str  # qrels/<split>.tsv inside that folder
    topics: str | None = None  # Pyserini topics file name (under topics/)
    qrels: str | None = None  # Pyserini qrels file name (under qrels/)
    ir_datasets_id: str | None = None  # when ir_datasets files the split under another id
    # BEIR's ArguAna / Quora: a query is also a document, and finding itself is not a hit. Elsewhere
    # query and doc ids are separate namespaces that may collide (SciFact, FiQA): nothing is dropped.
    ignore_identical_ids: bool = False
    needs_local_corpus: bool = False


NDCG10 = ("nDCG@10",)


def _beir(name: str, ir_id: str | None = None) -> DatasetInfo:
    return DatasetInfo(NDCG10, name, "test", f"topics.beir-v1.0.0-{name}.test.tsv.gz",
                       f"qrels.beir-v1.0.0-{name}.test.txt", ir_id)


def _bright(domain: str) -> DatasetInfo:
    return DatasetInfo(NDCG10, f"bright-{domain}", "test", f"topics.bright-{domain}.tsv.gz",
                       f"qrels.bright-{domain}.txt", needs_local_corpus=True)


BRIGHT_SE_DOMAINS = ("biology", "earth-science", "economics", "psychology", "robotics",
                     "stackoverflow", "sustainable-living")

#: The paper's evaluation sets (Tables 1-3), keyed by the id the harness accepts.
DATASETS: dict[str, DatasetInfo] = {
    "msmarco-passage/dev/small": DatasetInfo(
        ("RR@10", "R@1000"), "msmarco-passage", "dev", "topics.msmarco-passage.dev-subset.txt",
        "qrels.msmarco-passage.dev-subset.txt"),
    "msmarco-passage/trec-dl-2019/judged": DatasetInfo(
        NDCG10, "msmarco-passage", "dl19", "topics.dl19-passage.txt", "qrels.dl19-passage.txt"),
    "msmarco-passage/trec-dl-2020/judged": DatasetInfo(
        NDCG10, "msmarco-passage", "dl20", "topics.dl20.txt", "qrels.dl20-passage.txt"),
    "beir/trec-covid": _beir("trec-covid"),
    "beir/nq": _beir("nq"),
    "beir/hotpotqa": _beir("hotpotqa", "beir/hotpotqa/test"),
    "beir/fiqa/test": _beir("fiqa"),
    "beir/webis-touche2020/v2": _beir("webis-touche2020"),
    "beir/dbpedia-entity/test": _beir("dbpedia-entity"),
    "beir/fever/test": _beir("fever"),
    "beir/scifact/test": _beir("scifact"),
    "beir/nfcorpus/test": _beir("nfcorpus"),
    COSQA_ID: DatasetInfo(NDCG10, "cosqa", "dev", needs_local_corpus=True),
    SCIFACT_DEV_ID: DatasetInfo(NDCG10, "scifact", "train"),
    **{f"bright/{domain}": _bright(domain) for domain in BRIGHT_SE_DOMAINS},
}


def dataset_info(dataset_id: str) -> DatasetInfo:
    """Known ids get the paper's settings; any other ir_datasets id gets nDCG@10."""
    if dataset_id in DATASETS:
        return DATASETS[dataset_id]
    name = dataset_id.split("/")[1] if "/" in dataset_id else dataset_id
    return DatasetInfo(NDCG10, name, dataset_id.rsplit("/", 1)[-1],
                       ignore_identical_ids=dataset_id.startswith(("beir/arguana", "beir/quora")))


class JsonlDocs(BaseDocs):
    """Streams a local corpus: BEIR (``_id``/``title``/``text``), Pyserini (``id``/``contents``)
    or BRIGHT (``id``/``content``) JSON lines (``core.readers.corpus``), without ir_datasets' docstore
    (which would write into the cache slot of the downloaded copy)."""

    def __init__(self, path: Path):
        self._path = Path(path)
        self._count = None

    @property
    def path(self) -> Path:
        return self._path

    def docs_iter(self) -> Iterator[BeirTitleDoc]:
        for _, doc_id, title, text in readers.corpus(self._path):
            yield BeirTitleDoc(doc_id, text, title)

    def docs_cls(self):
        return BeirTitleDoc

    def docs_count(self) -> int:
        """Its records, one per non-blank line (not parsed): the index build's progress total and memory
        plan, and what makes ``--vector-dtype auto`` store a large local corpus in float16."""
        if self._count is None:
            self._count = sum(1 for _ in readers.record_lines(self._path))
        return self._count

    def docs_lang(self):
        return "en"


class LocalQueries(BaseQueries):
    """Queries of a local file read by o1e's reader (``readers.beir_queries`` or ``readers.topics``):
    ir_datasets' own readers fail on a blank line without naming it and take a blank query."""

    def __init__(self, path: Path, read: Callable[[Path], dict[str, str]]):
        self.path, self.read = Path(path), read

    def queries_iter(self) -> Iterator[GenericQuery]:
        return (GenericQuery(query_id, text) for query_id, text in self.read(self.path).items())

    def queries_cls(self):
        return GenericQuery

    def queries_lang(self):
        return "en"


class LocalQrels(BaseQrels):
    """Judgments of a local file read by o1e's reader (``readers.beir_qrels`` or ``readers.trec_qrels``)."""

    def __init__(self, path: Path, read: Callable[[Path], dict[str, dict[str, int]]]):
        self.path, self.read = Path(path), read

    def qrels_iter(self) -> Iterator[TrecQrel]:
        return (TrecQrel(query_id, doc_id, relevance, "0")
                for query_id, judged in self.read(self.path).items() for doc_id, relevance in judged.items())

    def qrels_path(self):
        return self.path

    def qrels_cls(self):
        return TrecQrel

    def qrels_defs(self):
        return {}


def _register(dataset_id: str, dataset: Dataset) -> Dataset:
    """Put ``dataset`` under ``dataset_id``, replacing ir_datasets' own entry: ir_datasets has no
    public call for that, and the point is that the usual id now reads the local files."""
    ir_datasets.registry._registered[dataset_id] = dataset
    return dataset


def _qrels_query_ids(qrels) -> Callable[[], set[str]]:
    def query_ids():
        return {qrel.query_id for qrel in qrels.qrels_iter()}
    return query_ids


def scifact_dev_query_ids() -> set[str]:
    """The committed ids of ``o1e/scifact/dev`` (comment lines start with #)."""
    lines = SCIFACT_DEV_QUERY_IDS.read_text(encoding="utf-8").splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def register_beir_folder(dataset_id: str, folder: Path | str, split: str = "test",
                         query_ids: set[str] | None = None) -> Dataset:
    """Register a BEIR-format folder; queries are those judged in ``qrels/<split>.tsv`` (BEIR), or
    only ``query_ids`` of them (a held-out slice such as ``o1e/scifact/dev``)."""
    folder = Path(folder)
    paths = {name: folder / name for name in ("corpus.jsonl", "queries.jsonl", f"qrels/{split}.tsv")}
    missing = [str(p) for p in paths.values() if not p.exists()]
    if missing:
        raise DatasetUnavailableError(f"{folder} is not a BEIR folder for split {split!r}: missing {missing}")
    qrels = LocalQrels(paths[f"qrels/{split}.tsv"], readers.beir_qrels)
    if query_ids is not None:
        qrels = FilteredQrels(qrels, lambda: query_ids)
    queries = FilteredQueries(LocalQueries(paths["queries.jsonl"], readers.beir_queries), _qrels_query_ids(qrels))
    return _register(dataset_id, Dataset(JsonlDocs(paths["corpus.jsonl"]), queries, qrels))


def register_trec_files(dataset_id: str, topics: Path | str, qrels: Path | str,
                        corpus: Path | str | None = None) -> Dataset:
    """Register official topics (``qid<TAB>text``, optionally gzipped) and TREC qrels; the corpus
    is a local JSON-lines file or, when omitted, ir_datasets' corpus for ``dataset_id``."""
    for path in (topics, qrels, corpus):
        if path is not None and not Path(path).exists():
            raise DatasetUnavailableError(f"{dataset_id}: {path} does not exist")
    if corpus is not None:
        docs = JsonlDocs(Path(corpus))
    else:
        info = dataset_info(dataset_id)
        if info.needs_local_corpus:
            raise DatasetUnavailableError(
                f"{dataset_id}: topics and qrels are local but the corpus is not; pass --corpus "
                f"PATH (JSON lines with id/_id and text/content) or put a BEIR folder at "
                f"<data_dir>/{info.folder}/")
        docs = ir_datasets.load(info.ir_datasets_id or dataset_id).docs_handler()
    return _register(dataset_id, Dataset(docs, LocalQueries(Path(topics), readers.topics),
                                         LocalQrels(Path(qrels), readers.trec_qrels)))


def coclr_to_beir(release_json: Path | str, code_idx_map: Path | str, out_dir: Path | str) -> Path:
    """Write the CoCLR CoSQA retrieval release as a BEIR folder: corpus ``c<retrieval_idx>`` from
    ``code_idx_map.txt`` (code -> index), queries ``idx``/``doc``, qrels ``idx`` -> ``c<retrieval_idx>``."""
    release_json, out_dir = Path(release_json), Path(out_dir)
    codes = readers.parse_json(readers.whole_text(code_idx_map), code_idx_map)  # a located error, as every reader
    rows = readers.parse_json(readers.whole_text(release_json), release_json)
    for n, row in enumerate(rows):
        missing = {"idx", "doc", "retrieval_idx"} - row.keys()
        if missing:
            raise ValueError(f"{release_json}: row {n} lacks {sorted(missing)}")
        if "code" in row and codes.get(row["code"]) != row["retrieval_idx"]:
            raise ValueError(f"{release_json}: row {n} ({row['idx']}): code_idx_map gives "
                             f"{codes.get(row['code'])} for its code, the row says {row['retrieval_idx']}")
    (out_dir / "qrels").mkdir(parents=True, exist_ok=True)
    with open(out_dir / "corpus.jsonl", "w") as f:
        for code, index in sorted(codes.items(), key=lambda item: item[1]):
            f.write(json.dumps({"_id": f"c{index}", "title": "", "text": code}) + "\n")
    with open(out_dir / "queries.jsonl", "w") as f:
        for row in rows:
            f.write(json.dumps({"_id": row["idx"], "text": row["doc"]}) + "\n")
    with open(out_dir / "qrels" / "dev.tsv", "w") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for row in rows:
            f.write(f"{row['idx']}\tc{row['retrieval_idx']}\t1\n")
    return out_dir


def register_cosqa(source: Path | str, dataset_id: str = COSQA_ID) -> Dataset:
    """CoSQA from a BEIR folder, or from a CoCLR release JSON (``code_idx_map.txt`` beside it),
    or from a folder holding both (``cosqa-retrieval-dev-*.json``)."""
    source = Path(source)
    if source.is_dir() and (source / "corpus.jsonl").exists():
        return register_beir_folder(dataset_id, source, "dev")
    if source.is_dir():
        releases = sorted(source.glob("cosqa-retrieval-dev*.json"))
        if not releases:
            raise DatasetUnavailableError(f"{source}: neither a BEIR folder (corpus.jsonl) nor a "
                                          f"CoCLR release (cosqa-retrieval-dev-*.json)")
        source = releases[0]
    code_idx_map = source.parent / "code_idx_map.txt"
    if not code_idx_map.exists():
        raise DatasetUnavailableError(f"{source}: CoCLR release needs {code_idx_map} beside it")
    digest = hashlib.sha1(source.read_bytes() + code_idx_map.read_bytes()).hexdigest()[:12]
    converted = O1E_CACHE / "datasets" / f"cosqa-{digest}"
    if not (converted / "qrels" / "dev.tsv").exists():
        coclr_to_beir(source, code_idx_map, converted)
    return register_beir_folder(dataset_id, converted, "dev")


def where_to_put(dataset_id: str, data_dir: Path | None = None, topics_dir: Path | None = None) -> str:
    """The message of a dataset that cannot be found: every place it could come from."""
    info = dataset_info(dataset_id)
    data_dir = data_dir or Path("<data_dir>")
    lines = [f"dataset {dataset_id!r} is neither in ir_datasets' cache "
             f"({ir_datasets.util.home_path()}) nor available locally. Put either",
             f"  - a BEIR folder at {data_dir / info.folder}/ (corpus.jsonl, queries.jsonl, "
             f"qrels/{info.split}.tsv) and pass --data-dir {data_dir} (or set O1E_DATA_DIR)"]
    if dataset_id == COSQA_ID:
        lines.append(f"  - or the CoCLR release (cosqa-retrieval-dev-500.json, code_idx_map.txt) "
                     f"in {data_dir / info.folder}/")
    if info.topics:
        topics_dir = topics_dir or PYSERINI_TOPICS_DIR
        lines.append(f"  - or {topics_dir}/topics/{info.topics} and {topics_dir}/qrels/{info.qrels}"
                     + (" plus --corpus PATH" if info.needs_local_corpus else
                        " (the corpus then comes from ir_datasets' cache or --corpus PATH)"))
    return "\n".join(lines)


def load(dataset_id: str, data_dir: Path | str | None = None, topics_dir: Path | str | None = None,
         corpus: Path | str | None = None) -> Dataset:
    """Resolve ``dataset_id``: a local BEIR/CoCLR folder under ``data_dir`` (or $O1E_DATA_DIR),
    else topics/qrels files under ``topics_dir`` (or Pyserini's cache), else ir_datasets itself.
    Local copies are registered under ``dataset_id``, so ``ir_datasets.load(dataset_id)`` reads them too."""
    info = dataset_info(dataset_id)
    data_dir = data_dir or os.environ.get("O1E_DATA_DIR")
    data_dir = Path(data_dir) if data_dir else None
    topics_dir = Path(topics_dir) if topics_dir else None
    folder = data_dir / info.folder if data_dir else None
    if folder is not None and folder.is_dir():
        if dataset_id == COSQA_ID:
            return register_cosqa(folder, dataset_id)
        if (folder / "qrels" / f"{info.split}.tsv").exists():
            subset = scifact_dev_query_ids() if dataset_id == SCIFACT_DEV_ID else None
            return register_beir_folder(dataset_id, folder, info.split, subset)
    if info.topics:
        for root in (topics_dir, PYSERINI_TOPICS_DIR):
            if root and (root / "topics" / info.topics).exists() and (root / "qrels" / info.qrels).exists():
                return register_trec_files(dataset_id, root / "topics" / info.topics,
                                           root / "qrels" / info.qrels, corpus)
    if dataset_id == SCIFACT_DEV_ID:  # no local SciFact: the same slice of ir_datasets' SciFact train
        train = ir_datasets.load("beir/scifact/train")
        return _register(dataset_id, Dataset(train.docs_handler(),
                                             FilteredQueries(train.queries_handler(), scifact_dev_query_ids),
                                             FilteredQrels(train.qrels_handler(), scifact_dev_query_ids)))
    if dataset_id not in ir_datasets.registry and (info.ir_datasets_id or dataset_id) not in ir_datasets.registry:
        raise DatasetUnavailableError(where_to_put(dataset_id, data_dir, topics_dir))
    dataset = ir_datasets.load(info.ir_datasets_id or dataset_id)
    if corpus is not None:
        dataset = _register(dataset_id, Dataset(JsonlDocs(Path(corpus)), dataset.queries_handler(),
                                                dataset.qrels_handler()))
    return dataset
