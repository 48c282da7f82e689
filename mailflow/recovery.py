"""The recovery store: Bytewax's recovery partitions plus what was fixed when they were made.

Bytewax snapshots every keyed state into `<data dir>/recovery/part-N.sqlite3`.
Two settings are frozen into those snapshots: `recovery_partitions` (how many
partition files exist) and `shards` (the logical shards recipient-scoped state
is keyed by: a snapshot holds state under a shard number, and another shard
count would look state up under other numbers). Both are recorded in
`mailflow-recovery.json` next to the partitions when the store is created, and
a later start with other values is refused instead of silently losing state.

A cluster: Bytewax needs the processes together to hold every partition, each
partition once. On one machine all processes share the directory (`mailflow run
--processes P` creates every partition before it starts them). Across machines
(`--addresses`, a data directory per machine), process `i` of `P` creates the
partitions `n` with `n % P == i` in its own directory.

>>> import tempfile
>>> root = Path(tempfile.mkdtemp())
>>> store = RecoveryStore(root / "recovery")
>>> store.prepare(RecoveryLayout(shards=64, recovery_partitions=2))
'created'
>>> sorted(p.name for p in store.path.iterdir())
['mailflow-recovery.json', 'part-0.sqlite3', 'part-1.sqlite3']
>>> store.prepare(RecoveryLayout(shards=64, recovery_partitions=2))
'checked'
>>> try:
...     store.prepare(RecoveryLayout(shards=32, recovery_partitions=2))
... except ConfigError as exc:
...     print(str(exc).split(": ")[1].split(" (")[0])
keep shards = 64
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from flows.settings import ConfigError

log = logging.getLogger(__name__)

LAYOUT_FILE = "mailflow-recovery.json"
#: The settings each one comes from, for the messages.
ENV_NAMES = {"shards": "MAILFLOW_SHARDS", "recovery_partitions": "MAILFLOW_RECOVERY_PARTITIONS"}
#: How the snapshots are laid out. 1: models in every recipient shard; 2: the models in
#: one keyed step, recipient histories in the shards (a store of 1 cannot be resumed by 2);
#: 3: the convergence propensity counts journeys' moves (operators/hazards.py).
STATE_FORMAT = 3
#: What changed with each format, for the message that refuses an older store.
FORMAT_CHANGES = {2: "the online models moved out of the recipient shards into one keyed step",
                  3: "the convergence propensity counts how journeys move"}


@dataclass(frozen=True)
class RecoveryLayout:
    """What cannot change once the recovery store holds state."""

    shards: int
    recovery_partitions: int
    state_format: int = STATE_FORMAT


class RecoveryStore:
    """`<data dir>/recovery`: Bytewax's partitions and the recorded `RecoveryLayout`."""

    def __init__(self, path: Path):
        self.path = path
        self.layout_file = path / LAYOUT_FILE

    def partitions(self) -> list[int]:
        """The partition numbers present in this directory."""
        found = []
        for file in self.path.glob("part-*.sqlite3"):
            number = file.stem.removeprefix("part-")
            if number.isdigit():
                found.append(int(number))
        return sorted(found)

    def recorded(self) -> RecoveryLayout | None:
        """The layout recorded at creation (None: none recorded)."""
        try:
            data = json.loads(self.layout_file.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read {self.layout_file}: {exc}") from None
        try:
            data.setdefault("state_format", 1)  # recorded before formats were
            return RecoveryLayout(**{f.name: int(data[f.name]) for f in fields(RecoveryLayout)})
        except (KeyError, TypeError, ValueError):
            raise ConfigError(f"{self.layout_file} is not a recovery layout: {data!r}") from None

    def prepare(self, wanted: RecoveryLayout, process: int = 0, processes: int = 1) -> str:
        """Create the store (first start) or check it (later starts); returns which.

        `process` of `processes` creates only its share of the partitions (`n % processes
        == process`); the defaults create them all. A store without a recorded layout (made
        before layouts were recorded) is adopted: the layout asked for is recorded.
        """
        recorded = self.recorded()
        present = self.partitions()
        if recorded is not None:
            self._check(recorded, wanted)
        mine = [n for n in range(wanted.recovery_partitions) if n % processes == process]
        missing = [n for n in mine if n not in present]
        if missing and recorded is not None and processes == 1:
            raise ConfigError(
                f"recovery partitions {missing} are missing from {self.path}: bring their "
                "part-N.sqlite3 files back (e.g. from the machines of a former cluster), or "
                f"start from a fresh recovery directory (move {self.path} away)")
        if missing and (not present or processes > 1):
            # A new store, or (a cluster's shared directory) another process made it first.
            self._create(missing, wanted.recovery_partitions)
        if recorded is not None:
            return "checked"
        self._record(wanted)
        if present and processes == 1:
            log.warning("recovery store %s had no recorded layout; recorded %s (these "
                        "settings cannot change from now on)", self.path, asdict(wanted))
            return "adopted"
        log.info("created recovery store %s: %s, partitions %s here", self.path,
                 asdict(wanted), missing)
        return "created"

    def _check(self, recorded: RecoveryLayout, wanted: RecoveryLayout) -> None:
        for f in fields(RecoveryLayout):
            was, asked = getattr(recorded, f.name), getattr(wanted, f.name)
            if was != asked and f.name == "state_format":
                raise ConfigError(
                    f"the recovery store {self.path} holds snapshots of state format {was}, "
                    f"and this version of mailflow keeps its state as format {asked} ("
                    f"{FORMAT_CHANGES.get(asked, 'its layout changed')}): "
                    f"start from a fresh recovery directory (move {self.path} away, or run "
                    "once with --no-recovery); the job then rebuilds its state from the "
                    "beginning of the topics")
            if was != asked:
                raise ConfigError(
                    f"{f.name} = {asked}, but the recovery store {self.path} was created with "
                    f"{f.name} = {was}, and its snapshots depend on it: keep {f.name} = {was} "
                    f"({ENV_NAMES[f.name]}, or the config file), or start from a fresh "
                    f"recovery directory (move {self.path} away, or run once with "
                    "--no-recovery): the job then rebuilds its state from the beginning of "
                    "the topics")

    def _create(self, numbers: list[int], count: int) -> None:
        """Partition files `numbers` of `count`, made aside and moved in (never half-made)."""
        from bytewax.recovery import init_db_dir

        self.path.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".recovery-init-", dir=self.path.parent))
        try:
            init_db_dir(staging, count)
            for n in numbers:
                target = self.path / f"part-{n}.sqlite3"
                if not target.exists():  # another process of a shared directory was first
                    os.replace(staging / target.name, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _record(self, layout: RecoveryLayout) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self.layout_file.with_name(f".{LAYOUT_FILE}.{os.getpid()}")
        tmp.write_text(json.dumps(asdict(layout), indent=2) + "\n")
        os.replace(tmp, self.layout_file)
