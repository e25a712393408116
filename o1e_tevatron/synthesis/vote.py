"""Pick one thought per row by a retrieval committee: ``python -m o1e_tevatron.synthesis.vote``.

Each member scores every candidate thought against the row's (first) positive passage and
nominates the best one (paper sec. 2.2). Members: BM25 over Pyserini's Lucene analyzer (the
positive as the query, the candidates as the corpus, as in the authors' code) and dense encoders
given as model paths. Hard voting (the paper) takes the majority; soft voting (the authors'
default) sums each member's softmax over the candidates. Ties go to the higher soft total, then to
the lower candidate index, so a rerun picks the same thought.

Before voting, a candidate that copies the positive (word n-gram overlap above a threshold) or only
repeats the query is rejected: training on it would let the contrastive task collapse. Rows whose
candidates are all rejected are left out and listed in the report.

Resumable like generate: rows stream through in chunks, each chunk's votes are appended and flushed,
and a restart skips the rows already in the output (after cutting a torn last line). Rows left out
are found again by the guard alone, which needs no model. The report covers the whole output.
"""
from __future__ import annotations

import itertools
import json
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional, Protocol

import numpy as np
from tqdm import tqdm
from transformers import HfArgumentParser

from o1e_tevatron.core.errors import InputError, run_command
from o1e_tevatron.core.redact import install_log_redaction, json_line
from o1e_tevatron.models import resolve_model_path
from o1e_tevatron.core.rows import TrainingRow, training_row
from o1e_tevatron.synthesis.rows import (count_records, iter_records, output_records, refuse_writing_into_input,
                                         resume_output, unique_rows)

logger = logging.getLogger(__name__)


@dataclass
class VoteArguments:
    input_path: str = field(metadata={"help": "Output of synthesis.generate (rows with thought_candidates)."})
    output_path: str = field(metadata={
        "help": "JSONL the rows are appended to with the chosen thought (a trainer --train_dir file); "
                "a rerun resumes it."})
    report_path: Optional[str] = field(default=None, metadata={
        "help": "Also write the JSON summary (rejections, rows left out, agreement) here; keep it out of the "
                "train_dir, whose .json files the trainer reads. The summary is always printed."})
    dense_models: list[str] = field(default_factory=list, metadata={
        "help": "Dense members: sentence-transformers or Hugging Face encoder paths (mean pooling for the latter)."})
    bm25: bool = field(default=True, metadata={"help": "BM25 member (needs the pyserini extra)."})
    bm25_k1: float = field(default=0.9)
    bm25_b: float = field(default=0.4)
    voting: str = field(default="soft", metadata={"choices": ["soft", "hard"]})
    dense_score_scale: float = field(default=100.0, metadata={
        "help": "Cosine similarities are multiplied by this before the soft-vote softmax (authors: 100)."})
    batch_size: int = field(default=64, metadata={"help": "Texts per forward pass of a dense member."})
    max_seq_length: int = field(default=512)
    device: Optional[str] = field(default=None, metadata={"help": "Dense members' device (default: best available)."})
    trust_remote_code: bool = field(default=False, metadata={
        "help": "Run the Python code a dense member's folder ships (some models need it, e.g. gte; a folder can "
                "carry any code, so only for models you trust)."})
    rows_per_chunk: int = field(default=2048, metadata={"help": "Rows scored together (bounds embedding memory)."})
    copy_ngram: int = field(default=4, metadata={"help": "Word n-gram size of the copy check."})
    copy_threshold: float = field(default=0.5, metadata={
        "help": "Reject a candidate when more than this share of its n-grams occur in the positive passage."})
    query_repeat_threshold: float = field(default=0.9, metadata={
        "help": "Reject a candidate when at least this share of its words are query words (it adds nothing)."})

    def __post_init__(self):
        if not self.bm25 and not self.dense_models:
            raise ValueError("the committee is empty: keep --bm25 or give --dense_models")
        refuse_writing_into_input(self.input_path, output_path=self.output_path, report_path=self.report_path)


@dataclass(frozen=True)
class CandidateRow:
    row: TrainingRow
    candidates: tuple[str, ...]

    @property
    def positive(self) -> str:
        return self.row.positives[0]


def iter_candidate_rows(path: str | Path) -> Iterator[CandidateRow]:
    """The rows of a generate output (file or folder of ``*.jsonl``), one at a time."""
    for row in unique_rows(training_row(record, source) for record, source in iter_records(path)):
        candidates = row.record.get("thought_candidates")
        if not isinstance(candidates, list) or not candidates or \
                not all(isinstance(c, str) and c.strip() for c in candidates):
            raise InputError(f"{row.source}: 'thought_candidates' must be a non-empty list of non-empty strings")
        yield CandidateRow(row, tuple(candidates))


# ---- collapse guard -------------------------------------------------------------------------

WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def ngrams(tokens: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)}


def rejection_reason(candidate: str, query: str, positive: str, args: VoteArguments) -> Optional[str]:
    """'copies_positive', 'repeats_query', or None when the candidate may take part in the vote.

    A candidate shorter than one n-gram cannot copy a passage; it can still merely repeat the query."""
    tokens = words(candidate)
    if not tokens:
        return "repeats_query"  # punctuation only: nothing beyond the query either
    own = ngrams(tokens, args.copy_ngram)
    if own and len(own & ngrams(words(positive), args.copy_ngram)) / len(own) > args.copy_threshold:
        return "copies_positive"
    query_words = set(words(query))
    if sum(t in query_words for t in tokens) / len(tokens) >= args.query_repeat_threshold:
        return "repeats_query"
    return None


# ---- committee members ------------------------------------------------------------------------

class Member(Protocol):
    name: str
    soft_scale: float  # scores are multiplied by this before the soft-vote softmax

    def score(self, rows: list[CandidateRow]) -> list[np.ndarray]:
        """Per row, one similarity per candidate to the row's positive passage (higher is closer)."""


class BM25Member:
    """Lucene's BM25 (k1, b; idf = ln(1 + (N - df + 0.5) / (df + 0.5))) with the positive as a bag-of-words
    query over the candidates as a tiny corpus, on tokens of Pyserini's default English analyzer."""

    name = "bm25"
    soft_scale = 1.0

    def __init__(self, k1: float, b: float):
        from o1e_tevatron.core.java import prepare_java
        prepare_java()  # Java 21 for Pyserini; must precede the pyserini import
        from pyserini.analysis import Analyzer, get_lucene_analyzer

        self.analyzer = Analyzer(get_lucene_analyzer())
        self.k1, self.b = k1, b

    def score_one(self, positive: str, candidates: tuple[str, ...]) -> np.ndarray:
        query = Counter(self.analyzer.analyze(positive))
        docs = [Counter(self.analyzer.analyze(c)) for c in candidates]
        lengths = np.array([sum(d.values()) for d in docs], dtype=np.float64)
        avg_length = lengths.mean() or 1.0
        scores = np.zeros(len(docs))
        for term, query_tf in query.items():
            df = sum(term in d for d in docs)
            if not df:
                continue
            idf = np.log(1 + (len(docs) - df + 0.5) / (df + 0.5))
            tf = np.array([d[term] for d in docs], dtype=np.float64)
            scores += query_tf * idf * tf / (tf + self.k1 * (1 - self.b + self.b * lengths / avg_length))
        return scores

    def score(self, rows: list[CandidateRow]) -> list[np.ndarray]:
        return [self.score_one(r.positive, r.candidates) for r in rows]


class DenseMember:
    """Cosine similarity of normalized embeddings; positives and candidates of a chunk of rows are
    encoded together in batches of ``batch_size``."""

    soft_scale: float

    def __init__(self, path: str, args: VoteArguments):
        from sentence_transformers import SentenceTransformer

        self.name, self.soft_scale, self.batch_size = path, args.dense_score_scale, args.batch_size
        self.model = SentenceTransformer(resolve_model_path(path), device=args.device,
                                         trust_remote_code=args.trust_remote_code)
        self.model.max_seq_length = min(args.max_seq_length, self.model.max_seq_length or args.max_seq_length)

    def score(self, rows: list[CandidateRow]) -> list[np.ndarray]:
        texts = [t for r in rows for t in (r.positive, *r.candidates)]
        vectors = self.model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                    convert_to_numpy=True, show_progress_bar=False)
        scores, start = [], 0
        for r in rows:
            positive, candidates = vectors[start], vectors[start + 1:start + 1 + len(r.candidates)]
            scores.append(candidates @ positive)
            start += 1 + len(r.candidates)
        return scores


# ---- voting ------------------------------------------------------------------------------------

def soft_totals(scores: dict[str, np.ndarray], scales: dict[str, float], allowed: np.ndarray) -> np.ndarray:
    """Sum over members of the softmax of (scaled) scores over the allowed candidates; 0 for the rest."""
    total = np.zeros(len(allowed))
    for name, s in scores.items():
        logits = np.where(allowed, s * scales[name], -np.inf)
        p = np.exp(logits - logits[allowed].max())
        total += p / p.sum()
    return total


def nominations(scores: dict[str, np.ndarray], allowed: np.ndarray) -> dict[str, int]:
    """Each member's best allowed candidate (the lower index on a tie). A member that scores all allowed
    candidates alike (e.g. BM25 with no term in common) abstains rather than vote for the first one."""
    nominated = {}
    for name, s in scores.items():
        if np.ptp(s[allowed]) > 0:
            nominated[name] = int(np.argmax(np.where(allowed, s, -np.inf)))
    return nominated


def hard_winner(nominated: dict[str, int], totals: np.ndarray) -> int:
    """Most votes; ties to the higher soft total, then to the lower index; no votes: the soft winner."""
    votes = Counter(nominated.values())
    if not votes:
        return soft_winner(totals)
    return min(votes, key=lambda i: (-votes[i], -totals[i], i))


def soft_winner(totals: np.ndarray) -> int:
    return int(np.argmax(totals))  # first maximum: the lower index on a tie


@dataclass
class VoteReport:
    rows: int = 0
    rows_already_done: int = 0
    rows_written: int = 0
    rows_in_output: int = 0
    rows_all_rejected: list[str] = field(default_factory=list)
    rejected_candidates: Counter = field(default_factory=Counter)
    candidates: int = 0
    hard_soft_agreement: float = 0.0
    member_agreement_with_choice: dict[str, float] = field(default_factory=dict)

    def add_output(self, path: Path, member_names: list[str]) -> None:
        """Candidates, rejections and agreement of every row in the output, this run's and earlier runs'."""
        same_choice, member_hits = 0, Counter()
        for record, _ in output_records(path):
            votes = record["thought_votes"]
            self.rows_in_output += 1
            self.candidates += len(record["thought_candidates"])
            self.rejected_candidates.update(votes["rejected"].values())
            same_choice += votes["soft"] == votes["hard"]
            member_hits.update(name for name, i in votes["nominations"].items() if i == votes["chosen"])
        if self.rows_in_output:
            self.hard_soft_agreement = round(same_choice / self.rows_in_output, 4)
            self.member_agreement_with_choice = {name: round(member_hits[name] / self.rows_in_output, 4)
                                                 for name in member_names}


def guarded_rows(rows: Iterator[CandidateRow], done: set[str], args: VoteArguments,
                 report: VoteReport) -> Iterator[tuple[CandidateRow, list[Optional[str]]]]:
    """Rows not yet voted on, with each candidate's rejection reason; rows with nothing left to vote on
    are counted in the report and dropped."""
    for r in rows:
        report.rows += 1
        if r.row.row_id in done:
            report.rows_already_done += 1
            continue
        reasons = [rejection_reason(c, r.row.query, r.positive, args) for c in r.candidates]
        if any(reason is None for reason in reasons):
            yield r, reasons
        else:
            report.rows_all_rejected.append(r.row.row_id)
            report.candidates += len(reasons)
            report.rejected_candidates.update(reasons)


def vote_record(r: CandidateRow, reasons: list[Optional[str]], scores: dict[str, np.ndarray],
                scales: dict[str, float], voting: str) -> dict:
    """The row as written: its record, the chosen thought, and how the committee chose it."""
    allowed = np.array([reason is None for reason in reasons])
    totals = soft_totals(scores, scales, allowed)
    nominated = nominations(scores, allowed)
    by_soft, by_hard = soft_winner(totals), hard_winner(nominated, totals)
    chosen = by_soft if voting == "soft" else by_hard
    return {**r.row.record, "thought": r.candidates[chosen], "thought_votes": {
        "voting": voting, "chosen": chosen, "soft": by_soft, "hard": by_hard,
        "scores": {name: [round(float(x), 6) for x in s] for name, s in scores.items()},
        "nominations": nominated,
        "soft_totals": [round(float(x), 6) for x in totals],
        "rejected": {str(j): reason for j, reason in enumerate(reasons) if reason},
    }}


def vote(args: VoteArguments) -> VoteReport:
    members: list[Member] = ([BM25Member(args.bm25_k1, args.bm25_b)] if args.bm25 else []) + \
        [DenseMember(path, args) for path in args.dense_models]
    scales = {m.name: m.soft_scale for m in members}
    output = Path(args.output_path)
    output.parent.mkdir(parents=True, exist_ok=True)
    done = resume_output(output)
    report = VoteReport()
    pending = guarded_rows(iter_candidate_rows(args.input_path), done, args, report)
    with open(output, "a", encoding="utf-8") as out, \
            tqdm(total=count_records(args.input_path), unit="row", desc="vote", dynamic_ncols=True) as bar:
        while chunk := list(itertools.islice(pending, args.rows_per_chunk)):
            member_scores = {m.name: m.score([r for r, _ in chunk]) for m in members}
            for i, (r, reasons) in enumerate(chunk):
                scores = {name: s[i] for name, s in member_scores.items()}
                out.write(json_line(vote_record(r, reasons, scores, scales, args.voting)))
            out.flush()
            report.rows_written += len(chunk)
            bar.update(report.rows - bar.n)  # every input row read so far: voted, done before, or left out
        bar.update(report.rows - bar.n)
    if report.rows_already_done:
        logger.info("resumed %s: %d rows were already voted on", output, report.rows_already_done)
    report.add_output(output, [m.name for m in members])
    return report


def main(argv: Optional[list[str]] = None) -> None:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    install_log_redaction()
    (args,) = HfArgumentParser(VoteArguments).parse_args_into_dataclasses(argv)
    logger.info("arguments: %s", args)
    report = vote(args)
    summary = json.dumps(report.__dict__, indent=1)
    if args.report_path:
        Path(args.report_path).write_text(summary + "\n")
    if report.rows_all_rejected:
        logger.warning("%d rows had every candidate rejected and were left out: %s", len(report.rows_all_rejected),
                       ", ".join(report.rows_all_rejected[:20]) + (" ..." if len(report.rows_all_rejected) > 20 else ""))
    print(summary)


if __name__ == "__main__":
    run_command(main)
