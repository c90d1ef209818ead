"""Run by tests/test_late_usage_crash.py in a subprocess: route the late usage of a home for one cycle, so that
``CDRBILL_CRASH_AT`` can kill it between the ledger write and the lake write.

    python tests/late_usage_crash_driver.py HOME CYCLE ROUTED_AT
"""

import sys
from datetime import datetime
from pathlib import Path

from pipeline.home import Home
from pipeline.late_usage import route_late_usage
from pipeline.state import open_state


def main(root: str, cycle: str, routed_at: str) -> None:
    home = Home(Path(root))
    with open_state(home.state_db) as state:
        routing = route_late_usage(state, home.lake, cycle, routed_at=datetime.fromisoformat(routed_at))
    print(routing.routed_now, routing.billed_here, routing.too_old, routing.left_out)


if __name__ == "__main__":
    main(*sys.argv[1:])
