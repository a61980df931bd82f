"""The participant SDK: turn "I will if at least N others do" into a signed, encrypted intendo.

Everything here runs on the participant's machine: the threshold is encoded and encrypted
locally under the committee's joint key and never leaves in the clear. The aggregator only ever
receives the ciphertext, the public weight and the signature.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from stagpack.accounts import Transfer, TransferKind, check_amount, check_tag
from stagpack.encoding import SlotLayout, StagKind, Threshold
from stagpack.envelope import IntendoEnvelope, Withdrawal
from stagpack.errors import InvalidInput
from stagpack.fhe import FheContext, PublicKey
from stagpack.identity import SigningIdentity
from stagpack.shield.ring import ring_of
from stagpack.stag import StagSpec, now_millis
from stagpack.terms import pool_funding_message

DEFAULT_VALIDITY_MILLIS = 10 * 60 * 1000


@dataclass(frozen=True)
class PreparedIntendo:
    """A signed envelope and the ciphertext bytes it commits to, ready to submit."""

    envelope: IntendoEnvelope
    ciphertext: bytes

    @property
    def intendo_id(self) -> bytes:
        return self.envelope.intendo_id


def count_threshold(spec: StagSpec, others: int) -> Threshold:
    """'I will if at least `others` others do' for a count stag."""
    if spec.kind is not StagKind.COUNT:
        raise InvalidInput("this stag counts capital: give an amount and a target total")
    return Threshold.count(others, levels=spec.levels)


def capital_threshold(spec: StagSpec, amount: int, total: int) -> Threshold:
    """'I commit `amount` if the total reaches `total`' for a capital stag."""
    if spec.kind is not StagKind.CAPITAL:
        raise InvalidInput("this stag counts members: give the number of others instead")
    return Threshold.capital(amount, total, levels=spec.levels)


def prepare_intendo(
    context: FheContext,
    joint_key: PublicKey,
    spec: StagSpec,
    identity: SigningIdentity,
    threshold: Threshold,
    *,
    capital_tag: str = "",
    valid_for_millis: int = DEFAULT_VALIDITY_MILLIS,
    identity_key: bytes | None = None,
) -> PreparedIntendo:
    """Encode the thermometer, encrypt it under the joint key, sign the envelope. A capital
    intendo names `capital_tag`, the signer's escrow account that backs its weight. In an
    anonymous stag the envelope is ring-signed over the eligibility list and carries the
    signer's key encrypted to the committee's `identity_key` (from its transcript)."""
    if spec.kind is StagKind.CAPITAL:
        check_tag(capital_tag, "the capital tag (the escrow account backing the intendo)")
    elif capital_tag:
        raise InvalidInput("a count intendo names no capital tag")
    layout = SlotLayout(context.slot_count, context.plaintext_modulus)
    slots = layout.thermometer(threshold, spec.levels)
    ciphertext = context.ciphertext_to_bytes(context.encrypt(joint_key, slots))
    if spec.anonymous:
        if identity_key is None:
            raise InvalidInput("an anonymous stag's intendo is encrypted to the committee's identity key: give identity_key")
        anonymous = IntendoEnvelope.sign_anonymously(
            ring_of(spec.stag_id, spec.eligibility), identity, identity_key, hashlib.sha256(ciphertext).digest(),
            now_millis() + valid_for_millis,
        )
        return PreparedIntendo(anonymous, ciphertext)
    envelope = IntendoEnvelope.sign(
        identity, spec.stag_id, hashlib.sha256(ciphertext).digest(), threshold.weight, now_millis() + valid_for_millis,
        capital_tag,
    )
    return PreparedIntendo(envelope, ciphertext)


def prepare_withdrawal(
    identity: SigningIdentity, stag_id: bytes, intendo_id: bytes, *, valid_for_millis: int = DEFAULT_VALIDITY_MILLIS,
    spec: StagSpec | None = None,
) -> Withdrawal:
    """A signed withdrawal; pass the stag's `spec` for an anonymous stag (ring-signed, with the
    key image of the intendo it withdraws)."""
    if spec is not None and spec.anonymous:
        if spec.stag_id != stag_id:
            raise InvalidInput("the spec is for another stag")
        return Withdrawal.sign_anonymously(ring_of(stag_id, spec.eligibility), identity, intendo_id, now_millis() + valid_for_millis)
    return Withdrawal.sign(identity, stag_id, intendo_id, now_millis() + valid_for_millis)


def prepare_transfer(
    identity: SigningIdentity, committee: bytes, kind: TransferKind, tag: str, amount: int, *,
    valid_for_millis: int = DEFAULT_VALIDITY_MILLIS,
) -> Transfer:
    """A deposit into, or a release from, the signer's escrow account `tag` in the ledger of
    `committee` (the committee id: a statement moves money in that ledger only)."""
    check_tag(tag)
    check_amount(amount)
    return Transfer.sign(identity, committee, kind, tag, amount, now_millis() + valid_for_millis)


def sign_pool_funding(funder: SigningIdentity, spec: StagSpec) -> bytes:
    """The funder's authorization of a stag's refund pool: its signature over the stag id, which
    moves `spec.refund.pool` from its escrow account `spec.refund.funder` when the stag is
    created (`AggregatorClient.create_stag(spec, funding_signature=...)`), once."""
    if spec.refund is None:
        raise InvalidInput("the stag has no refund pool to fund")
    if spec.refund.funder.owner != funder.verify_key:
        raise InvalidInput("the refund pool is funded from another owner's account: that owner signs")
    return funder.sign("refund-pool", pool_funding_message(spec.stag_id))
