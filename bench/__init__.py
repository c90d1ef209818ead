"""The cdrbill benchmark suite (issue 8): a generated month run stage by stage through the same ``pipeline``
functions the Dagster assets call, each stage in its own process, against the floor of a bare DuckDB
CSV → Parquet conversion of the same raw files. Run it with ``python -m bench`` or ``make bench``; it is
never part of the test command."""
