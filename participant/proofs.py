"""Show friends you signed an intendo, deniably: designated-verifier proofs for agents and the CLI.

A proof file (`IntendoProof`) carries the intendo's signed statement, the claim (the stag, the
intendo id, the signer's key — and, for an anonymous intendo, its key image — the designated
verifiers and an optional claimed threshold) and the proof (`stagpack.shield.dvp`).

* `prove_intendo`: the signer makes one for one or several named verifiers.
* `check_intendo_proof`: a designated verifier checks it: the statement hashes to the intendo
  id and names the signer (or the key image), and the OR-proof verifies. Whether the intendo is
  in the stag is a separate question for the aggregator (`AggregatorClient.intendo_status`).
* `forge_intendo_proof`: the verifiers make the same kind of proof without the signer — for
  any signer they like, in an anonymous stag for any eligible member — which is why a proof
  convinces only a designated verifier that did not forge it, and nobody it is shown to.

The claimed threshold is text the signer chose to attach: bound to the proof, never proven.

Every designated verifier is named by a *verifier card*: its key with its own Ed25519 signature
over that key (`make_verifier_card`; `stagpack identity card`). The signature shows someone knows
the key's secret. Without it a coercer could have a proof designated to a key nobody can sign
for (a hash of a public string): then nobody could have forged it, and it would be public
evidence. A proof carries its verifiers' cards and `check_intendo_proof` checks them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from stagpack import codec
from stagpack.envelope import IntendoStatement
from stagpack.errors import InvalidInput
from stagpack.identity import SigningIdentity, check_verify_key, digest, verify_signature
from stagpack.shield import dvp
from stagpack.shield.group import Scalar


@dataclass(frozen=True)
class VerifierCard:
    """A designated verifier's key, signed by itself: proof that its secret is known."""

    WIRE_NAME = "stagpack.VerifierCard.v1"

    key: bytes
    signature: bytes

    def check(self) -> bytes:
        check_verify_key(self.key, "verifier key")
        verify_signature(self.key, "dvp-verifier", self.key, self.signature)
        return self.key

    def to_hex(self) -> str:
        return codec.encode(self).hex()

    @classmethod
    def from_hex(cls, text: str) -> VerifierCard:
        try:
            data = bytes.fromhex(text.strip())
        except ValueError:
            raise InvalidInput("a verifier card is hex (from `stagpack identity card`)") from None
        return codec.decode(cls, data)


def make_verifier_card(identity: SigningIdentity) -> VerifierCard:
    """What a friend hands out to be named as a designated verifier."""
    return VerifierCard(identity.verify_key, identity.sign("dvp-verifier", identity.verify_key))


@dataclass(frozen=True)
class IntendoProof:
    WIRE_NAME = "stagpack.IntendoProof.v2"

    statement: IntendoStatement
    claim: dvp.SignedIntendoClaim
    cards: tuple[VerifierCard, ...]  # one per designated verifier, in the claim's order
    proof: dvp.DesignatedProof

    def to_bytes(self) -> bytes:
        return codec.encode(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> IntendoProof:
        return codec.decode(cls, data)


def _claim(statement: IntendoStatement, signer: bytes, verifiers: Sequence[bytes], anonymous: bool, claimed_threshold: str) -> dvp.SignedIntendoClaim:
    keys = tuple(check_verify_key(key, "verifier key") for key in verifiers)
    return dvp.SignedIntendoClaim(
        dvp.CONTEXT, statement.stag_id, digest("intendo", codec.encode(statement)), check_verify_key(signer, "signer key"),
        statement.participant if anonymous else b"", keys, claimed_threshold,
    )


def prove_intendo(
    identity: SigningIdentity, statement: IntendoStatement, verifiers: Sequence[VerifierCard], *, anonymous: bool,
    claimed_threshold: str = "",
) -> IntendoProof:
    """The signer's proof, for the verifiers whose cards it holds, that it signed the intendo of
    `statement` (an anonymous stag's statement names its key image, which the proof ties to
    the signer)."""
    if not anonymous and statement.participant != identity.verify_key:
        raise InvalidInput("this intendo was signed by another key")
    keys = [card.check() for card in verifiers]
    claim = _claim(statement, identity.verify_key, keys, anonymous, claimed_threshold)
    return IntendoProof(statement, claim, tuple(verifiers), dvp.prove(claim, Scalar.from_signing_seed(identity.seed)))


def check_intendo_proof(proof: IntendoProof, verifier: bytes) -> None:
    """Raise unless `verifier` is designated and the proof verifies for the statement it carries."""
    claim, statement = proof.claim, proof.statement
    if verifier not in claim.verifiers:
        raise InvalidInput("this proof is not designated to you: it convinces only its named verifiers")
    if tuple(card.key for card in proof.cards) != claim.verifiers:
        raise InvalidInput("the proof's verifier cards are not its designated verifiers")
    for card in proof.cards:  # each verifier's secret is known to someone: the proof could be forged
        card.check()
    if claim.intendo_id != digest("intendo", codec.encode(statement)) or claim.stag_id != statement.stag_id:
        raise InvalidInput("the proof's statement is not the intendo it claims")
    if statement.participant != (claim.key_image or claim.signer):
        raise InvalidInput("the intendo's statement names someone else than the claimed signer (or key image)")
    dvp.verify(claim, proof.proof)


def forge_intendo_proof(
    verifiers: Sequence[SigningIdentity], statement: IntendoStatement, signer: bytes, *, anonymous: bool,
    claimed_threshold: str = "", designated: Sequence[bytes] = (),
) -> IntendoProof:
    """A proof that `signer` signed the intendo, made by the designated verifiers themselves
    (every one of them; `designated` fixes their order, default the identities' own)."""
    if not anonymous and signer != statement.participant:
        raise InvalidInput("an ordinary intendo's statement names its signer: only an anonymous one can be claimed for someone else")
    keys = tuple(designated) or tuple(identity.verify_key for identity in verifiers)
    by_key = {identity.verify_key: identity for identity in verifiers}
    if set(keys) != set(by_key):
        raise InvalidInput("forging takes the key of every designated verifier, and only theirs")
    claim = _claim(statement, signer, keys, anonymous, claimed_threshold)
    secrets = [Scalar.from_signing_seed(by_key[key].seed) for key in keys]
    cards = tuple(make_verifier_card(by_key[key]) for key in keys)
    return IntendoProof(statement, claim, cards, dvp.forge(claim, secrets))
