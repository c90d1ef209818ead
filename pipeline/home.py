"""The one home directory that holds every input, ledger and output of cdrbill (``CDRBILL_HOME``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_HOME = PROJECT_ROOT / ".cdrbill"
TEMPLATES_DIR = PROJECT_ROOT / "templates"
SAMPLE_DIR = PROJECT_ROOT / "data_samples" / "sample"


@dataclass(frozen=True)
class Home:
    """Paths under the home directory; every stage reads and writes only here."""

    root: Path

    @classmethod
    def from_env(cls) -> Home:
        """The home named by ``CDRBILL_HOME``, else ``.cdrbill/`` inside the checkout."""
        return cls(Path(os.environ.get("CDRBILL_HOME", DEFAULT_HOME)).resolve())

    @property
    def landing(self) -> Path:
        return self.root / "landing"

    @property
    def archive(self) -> Path:
        return self.root / "archive"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    @property
    def reference(self) -> Path:
        return self.root / "reference"

    @property
    def lake(self) -> Path:
        return self.root / "lake"

    @property
    def state_db(self) -> Path:
        return self.root / "state.duckdb"

    @property
    def warehouse_db(self) -> Path:
        return self.root / "warehouse.duckdb"

    @property
    def documents(self) -> Path:
        return self.root / "documents"

    @property
    def outbox(self) -> Path:
        return self.root / "outbox"

    @property
    def print_dir(self) -> Path:
        return self.root / "print"

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster"

    def ensure(self) -> Home:
        """Create the folders (owner-only permissions: they hold personal data)."""
        for path in (
            self.root,
            self.landing,
            self.archive,
            self.quarantine,
            self.reference,
            self.lake,
            self.documents,
            self.print_dir,
        ):  # the outbox is a Maildir: delivery creates it
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
        return self
