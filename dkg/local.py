"""An in-process transport for the ceremony: every record crosses a byte boundary (encode, then
decode) exactly as it would over the network, so tests exercise the production protocol code."""

from __future__ import annotations

from typing import Any, TypeVar

from stagpack import codec
from stagpack.dkg.messages import (
    Acknowledgement,
    BackupRequest,
    BackupResponse,
    CeremonyPlan,
    ChainRequest,
    ChainResponse,
    CompleteRequest,
    DeliverBackupsRequest,
    FinalizeRequest,
    FinalizeResponse,
    RoundOneRequest,
    RoundOneResponse,
    RoundTwoRequest,
    RoundTwoResponse,
    SelfTestRequest,
    SelfTestResponse,
    SignRequest,
    TranscriptSignature,
)
from stagpack.dkg.party import CeremonyOutcome
from stagpack.identity import PublicIdentity

Record = TypeVar("Record")


def _across(record: Record) -> Record:
    return codec.decode(type(record), codec.encode(record))


class LocalCeremonyPeer:
    """Wraps anything with `DkgParty`'s `handle_*` methods (a bare `DkgParty`, or a keyholder
    node that persists the outcome); keeps a bare party's `CeremonyOutcome` when it completes."""

    def __init__(self, party: Any, identity: PublicIdentity) -> None:
        self._party = party
        self._identity = identity
        self.outcome: CeremonyOutcome | None = None

    def identity(self) -> PublicIdentity:
        return self._identity

    def plan(self, request: CeremonyPlan) -> Acknowledgement:
        response: Acknowledgement = self._party.handle_plan(_across(request))
        return _across(response)

    def chain(self, request: ChainRequest) -> ChainResponse:
        response: ChainResponse = self._party.handle_chain(_across(request))
        return _across(response)

    def round_one(self, request: RoundOneRequest) -> RoundOneResponse:
        response: RoundOneResponse = self._party.handle_round_one(_across(request))
        return _across(response)

    def round_two(self, request: RoundTwoRequest) -> RoundTwoResponse:
        response: RoundTwoResponse = self._party.handle_round_two(_across(request))
        return _across(response)

    def finalize(self, request: FinalizeRequest) -> FinalizeResponse:
        response: FinalizeResponse = self._party.handle_finalize(_across(request))
        return _across(response)

    def backup(self, request: BackupRequest) -> BackupResponse:
        response: BackupResponse = self._party.handle_backup(_across(request))
        return _across(response)

    def deliver_backups(self, request: DeliverBackupsRequest) -> Acknowledgement:
        response: Acknowledgement = self._party.handle_deliver_backups(_across(request))
        return _across(response)

    def self_test(self, request: SelfTestRequest) -> SelfTestResponse:
        response: SelfTestResponse = self._party.handle_self_test(_across(request))
        return _across(response)

    def sign(self, request: SignRequest) -> TranscriptSignature:
        response: TranscriptSignature = self._party.handle_sign(_across(request))
        return _across(response)

    def complete(self, request: CompleteRequest) -> Acknowledgement:
        result = self._party.handle_complete(_across(request))
        if isinstance(result, CeremonyOutcome):
            self.outcome = result
            return Acknowledgement(request.transcript.body.ceremony_id, self._party.index)
        return _across(result)  # type: ignore[no-any-return]
