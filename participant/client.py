"""A gRPC client for the aggregator's public API, used by the CLI, the demo and front-ends.

`encryption_context()` fetches the committee's joint key and checks it against the signed
ceremony transcript (every keyholder's signature) before anything is encrypted under it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Iterator, TypeVar

import grpc

from stagpack import codec
from stagpack.accounts import Account, Balance, TransferKind
from stagpack.committee import Transcript
from stagpack.encoding import Threshold
from stagpack.envelope import Withdrawal
from stagpack.errors import IntegrityFailure
from stagpack.fhe import FheContext, FheParameters, PublicKey
from stagpack.edge.rpc import PUBLIC_MESSAGE_LIMIT, channel, error_from_rpc
from stagpack.identity import SigningIdentity
from stagpack.log import CertificateBundle
from stagpack.participant.sdk import PreparedIntendo, prepare_intendo, prepare_transfer, prepare_withdrawal
from stagpack.stag import StagSpec
from stagpack.v1 import aggregator_pb2, aggregator_pb2_grpc
from stagpack.edge.wire import (
    account_to_proto,
    balance_from_proto,
    envelope_to_proto,
    spec_from_proto,
    spec_to_proto,
    transfer_to_proto,
    withdrawal_to_proto,
)

Message = TypeVar("Message")


@dataclass(frozen=True)
class HuntView:
    """A hunt as a watcher sees it, with the bundle that proves it."""

    stag_id: bytes
    epoch: int
    level: int
    log_height: int  # the log height the hunt's epoch evaluated
    members: tuple[tuple[bytes, bytes, int], ...]  # (intendo id, participant, weight)
    bundle: CertificateBundle

    @classmethod
    def from_proto(cls, message: aggregator_pb2.Hunt) -> HuntView:
        return cls(
            bytes(message.stag_id), int(message.epoch), int(message.level), int(message.log_height),
            tuple((bytes(m.intendo_id), bytes(m.participant), int(m.weight)) for m in message.members),
            codec.decode(CertificateBundle, bytes(message.certificate_bundle)),
        )


class AggregatorClient:
    def __init__(self, address: str, timeout_seconds: float = 60.0) -> None:
        self.address = address
        self._channel = channel(address, PUBLIC_MESSAGE_LIMIT)
        self._stub = aggregator_pb2_grpc.AggregatorStub(self._channel)
        self._timeout = timeout_seconds
        self._context: FheContext | None = None
        self._joint: PublicKey | None = None
        self.transcript: Transcript | None = None

    def _rpc(self, method: str, request: object, response_type: type[Message]) -> Message:
        try:
            response = getattr(self._stub, method)(request, timeout=self._timeout)
        except grpc.RpcError as error:
            raise error_from_rpc(error) from None
        if not isinstance(response, response_type):
            raise IntegrityFailure(f"{method} answered {type(response).__name__}, not {response_type.__name__}")
        return response

    def close(self) -> None:
        self._channel.close()

    def encryption_context(self) -> tuple[FheContext, PublicKey]:
        """The context and joint key, checked against the transcript's signatures (cached)."""
        if self._context is None or self._joint is None:
            message = self._rpc("GetEncryptionContext", aggregator_pb2.GetEncryptionContextRequest(), aggregator_pb2.EncryptionContext)
            transcript = Transcript.from_bytes(bytes(message.transcript))
            transcript.verify()
            parameters = FheParameters.from_bytes(bytes(message.parameters))
            if parameters.to_bytes() != transcript.body.parameters:
                raise IntegrityFailure("the aggregator's parameters differ from the committee transcript")
            joint_bytes = bytes(message.joint_public_key)
            if hashlib.sha256(joint_bytes).digest() != transcript.body.joint_public_key:
                raise IntegrityFailure("the aggregator's public key is not the committee's (transcript mismatch)")
            context = FheContext(parameters)
            joint = context.public_key_from_bytes(joint_bytes)
            context.bind_joint_key(joint)
            self._context, self._joint, self.transcript = context, joint, transcript
        return self._context, self._joint

    @property
    def committee_id(self) -> bytes:
        self.encryption_context()
        assert self.transcript is not None
        return self.transcript.committee_id

    def create_stag(self, spec: StagSpec, funding_signature: bytes = b"") -> bytes:
        """Create a stag; one with a refund pool needs its funder's `sdk.sign_pool_funding`."""
        request = aggregator_pb2.CreateStagRequest(spec=spec_to_proto(spec), funding_signature=funding_signature)
        response = self._rpc("CreateStag", request, aggregator_pb2.CreateStagResponse)
        return bytes(response.stag_id)

    def list_stags(self) -> list[aggregator_pb2.StagSummary]:
        return list(self._rpc("ListStags", aggregator_pb2.ListStagsRequest(), aggregator_pb2.ListStagsResponse).stags)

    def status(self, stag_id: bytes) -> aggregator_pb2.StagStatus:
        return self._rpc("GetStagStatus", aggregator_pb2.GetStagStatusRequest(stag_id=stag_id), aggregator_pb2.StagStatus)

    def spec(self, stag_id: bytes) -> StagSpec:
        spec = spec_from_proto(self.status(stag_id).spec)
        if spec.stag_id != stag_id:
            raise IntegrityFailure("the aggregator returned a spec that does not hash to the stag id")
        return spec

    def prepare(self, spec: StagSpec, identity: SigningIdentity, threshold: Threshold, capital_tag: str = "") -> PreparedIntendo:
        context, joint = self.encryption_context()
        if spec.committee != self.committee_id:
            raise IntegrityFailure("the stag belongs to another committee")
        assert self.transcript is not None
        identity_key = self.transcript.body.identity_key.public_key
        return prepare_intendo(context, joint, spec, identity, threshold, capital_tag=capital_tag, identity_key=identity_key)

    def submit(self, prepared: PreparedIntendo) -> tuple[bytes, int]:
        request = aggregator_pb2.SubmitIntendoRequest(envelope=envelope_to_proto(prepared.envelope), ciphertext=prepared.ciphertext)
        response = self._rpc("SubmitIntendo", request, aggregator_pb2.SubmitIntendoResponse)
        return bytes(response.intendo_id), int(response.log_height)

    def withdraw(self, identity: SigningIdentity, stag_id: bytes, intendo_id: bytes) -> int:
        withdrawal: Withdrawal = prepare_withdrawal(identity, stag_id, intendo_id, spec=self.spec(stag_id))
        response = self._rpc(
            "WithdrawIntendo", aggregator_pb2.WithdrawIntendoRequest(withdrawal=withdrawal_to_proto(withdrawal)),
            aggregator_pb2.WithdrawIntendoResponse,
        )
        return int(response.log_height)

    def transfer(self, identity: SigningIdentity, kind: TransferKind, tag: str, amount: int) -> Balance:
        """Deposit into, or release from, the identity's escrow account `tag`."""
        request = transfer_to_proto(prepare_transfer(identity, self.committee_id, kind, tag, amount))
        return balance_from_proto(self._rpc("Transfer", request, aggregator_pb2.AccountBalance))

    def balance(self, account: Account) -> Balance:
        request = aggregator_pb2.GetBalanceRequest(account=account_to_proto(account))
        return balance_from_proto(self._rpc("GetBalance", request, aggregator_pb2.AccountBalance))

    def intendo_status(self, stag_id: bytes, intendo_id: bytes) -> aggregator_pb2.IntendoStatus:
        return self._rpc(
            "GetIntendoStatus", aggregator_pb2.GetIntendoStatusRequest(stag_id=stag_id, intendo_id=intendo_id),
            aggregator_pb2.IntendoStatus,
        )

    def watch(self, stag_id: bytes, after_epoch: int = 0, timeout_seconds: float | None = None) -> Iterator[HuntView]:
        """Hunts of the stag as they are certified (blocks; ends at the stag's deadline)."""
        try:
            for message in self._stub.WatchHunts(
                aggregator_pb2.WatchHuntsRequest(stag_id=stag_id, after_epoch=after_epoch), timeout=timeout_seconds
            ):
                yield HuntView.from_proto(message)
        except grpc.RpcError as error:
            if error.code() is grpc.StatusCode.DEADLINE_EXCEEDED:
                return
            raise error_from_rpc(error) from None
