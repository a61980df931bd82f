"""The chain executor's settlement contract on an embedded EVM (py-evm through web3.py).

The committee is three keyholders (t = 2) whose attestation keys the contract registers; hunts
are built by hand and attested with those keys (or forged). The oracle is a dict of balances
kept beside the contract, and the contract's own books: what was deposited is what its accounts
hold plus what was released, and exactly the value it owns. Every refusal is checked to change
nothing.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
import vyper

from stagpack.accounts import Account, Transfer, TransferKind
from stagpack.attestation import ChainKey, account_key
from stagpack.committee import CommitteeInfo, KeyholderSignature
from stagpack.edge.aggregator_service import open_executor
from stagpack.edge.chain import REVERTED, ChainLedger
from stagpack.edge.config import AggregatorConfig
from stagpack.edge.ledger import SqliteLedger
from stagpack.encoding import StagKind
from stagpack.envelope import IntendoEnvelope
from stagpack.errors import AlreadyExists, InsufficientFunds, IntegrityFailure, InvalidInput
from stagpack.identity import SigningIdentity
from stagpack.log import HuntCertificate, HuntOutcome
from stagpack.stag import StagSpec, now_millis

KEYS = [ChainKey.derive(os.urandom(32)) for _ in range(3)]
STRANGER = ChainKey.derive(os.urandom(32))
COMMITTEE = CommitteeInfo(
    committee_id=os.urandom(32), parties=3, threshold=2, fault_bound=1, noise_test=True,
    verify_keys=tuple(SigningIdentity().verify_key for _ in KEYS), aggregator_key=SigningIdentity().verify_key,
    coordinator_key=SigningIdentity().verify_key, chain_addresses=tuple(key.address for key in KEYS),
)

HOOKS = """
# pragma version ~=0.4.3
calls: public(uint256)
last_total: public(uint256)
fail: public(bool)

@deploy
def __init__(_fail: bool):
    self.fail = _fail

@external
def on_hunt(outcome: bytes32, stag: bytes32, epoch: uint256, beneficiary: bytes32, total: uint256):
    assert not self.fail, "the hook refuses"
    self.calls += 1
    self.last_total = total
"""


def stag(trigger: StagSpec | None = None, hook: bytes = b"") -> StagSpec:
    return StagSpec.new(
        committee=COMMITTEE.committee_id, kind=StagKind.CAPITAL, levels=100, epoch_millis=1000,
        beneficiary=Account(SigningIdentity().verify_key, "fund"), trigger=b"" if trigger is None else trigger.stag_id, hook=hook,
    )


def hunt(
    spec: StagSpec, members: list[tuple[SigningIdentity, int]], cause: HuntCertificate | None = None,
    signers: tuple[ChainKey, ...] = (KEYS[0], KEYS[1]), indices: tuple[int, ...] = (1, 2),
) -> HuntCertificate:
    """A first hunt of `spec`, attested by `signers` (as keyholders `indices`)."""
    envelopes = tuple(IntendoEnvelope.sign(person, spec.stag_id, os.urandom(32), weight, now_millis() + 60_000, "main") for person, weight in members)
    outcome = HuntOutcome(
        spec.stag_id, 1, 7, os.urandom(32), sum(w for _, w in members), 0, envelopes, b"" if cause is None else cause.outcome.digest()
    )
    digest = outcome.chain_facts(spec).digest(COMMITTEE.committee_id)
    return HuntCertificate(outcome, (), tuple(KeyholderSignature(i, key.sign(digest)) for i, key in zip(indices, signers)))


@pytest.fixture
def chain() -> ChainLedger:
    return ChainLedger.embedded(COMMITTEE)


def funded(chain: ChainLedger, count: int, amount: int = 10) -> list[SigningIdentity]:
    people = [SigningIdentity() for _ in range(count)]
    for index, person in enumerate(people):
        chain.deposit(Account(person.verify_key, "main"), amount, chain.web3.eth.accounts[1 + index % 5])
    return people


def books(chain: ChainLedger, accounts: list[Account]) -> list[int]:
    return [chain.balance(account) for account in accounts]


def test_a_bundle_pays_every_member_to_its_beneficiary_in_one_transaction(chain: ChainLedger) -> None:
    root, dependent = stag(), None
    dependent = stag(trigger=root)
    alice, bob, carol = funded(chain, 3)
    first = hunt(root, [(alice, 4)])
    second = hunt(dependent, [(bob, 3), (carol, 5)], cause=first)
    block = chain.web3.eth.block_number
    assert chain.execute_bundle([(root, first), (dependent, second)]) is True
    assert chain.web3.eth.block_number == block + 1, "one transaction"
    assert books(chain, [Account(p.verify_key, "main") for p in (alice, bob, carol)]) == [6, 7, 5]
    assert (chain.balance(root.beneficiary), chain.balance(dependent.beneficiary)) == (4, 8)  # type: ignore[arg-type]
    assert chain.bundles()[-1] == ((root.stag_id, 1), (dependent.stag_id, 1))
    assert chain.executed(first.outcome.digest()) and chain.executed(second.outcome.digest())
    assert chain.execute_bundle([(root, first), (dependent, second)]) is False  # a retry changes nothing
    assert chain.totals().conserved and chain.last_gas > 0


def _refused(chain: ChainLedger, bundle: list[tuple[StagSpec, HuntCertificate]], reason: str) -> None:
    block, totals = chain.web3.eth.block_number, chain.totals()
    with pytest.raises(IntegrityFailure, match=reason):
        chain.execute_bundle(bundle)
    assert chain.web3.eth.block_number == block and chain.totals() == totals
    assert not any(chain.executed(certificate.outcome.digest()) for _, certificate in bundle)


def test_forged_and_short_attestations_are_refused(chain: ChainLedger) -> None:
    spec = stag()
    (alice,) = funded(chain, 1)
    _refused(chain, [(spec, hunt(spec, [(alice, 2)], signers=(KEYS[0],), indices=(1,)))], "fewer than t")
    _refused(chain, [(spec, hunt(spec, [(alice, 2)], signers=(KEYS[0], STRANGER)))], "outside the committee")
    _refused(chain, [(spec, hunt(spec, [(alice, 2)], signers=(KEYS[1], KEYS[1]), indices=(2, 2)))], "distinct")
    good = hunt(spec, [(alice, 2)])
    other = stag()  # the facts signed for one stag, presented as another's: the digest changes, the signers do not recover
    _refused(chain, [(other, HuntCertificate(
        HuntOutcome(other.stag_id, 1, 7, good.outcome.head, 2, 0, good.outcome.members), (), good.attestations))], "outside the committee")
    more = hunt(spec, [(alice, 2)])  # the same attestation, a larger amount presented
    tampered = HuntOutcome(spec.stag_id, 1, 7, more.outcome.head, 3, 0, (IntendoEnvelope.sign(alice, spec.stag_id, os.urandom(32), 3, now_millis() + 60_000, "main"),))
    _refused(chain, [(spec, HuntCertificate(tampered, (), more.attestations))], "outside the committee")
    assert chain.execute(spec, good) and not chain.execute(spec, good)
    with pytest.raises(REVERTED, match="already executed"):  # the contract itself refuses a replay
        chain.contract.functions.execute([chain._hunt(spec, good)]).call({"from": chain.operator})


def test_a_bundle_whose_dependent_names_another_trigger_is_refused(chain: ChainLedger) -> None:
    root, stray = stag(), stag()
    dependent, leaf = stag(trigger=root), None
    leaf = stag(trigger=dependent)
    alice, bob, carol = funded(chain, 3)
    first = hunt(root, [(alice, 2)])
    elsewhere = hunt(stray, [(carol, 1)])
    _refused(chain, [(root, first), (dependent, hunt(dependent, [(bob, 3)], cause=elsewhere))], "no earlier hunt of the bundle")
    _refused(chain, [(root, first), (leaf, hunt(leaf, [(bob, 3)], cause=first))], "not its trigger")
    _refused(chain, [(dependent, hunt(dependent, [(bob, 3)], cause=first))], "has not executed")
    _refused(chain, [(root, first), (dependent, hunt(dependent, [(bob, 11)], cause=first))], "cannot pay")


def test_a_hook_runs_in_the_same_transaction_and_its_revert_reverts_the_bundle(chain: ChainLedger) -> None:
    output = vyper.compile_code(HOOKS, output_formats=["abi", "bytecode"])
    factory = chain.web3.eth.contract(abi=output["abi"], bytecode=output["bytecode"])
    hooks = []
    for fail in (False, True):
        receipt = chain.web3.eth.wait_for_transaction_receipt(factory.constructor(fail).transact({"from": chain.operator}))
        hooks.append(chain.web3.eth.contract(address=receipt["contractAddress"], abi=output["abi"]))
    recording, refusing = hooks
    root = stag()
    dependent = stag(trigger=root, hook=bytes.fromhex(refusing.address[2:]))
    alice, bob = funded(chain, 2)
    first = hunt(root, [(alice, 2)])
    _refused(chain, [(root, first), (dependent, hunt(dependent, [(bob, 3)], cause=first))], "the hook refuses")
    assert books(chain, [Account(alice.verify_key, "main"), Account(bob.verify_key, "main")]) == [10, 10]
    listened = stag(trigger=root, hook=bytes.fromhex(recording.address[2:]))
    assert chain.execute_bundle([(root, first), (listened, hunt(listened, [(bob, 3)], cause=first))])
    assert (recording.functions.calls().call(), recording.functions.last_total().call()) == (1, 3)


def test_releases_are_relayed_once_to_the_depositor_and_never_below_what_is_held(chain: ChainLedger) -> None:
    (alice,) = funded(chain, 1)
    account = Account(alice.verify_key, "main")
    payer = chain.web3.eth.accounts[1]
    before = chain.web3.eth.get_balance(payer)
    release = Transfer.sign(alice, COMMITTEE.committee_id, TransferKind.RELEASE, "main", 4, now_millis() + 60_000)
    with pytest.raises(InsufficientFunds):
        chain.transfer(release, 7, now_millis())  # 7 of 10 held
    assert chain.transfer(release, 6, now_millis()) == 6
    assert chain.web3.eth.get_balance(payer) == before + 4
    with pytest.raises(AlreadyExists):
        chain.transfer(release, 0, now_millis())
    with pytest.raises(REVERTED, match="only the operator"):
        chain.contract.functions.release(account_key(account.owner, account.tag), 1, os.urandom(32)).transact({"from": payer})
    deposit = Transfer.sign(alice, COMMITTEE.committee_id, TransferKind.DEPOSIT, "main", 4, now_millis() + 60_000)
    with pytest.raises(InvalidInput, match="payment"):
        chain.transfer(deposit, 0, now_millis())
    assert chain.balance(account) == 6 and chain.totals().conserved


def test_refund_pools_and_fees_are_refused_at_creation(chain: ChainLedger) -> None:
    from stagpack.terms import FeeTerms

    fees = FeeTerms(1, 0, Account(SigningIdentity().verify_key, "fees"), Account(SigningIdentity().verify_key, "fees"), 50)
    spec = StagSpec.new(committee=COMMITTEE.committee_id, kind=StagKind.CAPITAL, levels=10, beneficiary=Account(SigningIdentity().verify_key, "x"), fees=fees)
    with pytest.raises(InvalidInput, match="refund pools or fees"):
        chain.check_spec(spec)


def test_the_service_configuration_selects_the_executor_and_connect_checks_the_committee(chain: ChainLedger, tmp_path: Path) -> None:
    """`executor = "chain"` needs the node, the contract and the operator; `sqlite` (the default)
    opens the ledger; `ChainLedger.connect` — how the service reaches a node — refuses a contract
    deployed for another committee and settles through one deployed for this."""
    config = AggregatorConfig(executor="chain", chain_rpc_url="http://127.0.0.1:8545", chain_contract=chain.contract.address,
                              chain_operator=chain.operator)
    for missing in ("chain_rpc_url", "chain_contract", "chain_operator"):
        with pytest.raises(InvalidInput, match=missing):
            open_executor(dataclasses.replace(config, **{missing: ""}), tmp_path, COMMITTEE)
    with pytest.raises(InvalidInput, match="sqlite or chain"):
        open_executor(dataclasses.replace(config, executor="ledger"), tmp_path, COMMITTEE)
    assert isinstance(open_executor(AggregatorConfig(), tmp_path, COMMITTEE), SqliteLedger)
    with pytest.raises(InvalidInput, match="another committee"):
        ChainLedger.connect(chain.web3, chain.contract.address, chain.operator, dataclasses.replace(COMMITTEE, committee_id=os.urandom(32)))
    connected = ChainLedger.connect(chain.web3, chain.contract.address, chain.operator, COMMITTEE)
    spec = stag()
    (alice,) = funded(chain, 1)
    assert connected.execute(spec, hunt(spec, [(alice, 4)])) and chain.balance(Account(alice.verify_key, "main")) == 6
