"""The evaluation harness behind ``python -m o1e_pyserini.eval``: ``datasets`` (ir_datasets ids and
offline BEIR/TREC registration), ``retrievers`` (a spec -> index, search), ``scoring`` (ir_measures,
paired t-test), ``harness`` (one dataset x one retriever -> run and metrics), ``regressions`` (compare
with a paper's table, pinned scores) and ``cli`` (the command, one parser per subcommand)."""
