"""`stagpack demo --compose`: the seed's composition example, settled on an embedded EVM.

Liquidity providers sign "I move my LP position to the new venue if at least N others do" (a
count stag); investors sign "I invest $a in the venue if the migration completes and the total
reaches $C" (a capital stag whose trigger is the migration stag). The committee's key ceremony
registers each keyholder's secp256k1 address in a settlement contract (Vyper, on py-evm in this
process), which holds the investors' escrow. When the migration fires, the investors' stag is
armed and checked at once; it fires too, and both hunts execute as one bundle in one EVM
transaction: the investors' capital goes to the venue's treasury, and the venue contract's hook
records the migration and the funding — or, had anything failed, nothing at all. Balances are
printed before and after, and every outcome is checked against the plaintext reference.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from stagpack.accounts import Account
from stagpack.app.inprocess import InProcessDeployment
from stagpack.edge.chain import ChainLedger
from stagpack.encoding import StagKind, Threshold
from stagpack.identity import SigningIdentity
from stagpack.participant.sdk import prepare_intendo
from stagpack.solver import PackSolver
from stagpack.solver.market import MarketReference
from stagpack.stag import ManualClock, StagSpec

EPOCH_MILLIS = 10_000

VENUE = """
# pragma version ~=0.4.3
# The new venue: its hook is called in the settlement transaction of each hunt it is named by.
migrated: public(uint256)   # LP positions moved here (members of the migration's hunt)
funded: public(uint256)     # capital the investors' hunt paid to the venue's treasury
hunts: public(uint256)

@external
def on_hunt(outcome: bytes32, stag: bytes32, epoch: uint256, beneficiary: bytes32, total: uint256):
    self.hunts += 1
    if beneficiary == empty(bytes32):
        self.migrated += 1   # a count stag: the migration
    else:
        self.funded += total
"""


def _deploy_venue(chain: ChainLedger) -> Any:
    import vyper

    output = vyper.compile_code(VENUE, output_formats=["abi", "bytecode"])
    factory = chain.web3.eth.contract(abi=output["abi"], bytecode=output["bytecode"])
    receipt = chain.web3.eth.wait_for_transaction_receipt(factory.constructor().transact({"from": chain.operator}))
    return chain.web3.eth.contract(address=receipt["contractAddress"], abi=output["abi"])


def compose_scene(started: float, directory: Path | None = None) -> list[str]:
    """Run the scene; returns the mismatches with the reference (none when all agrees)."""
    print("\nComposition: the investors' stag is triggered by the migration stag; both settle on an EVM in one transaction.")
    scratch = tempfile.TemporaryDirectory(prefix="stagpack-compose-") if directory is None else None
    where = Path(scratch.name) if scratch is not None else directory
    assert where is not None
    try:
        clock = ManualClock()
        deployment = InProcessDeployment.start(where, 3, 2, clock=clock, executor="chain")
        chain = deployment.ledger
        assert isinstance(chain, ChainLedger)
        aggregator = deployment.aggregator
        print(f"[{time.monotonic() - started:6.1f} s] a 2-of-3 committee; its settlement contract {chain.contract.address} "
              f"registers the keyholders' attestation keys {', '.join(a.hex()[:8] + '…' for a in aggregator.committee.chain_addresses)}")
        venue = _deploy_venue(chain)
        treasury = Account(SigningIdentity().verify_key, "treasury")
        venue_hook = bytes.fromhex(venue.address[2:])
        migration = StagSpec.new(
            committee=aggregator.committee.committee_id, kind=StagKind.COUNT, levels=8, epoch_millis=EPOCH_MILLIS,
            opens_at_millis=clock(), title="Move our LP positions to the new venue if 3 of us do", hook=venue_hook,
        )
        aggregator.create_stag(migration)
        investment = StagSpec.new(
            committee=aggregator.committee.committee_id, kind=StagKind.CAPITAL, levels=64, epoch_millis=EPOCH_MILLIS,
            opens_at_millis=clock(), title="Invest in the venue ($1M units) if the migration completes",
            beneficiary=treasury, trigger=migration.stag_id, hook=venue_hook,
        )
        aggregator.create_stag(investment)
        print(f"  migration stag {migration.stag_id.hex()[:12]}… (count); investors' stag {investment.stag_id.hex()[:12]}… "
              f"(capital, trigger: the migration); both call the venue contract {venue.address} when they execute")

        reference = MarketReference()
        reference.create_stag(migration.stag_id, 8, Account(SigningIdentity().verify_key, "none"), capital=False)
        reference.create_stag(investment.stag_id, 64, treasury, trigger=migration.stag_id)
        providers = [("lena", 2), ("omar", 2), ("pia", 2)]  # each: "if at least 2 others do"
        investors = [("quinn", 10, 25), ("rosa", 8, 25), ("sam", 7, 20)]  # $M committed, if the total reaches $M
        context = deployment.context
        wallets = chain.web3.eth.accounts[1:]
        people: dict[str, SigningIdentity] = {}
        for index, (name, amount, total) in enumerate(investors):
            people[name] = SigningIdentity()
            account = Account(people[name].verify_key, "fund")
            chain.deposit(account, amount, wallets[index])  # a payment into the contract's escrow
            reference.deposit(account, amount)
            prepared = prepare_intendo(context, context.joint_key, investment, people[name],
                                       Threshold.capital(amount, total, levels=64), capital_tag="fund")
            aggregator.submit(prepared.envelope, prepared.ciphertext)
            reference.submit(investment.stag_id, prepared.intendo_id, account, total, amount)
            print(f"  {name:5} escrows {amount} on chain and commits it if the migration completes and the total reaches {total}")
        solver = PackSolver(8)
        for name, others in providers:
            people[name] = SigningIdentity()
            prepared = prepare_intendo(context, context.joint_key, migration, people[name], Threshold.count(others, levels=8))
            aggregator.submit(prepared.envelope, prepared.ciphertext)
            reference.submit(migration.stag_id, prepared.intendo_id, Account(people[name].verify_key, "lp"), others + 1, 1)
            solver.insert(prepared.intendo_id, others + 1, 1)
            print(f"  {name:5} moves their LP position if at least {others} others do")
        aggregator.run_due(investment.stag_id)  # validated; not checked: its trigger has not hunted
        status = aggregator.status(investment.stag_id)
        print(f"  the investors' stag holds {status.live_intendos} intendos, armed: {status.armed} "
              "(its hunts cannot fire before the migration's)")
        accounts = [Account(people[name].verify_key, "fund") for name, _, _ in investors]
        before = [chain.balance(account) for account in accounts] + [chain.balance(treasury)]
        print("  balances before: " + ", ".join(f"{name} {b}" for (name, _, _), b in zip(investors, before)) + f", treasury {before[-1]}")

        clock.advance(EPOCH_MILLIS)
        block = chain.web3.eth.block_number
        aggregator.run_due(migration.stag_id)
        reference.epoch(1)
        after = [chain.balance(account) for account in accounts] + [chain.balance(treasury)]
        bundles = [bundle for bundle in chain.bundles() if bundle[0][0] == migration.stag_id]
        print(f"[{time.monotonic() - started:6.1f} s] the migration fired; the investors' stag was armed and checked at once, and fired")
        print(f"  one bundle of {len(bundles[0]) if bundles else 0} hunts executed in {chain.web3.eth.block_number - block} "
              f"EVM transaction ({chain.last_gas:,} gas), attested by {aggregator.committee.threshold} keyholders' secp256k1 signatures")
        print("  balances after:  " + ", ".join(f"{name} {b}" for (name, _, _), b in zip(investors, after)) + f", treasury {after[-1]}")
        print(f"  the venue's hook, in the same transaction: {venue.functions.migrated().call()} migration, "
              f"{venue.functions.funded().call()} funded")
        mismatches = []
        if [b for b in bundles] != reference.bundles:
            mismatches.append(f"compose: the bundles {bundles} differ from the reference's {reference.bundles}")
        for (name, _, _), account in zip(investors, accounts):
            if chain.balance(account) != reference.balance(account):
                mismatches.append(f"compose: {name}'s balance differs from the reference")
        if chain.balance(treasury) != reference.balance(treasury) or not chain.totals().conserved:
            mismatches.append("compose: the treasury or the contract's books differ from the reference")
        hunt = solver.hunt()
        migrated = aggregator.hunts(migration.stag_id)
        if hunt is None or not migrated or migrated[0].outcome.member_ids != hunt.members:
            mismatches.append("compose: the migration's hunt differs from the plaintext solver")
        print("  — the plaintext reference agrees ✓" if not mismatches else f"  — {len(mismatches)} MISMATCHES with the reference")
        return mismatches
    finally:
        if scratch is not None:
            scratch.cleanup()
