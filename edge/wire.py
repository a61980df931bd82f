"""Conversions between the public protobuf messages (stagpack.v1) and stagpack's records.

Decoding from protobuf is where hostile field values are first met: every conversion checks
types and ranges and raises `InvalidInput` with the field's name, before any record exists.
"""

from __future__ import annotations

from pathlib import Path

from stagpack import codec
from stagpack.accounts import MAX_AMOUNT, Account, Balance, Transfer, TransferKind, TransferStatement
from stagpack.aggregator.store import EpochOutcome
from stagpack.dkg import CommitteeBundle
from stagpack.committee import Transcript
from stagpack.encoding import StagKind
from stagpack.envelope import IntendoEnvelope, IntendoStatement, Withdrawal, WithdrawalStatement
from stagpack.errors import IntegrityFailure, InvalidInput, NotFound
from stagpack.log import CertificateBundle, HuntCertificate, SettlementCertificate
from stagpack.stag import StagSpec
from stagpack.terms import FeeTerms, RefundMode, RefundTerms
from stagpack.v1 import aggregator_pb2, common_pb2

MAX_INT = (1 << 62) - 1
MAX_LEVELS = 1 << 20  # what a spec may carry on the wire; the committee's parameters allow fewer
_KINDS: dict[int, StagKind] = {
    common_pb2.STAG_KIND_COUNT: StagKind.COUNT,
    common_pb2.STAG_KIND_CAPITAL: StagKind.CAPITAL,
}
_KIND_VALUES: dict[StagKind, common_pb2.StagKind] = {
    StagKind.COUNT: common_pb2.STAG_KIND_COUNT,
    StagKind.CAPITAL: common_pb2.STAG_KIND_CAPITAL,
}


def _bounded(name: str, value: int, maximum: int = MAX_INT) -> int:
    if not 0 <= value <= maximum:
        raise InvalidInput(f"{name} is out of range: {value}")
    return int(value)


def _signed(name: str, value: int) -> int:
    if not -MAX_INT <= value <= MAX_INT:
        raise InvalidInput(f"{name} is out of range: {value}")
    return int(value)


def kind_to_proto(kind: StagKind) -> common_pb2.StagKind:
    """The protobuf `StagKind` value of a stag kind."""
    return _KIND_VALUES[kind]


def kind_from_proto(value: int) -> StagKind:
    """The stag kind a protobuf `StagKind` value names; InvalidInput for UNSPECIFIED or a value
    this version does not know."""
    kind = _KINDS.get(value)
    if kind is None:
        raise InvalidInput(f"unknown stag kind {value} (expected STAG_KIND_COUNT or STAG_KIND_CAPITAL)")
    return kind


def spec_to_proto(spec: StagSpec) -> common_pb2.StagSpec:
    return common_pb2.StagSpec(
        committee=spec.committee, kind=kind_to_proto(spec.kind), levels=spec.levels, title=spec.title,
        eligibility=list(spec.eligibility), epoch_millis=spec.epoch_millis, opens_at_millis=spec.opens_at_millis,
        deadline_millis=spec.deadline_millis, payload=spec.payload, nonce=spec.nonce,
        beneficiary=None if spec.beneficiary is None else account_to_proto(spec.beneficiary),
        refund=None if spec.refund is None else refund_terms_to_proto(spec.refund),
        fees=None if spec.fees is None else fee_terms_to_proto(spec.fees),
        trigger=spec.trigger, hook=spec.hook, anonymous=spec.anonymous,
    )


_REFUND_MODES = {RefundMode.FIXED: common_pb2.REFUND_MODE_FIXED, RefundMode.PRO_RATA: common_pb2.REFUND_MODE_PRO_RATA}


def refund_terms_to_proto(terms: RefundTerms) -> common_pb2.RefundTerms:
    return common_pb2.RefundTerms(
        funder=account_to_proto(terms.funder), pool=terms.pool, mode=_REFUND_MODES[terms.mode], bonus=terms.bonus,
        returns_to=account_to_proto(terms.returns_to),
    )


def refund_terms_from_proto(message: common_pb2.RefundTerms) -> RefundTerms:
    modes = {value: mode for mode, value in _REFUND_MODES.items()}
    if message.mode not in modes:
        raise InvalidInput("spec.refund.mode must be REFUND_MODE_FIXED or REFUND_MODE_PRO_RATA")
    if not message.HasField("funder") or not message.HasField("returns_to"):
        raise InvalidInput("spec.refund names its funder and its return account")
    return RefundTerms(
        funder=account_from_proto(message.funder), pool=_bounded("spec.refund.pool", message.pool, MAX_AMOUNT),
        mode=modes[message.mode], bonus=_bounded("spec.refund.bonus", message.bonus, MAX_AMOUNT),
        returns_to=account_from_proto(message.returns_to),
    )


def fee_terms_to_proto(terms: FeeTerms) -> common_pb2.FeeTerms:
    return common_pb2.FeeTerms(
        submission=terms.submission, member=terms.member, committee=account_to_proto(terms.committee),
        operator=account_to_proto(terms.operator), committee_percent=terms.committee_percent,
    )


def fee_terms_from_proto(message: common_pb2.FeeTerms) -> FeeTerms:
    if not message.HasField("committee") or not message.HasField("operator"):
        raise InvalidInput("spec.fees names the committee's and the operator's accounts")
    return FeeTerms(
        submission=_bounded("spec.fees.submission", message.submission, MAX_AMOUNT),
        member=_bounded("spec.fees.member", message.member, MAX_AMOUNT),
        committee=account_from_proto(message.committee), operator=account_from_proto(message.operator),
        committee_percent=_bounded("spec.fees.committee_percent", message.committee_percent, 100),
    )


def settlement_to_proto(certificate: SettlementCertificate) -> aggregator_pb2.Settlement:
    outcome = certificate.outcome
    return aggregator_pb2.Settlement(
        epoch=outcome.epoch, log_height=outcome.height, returned=outcome.returned, certificate=codec.encode(certificate),
        refunds=[
            aggregator_pb2.Refund(intendo_id=r.intendo_id, account=account_to_proto(r.account), amount=r.amount)
            for r in outcome.refunds
        ],
    )


def spec_from_proto(message: common_pb2.StagSpec) -> StagSpec:
    if message.kind not in _KINDS:
        raise InvalidInput("spec.kind must be STAG_KIND_COUNT or STAG_KIND_CAPITAL")
    kind = kind_from_proto(message.kind)
    return StagSpec(
        committee=bytes(message.committee),
        kind=kind,
        levels=_bounded("spec.levels", message.levels, MAX_LEVELS),
        title=message.title,
        eligibility=tuple(bytes(key) for key in message.eligibility),
        epoch_millis=_bounded("spec.epoch_millis", message.epoch_millis),
        opens_at_millis=_signed("spec.opens_at_millis", message.opens_at_millis),
        deadline_millis=_signed("spec.deadline_millis", message.deadline_millis),
        payload=bytes(message.payload),
        beneficiary=account_from_proto(message.beneficiary) if message.HasField("beneficiary") else None,
        refund=refund_terms_from_proto(message.refund) if message.HasField("refund") else None,
        fees=fee_terms_from_proto(message.fees) if message.HasField("fees") else None,
        trigger=bytes(message.trigger),
        hook=bytes(message.hook),
        anonymous=bool(message.anonymous),
        nonce=bytes(message.nonce),
    )


def account_to_proto(account: Account) -> common_pb2.Account:
    return common_pb2.Account(owner=account.owner, tag=account.tag)


def account_from_proto(message: common_pb2.Account) -> Account:
    return Account(bytes(message.owner), message.tag)


_TRANSFER_KINDS = {
    TransferKind.DEPOSIT: aggregator_pb2.TRANSFER_KIND_DEPOSIT,
    TransferKind.RELEASE: aggregator_pb2.TRANSFER_KIND_RELEASE,
}


def transfer_to_proto(transfer: Transfer) -> aggregator_pb2.TransferRequest:
    statement = transfer.statement
    return aggregator_pb2.TransferRequest(
        statement=aggregator_pb2.TransferStatement(
            kind=_TRANSFER_KINDS[statement.kind], account=account_to_proto(statement.account), amount=statement.amount,
            nonce=statement.nonce, expires_at_millis=statement.expires_at_millis, committee=statement.committee,
        ),
        signature=transfer.signature,
    )


def transfer_from_proto(message: aggregator_pb2.TransferRequest) -> Transfer:
    if not message.HasField("statement") or not message.statement.HasField("account"):
        raise InvalidInput("transfer.statement.account is missing")
    statement = message.statement
    kinds = {value: kind for kind, value in _TRANSFER_KINDS.items()}
    if statement.kind not in kinds:
        raise InvalidInput("transfer.statement.kind must be TRANSFER_KIND_DEPOSIT or TRANSFER_KIND_RELEASE")
    return Transfer(
        TransferStatement(
            kind=kinds[statement.kind],
            committee=bytes(statement.committee),
            account=account_from_proto(statement.account),
            amount=_bounded("transfer.statement.amount", statement.amount, MAX_AMOUNT),
            nonce=bytes(statement.nonce),
            expires_at_millis=_signed("transfer.statement.expires_at_millis", statement.expires_at_millis),
        ),
        bytes(message.signature),
    )


def balance_to_proto(balance: Balance) -> aggregator_pb2.AccountBalance:
    return aggregator_pb2.AccountBalance(account=account_to_proto(balance.account), balance=balance.balance, held=balance.held)


def balance_from_proto(message: aggregator_pb2.AccountBalance) -> Balance:
    return Balance(account_from_proto(message.account), int(message.balance), int(message.held))


def envelope_to_proto(envelope: IntendoEnvelope) -> common_pb2.IntendoEnvelope:
    statement = envelope.statement
    return common_pb2.IntendoEnvelope(
        statement=common_pb2.IntendoStatement(
            stag_id=statement.stag_id, participant=statement.participant, ciphertext_digest=statement.ciphertext_digest,
            weight=statement.weight, nonce=statement.nonce, expires_at_millis=statement.expires_at_millis,
            capital_tag=statement.capital_tag,
        ),
        signature=envelope.signature,
    )


def envelope_from_proto(message: common_pb2.IntendoEnvelope) -> IntendoEnvelope:
    if not message.HasField("statement"):
        raise InvalidInput("envelope.statement is missing")
    statement = message.statement
    return IntendoEnvelope(
        IntendoStatement(
            stag_id=bytes(statement.stag_id),
            participant=bytes(statement.participant),
            ciphertext_digest=bytes(statement.ciphertext_digest),
            weight=_bounded("envelope.statement.weight", statement.weight, 1 << 31),
            capital_tag=statement.capital_tag,
            nonce=bytes(statement.nonce),
            expires_at_millis=_signed("envelope.statement.expires_at_millis", statement.expires_at_millis),
        ),
        bytes(message.signature),
    )


def withdrawal_to_proto(withdrawal: Withdrawal) -> common_pb2.Withdrawal:
    statement = withdrawal.statement
    return common_pb2.Withdrawal(
        statement=common_pb2.WithdrawalStatement(
            stag_id=statement.stag_id, intendo_id=statement.intendo_id, participant=statement.participant,
            nonce=statement.nonce, expires_at_millis=statement.expires_at_millis,
        ),
        signature=withdrawal.signature,
    )


def withdrawal_from_proto(message: common_pb2.Withdrawal) -> Withdrawal:
    if not message.HasField("statement"):
        raise InvalidInput("withdrawal.statement is missing")
    statement = message.statement
    return Withdrawal(
        WithdrawalStatement(
            stag_id=bytes(statement.stag_id),
            intendo_id=bytes(statement.intendo_id),
            participant=bytes(statement.participant),
            nonce=bytes(statement.nonce),
            expires_at_millis=_signed("withdrawal.statement.expires_at_millis", statement.expires_at_millis),
        ),
        bytes(message.signature),
    )


def epoch_outcome_from_proto(result: str) -> EpochOutcome:
    """An EpochResult's `result` (the EpochOutcome's value) as the EpochOutcome it names."""
    try:
        return EpochOutcome(result)
    except ValueError:
        raise IntegrityFailure(f"the aggregator reported an unknown epoch outcome {result[:40]!r}") from None


def hunt_to_proto(certificate: HuntCertificate, spec: StagSpec, transcript: Transcript) -> aggregator_pb2.Hunt:
    outcome = certificate.outcome
    return aggregator_pb2.Hunt(
        stag_id=outcome.stag_id,
        epoch=outcome.epoch,
        level=outcome.level,
        log_height=outcome.height,
        members=[
            aggregator_pb2.HuntMember(
                intendo_id=member.intendo_id, participant=member.statement.participant, weight=member.statement.weight
            )
            for member in outcome.members
        ],
        certificate_bundle=codec.encode(CertificateBundle(certificate, spec, transcript)),
        cause=outcome.cause,
    )


# --- committee bundle files -------------------------------------------------------------------

_BUNDLE_FILES = ("transcript.bin", "joint_public_key.bin", "relinearization_key.bin", "rotation_keys.bin")


def save_bundle(bundle: CommitteeBundle, directory: str | Path) -> None:
    """Write the ceremony's public outcome; the transcript goes last, marking it complete."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    contents = (bundle.transcript.to_bytes(), bundle.joint_public_key, bundle.relinearization_key, bundle.rotation_keys)
    for name, data in reversed(list(zip(_BUNDLE_FILES, contents))):
        temporary = directory / f".{name}.tmp"
        temporary.write_bytes(data)
        temporary.replace(directory / name)


def bundle_exists(directory: str | Path) -> bool:
    return all((Path(directory) / name).exists() for name in _BUNDLE_FILES)


def load_bundle_transcript(directory: str | Path) -> Transcript:
    """Only the ceremony transcript of a saved bundle (the keys are large)."""
    directory = Path(directory)
    if not bundle_exists(directory):
        raise NotFound(f"no committee in {directory}: run `stagpack ceremony` first")
    return Transcript.from_bytes((directory / _BUNDLE_FILES[0]).read_bytes())


def load_bundle_files(directory: str | Path) -> CommitteeBundle:
    directory = Path(directory)
    if not bundle_exists(directory):
        raise NotFound(f"no committee in {directory}: run `stagpack ceremony` first")
    transcript, joint, relinearization, rotation = ((directory / name).read_bytes() for name in _BUNDLE_FILES)
    return CommitteeBundle(Transcript.from_bytes(transcript), joint, relinearization, rotation)
