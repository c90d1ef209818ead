"""The cdrbill home as a Dagster resource: where every stage finds its inputs, ledgers and outputs."""

from pathlib import Path

import dagster as dg

from pipeline.cycles import BillCycle
from pipeline.home import Home
from pipeline.reference import Reference, load_reference
from pipeline.settings import Settings, load_settings


class CdrbillHome(dg.ConfigurableResource):
    """The home directory (``CDRBILL_HOME``; empty means the environment's or the default)."""

    root: str = ""

    def home(self) -> Home:
        return (Home(Path(self.root)) if self.root else Home.from_env()).ensure()

    def reference(self) -> Reference:
        return load_reference(self.home().reference)

    def settings(self) -> Settings:
        return load_settings(self.home().reference)

    def cycle(self, partition_key: str) -> BillCycle:
        return BillCycle.parse(partition_key, self.settings().billing_timezone)
