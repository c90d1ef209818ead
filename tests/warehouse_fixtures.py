"""What a published warehouse holds, to compare two publications row for row."""

from pathlib import Path

import duckdb

# what differs between two publications of the same lake: when and how it was published, and the parts' versions
VOLATILE = {"published", "publication_parts"}


def warehouse_rows(db: Path) -> dict[str, list[tuple]]:
    """Every table of the warehouse but ``VOLATILE``, its rows in a total order."""
    with duckdb.connect(str(db), read_only=True) as con:
        tables = [r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()]
        return {
            t: con.execute(f'select * from "{t}" order by all').fetchall()
            for t in tables
            if t not in VOLATILE
        }
