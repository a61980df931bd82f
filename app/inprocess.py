"""A whole deployment in one process: n keyholders, the ceremony, the aggregator, the ledger.

Every party keeps its own store in `directory` and every record crosses an encode/decode
boundary between parties, so this runs exactly the protocol code the services run; only the
transport differs. Used by tests and by `stagpack demo --in-process`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping

from stagpack.aggregator.core import Aggregator
from stagpack.decrypt import DecryptingParty
from stagpack.decrypt.computation import DecryptionObserver
from stagpack.dkg import CommitteeBundle, run_ceremony
from stagpack.edge.aggregator_store import SqliteAggregatorStore
from stagpack.edge.keyholder_store import SqliteKeyholderStore
from stagpack.committee import CommitteeInfo
from stagpack.edge.chain import ChainLedger
from stagpack.edge.ledger import SqliteLedger
from stagpack.errors import InvalidInput
from stagpack.fhe import FheContext, FheParameters
from stagpack.identity import KeyholderIdentity, Sealer, SealingCost, SigningIdentity
from stagpack.keyholder.local import LocalKeyholder
from stagpack.decrypt.threshold import PartialSource
from stagpack.keyholder.node import KeyholderNode, MaskSource
from stagpack.log import LogEntry
from stagpack.pack import PackLimits
from stagpack.stag import now_millis


class _AggregatorLog:
    """The replicas' view of the aggregator's log (set once the aggregator exists)."""

    def __init__(self) -> None:
        self.aggregator: Aggregator | None = None

    def read_log(self, stag_id: bytes, after_height: int, up_to_height: int) -> Iterable[tuple[LogEntry, bytes | None]]:
        assert self.aggregator is not None
        return list(self.aggregator.read_log(stag_id, after_height, up_to_height))


@dataclass
class InProcessDeployment:
    context: FheContext
    nodes: list[KeyholderNode]
    keyholders: list[LocalKeyholder]
    aggregator: Aggregator
    ledger: SqliteLedger | ChainLedger  # the executor: the SQLite ledger, or the settlement contract on an embedded EVM
    bundle: CommitteeBundle
    aggregator_identity: SigningIdentity  # signs the aggregator's calls (the transcript names its key)
    coordinator: SigningIdentity  # ran the ceremony
    new_aggregator: Callable[[], Aggregator]  # another aggregator over the same store, ledger and keyholders

    def restart_aggregator(self) -> Aggregator:
        """Replace the aggregator with a new one over the same store and ledger, as the process
        would come back after kill -9: only what its store and the ledger made durable
        survives (the old object is dropped, whatever it was doing)."""
        self.aggregator = self.new_aggregator()
        return self.aggregator

    @classmethod
    def start(
        cls,
        directory: str | Path,
        parties: int,
        threshold: int | None = None,
        *,
        parameters: FheParameters | None = None,
        allow_insecure: bool = False,
        limits: PackLimits | None = None,
        clock: Callable[[], int] = now_millis,
        progress: Callable[[str, int, int], None] | None = None,
        recheck_unchanged: bool = True,
        masks: Mapping[int, MaskSource] | None = None,
        partials: Mapping[int, Callable[[DecryptingParty], PartialSource]] | None = None,
        observer: DecryptionObserver | None = None,
        fault_bound: int | None = None,
        noise_test: bool = True,
        executor: str | Callable[[Path, CommitteeInfo], SqliteLedger | ChainLedger] = "sqlite",
    ) -> InProcessDeployment:
        """A deployment in `directory`. Unlike the service (which lets an epoch pass without a
        session when nothing changed), it evaluates every epoch by default, so tests and the
        privacy benchmark observe one outcome per epoch.

        `masks` and `partials` replace the sources of the keyholders they name (by index): a
        dishonest keyholder running the production code path. `observer` sees every vector
        the aggregator fuses. `fault_bound` is the committee's f (default 1 where n > t);
        `noise_test=False` (with `allow_insecure`) is for benchmarks that measure what the
        noise test stops. `executor` is "sqlite" (the ledger in `directory`), "chain" (the
        settlement contract, deployed for this committee on an EVM inside this process), or a
        factory of one from the directory and the committee."""
        directory = Path(directory)
        context = FheContext(parameters, allow_insecure=allow_insecure)
        coordinator, aggregator_identity = SigningIdentity(), SigningIdentity()
        log_view = _AggregatorLog()
        nodes = []
        for index in range(1, parties + 1):
            identity = KeyholderIdentity(f"keyholder-{index}")
            sealer = Sealer(f"passphrase-of-keyholder-{index}".encode(), SealingCost.interactive())
            store = SqliteKeyholderStore(directory / f"keyholder-{index}.db")
            nodes.append(
                KeyholderNode(
                    context, identity, store, sealer, log_view, limits=limits, clock=clock,
                    masks=(masks or {}).get(index), partials=(partials or {}).get(index),
                    coordinator_key=coordinator.verify_key, allow_insecure=allow_insecure,
                )
            )
        ceremony = [LocalKeyholder(node, coordinator, clock) for node in nodes]
        bundle = run_ceremony(
            context, ceremony, threshold or parties, progress, aggregator_key=aggregator_identity.verify_key,
            coordinator_key=coordinator.verify_key, fault_bound=fault_bound, noise_test=noise_test,
        )
        keyholders = [LocalKeyholder(node, aggregator_identity, clock) for node in nodes]
        committee = CommitteeInfo.from_transcript(bundle.transcript)
        ledger: SqliteLedger | ChainLedger
        if callable(executor):
            ledger = executor(directory, committee)
        elif executor == "sqlite":
            ledger = SqliteLedger(directory / "ledger.db")
        elif executor == "chain":
            ledger = ChainLedger.embedded(committee)
        else:
            raise InvalidInput(f"the executor is sqlite or chain, not {executor!r}")

        def new_aggregator() -> Aggregator:
            aggregator = Aggregator(
                context, bundle, SqliteAggregatorStore(directory / "aggregator.db"), keyholders, ledger, limits=limits,
                clock=clock, recheck_unchanged=recheck_unchanged, observer=observer,
            )
            log_view.aggregator = aggregator
            return aggregator

        return cls(context, nodes, keyholders, new_aggregator(), ledger, bundle, aggregator_identity, coordinator, new_aggregator)
