"""The chain executor: settlement on an EVM chain (DESIGN.md §10.1–§10.2), through web3.py.

`ChainLedger` implements `stagpack.aggregator.ledger.Executor` over the Vyper contract
`edge/contracts/escrow.vy`, compiled from source with the `vyper` package when it is deployed.
The contract holds the escrow per account and pays a bundle of hunts out in one transaction
only on the committee's attestation — t keyholders' secp256k1 signatures of each hunt's chain
facts (`stagpack.attestation`) from the addresses the key ceremony registered — calls each
stag's hook contract in the same transaction, and refuses a replayed or forged attestation. The
operator's account sends the transactions and relays releases.

`ChainLedger.embedded` runs the contract on an EVM inside this process (py-evm through web3.py's
EthereumTesterProvider: no network, nothing durable — tests, the demo and the benchmarks);
`ChainLedger.connect` points it at a real node (docs/protocol.md §6c says how).

What the chain executor does not do (yet): refund pools and fees (a stag with either is refused
at creation, with that reason), and deposits through the aggregator: a deposit is a payment to
the contract's `deposit(account key)`, from any EVM account (`deposit` here sends one).
"""

from __future__ import annotations

import contextlib
import functools
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from eth_hash.auto import keccak


@contextlib.contextmanager
def recursion_limit_kept() -> Iterator[None]:
    """web3.py (through py_ecc) and py-evm raise the interpreter's recursion limit to 100,000
    when they are imported. With it, a deeply nested input — JSON parameters, say — overflows
    the C stack and kills the process instead of raising RecursionError (a clear error); so the
    limit is put back after every import of theirs. The EVM calls stagpack makes are a few
    frames deep."""
    limit = sys.getrecursionlimit()
    try:
        yield
    finally:
        sys.setrecursionlimit(limit)


with recursion_limit_kept():
    from eth_tester.exceptions import TransactionFailed
    from web3.exceptions import ContractLogicError

from stagpack.accounts import Account, Transfer, TransferKind
from stagpack.aggregator.ledger import Pool, bundle_digests
from stagpack.attestation import account_key, recover
from stagpack.committee import CommitteeInfo
from stagpack.envelope import IntendoEnvelope
from stagpack.errors import AlreadyExists, InsufficientFunds, IntegrityFailure, InvalidInput
from stagpack.log import HuntCertificate, SettlementCertificate
from stagpack.stag import StagSpec

CONTRACT = Path(__file__).parent / "contracts" / "escrow.vy"
GAS_LIMIT = 15_000_000
REVERTED = (ContractLogicError, TransactionFailed)  # a node's revert, and the embedded EVM's


@functools.lru_cache(maxsize=1)
def compiled_escrow() -> tuple[list[dict[str, Any]], str]:
    """The escrow contract's ABI and deployment bytecode, compiled from its Vyper source."""
    import vyper

    output = vyper.compile_code(CONTRACT.read_text(), output_formats=["abi", "bytecode"])
    return output["abi"], output["bytecode"]


@dataclass(frozen=True)
class ChainTotals:
    """What was deposited into and released from the contract, what its accounts hold, and
    whether that is exactly the value the contract owns."""

    deposited: int
    released: int
    held: int
    contract_balance: int
    pooled: int = 0  # refund pools: none on the chain executor

    @property
    def conserved(self) -> bool:
        return self.deposited == self.held + self.released and self.held == self.contract_balance


class ChainLedger:
    """The settlement contract of one committee, driven by the operator's account."""

    def __init__(self, web3: Any, address: str, operator: str, committee: CommitteeInfo) -> None:
        abi, _ = compiled_escrow()
        self.web3 = web3
        self.contract = web3.eth.contract(address=address, abi=abi)
        self.operator = operator
        self.committee = committee
        self.last_gas = 0  # gas used by the last bundle executed

    # -- deployment ---------------------------------------------------------------------------

    @classmethod
    def deploy(cls, web3: Any, committee: CommitteeInfo, operator: str) -> ChainLedger:
        """Deploy a contract for `committee` (its keyholders' registered addresses, t) whose
        releases `operator` relays."""
        abi, bytecode = compiled_escrow()
        factory = web3.eth.contract(abi=abi, bytecode=bytecode)
        addresses = [web3.to_checksum_address(address) for address in committee.chain_addresses]
        receipt = _mined(web3, factory.constructor(committee.committee_id, addresses, committee.threshold, operator).transact(
            {"from": operator, "gas": GAS_LIMIT}
        ))
        return cls(web3, receipt["contractAddress"], operator, committee)

    @classmethod
    def embedded(cls, committee: CommitteeInfo) -> ChainLedger:
        """A fresh contract on an EVM inside this process (py-evm); its first test account is
        the operator."""
        with recursion_limit_kept():
            from web3 import EthereumTesterProvider, Web3

            web3 = Web3(EthereumTesterProvider())  # imports py-evm
        return cls.deploy(web3, committee, web3.eth.accounts[0])

    @classmethod
    def connect(cls, web3: Any, address: str, operator: str, committee: CommitteeInfo) -> ChainLedger:
        """The committee's contract at `address` on the node `web3` talks to, sending as
        `operator`, an account the node unlocks (or a signing middleware provides)."""
        ledger = cls(web3, web3.to_checksum_address(address), web3.to_checksum_address(operator), committee)
        if ledger.contract.functions.committee().call() != committee.committee_id:
            raise InvalidInput(f"the contract at {address} settles for another committee")
        return ledger

    @classmethod
    def node(cls, url: str) -> Any:
        """A web3.py client of the node at `url` (HTTP JSON-RPC)."""
        with recursion_limit_kept():
            from web3 import HTTPProvider, Web3

        return Web3(HTTPProvider(url))

    # -- the executor -------------------------------------------------------------------------

    def check_spec(self, spec: StagSpec) -> None:
        if spec.refund is not None or spec.fees is not None:
            raise InvalidInput("the chain executor does not settle refund pools or fees: create the stag without them")

    def execute(self, spec: StagSpec, certificate: HuntCertificate) -> bool:
        return self.execute_bundle([(spec, certificate)])

    def execute_bundle(self, hunts: Sequence[tuple[StagSpec, HuntCertificate]]) -> bool:
        digests = bundle_digests(hunts)
        done = [self.executed(digest) for digest in digests]
        if all(done):
            return False  # applied before (a retry after a crash)
        if any(done):
            raise IntegrityFailure("part of this bundle was already executed, alone or in another bundle")
        call = self.contract.functions.execute([self._hunt(spec, certificate) for spec, certificate in hunts])
        try:
            call.call({"from": self.operator, "gas": GAS_LIMIT})  # refused without a transaction: the reason, nothing changed
        except REVERTED as error:
            raise IntegrityFailure(f"the settlement contract refused the bundle: {_reason(error)}") from None
        receipt = _mined(self.web3, call.transact({"from": self.operator, "gas": GAS_LIMIT}))
        self.last_gas = int(receipt["gasUsed"])
        return True

    def _hunt(self, spec: StagSpec, certificate: HuntCertificate) -> tuple[object, ...]:
        """The contract's `Hunt` struct: the attested facts, then the attestations ordered by
        signer address (the contract takes each signer once, in ascending order)."""
        facts = certificate.outcome.chain_facts(spec)
        digest = facts.digest(self.committee.committee_id)
        signed = sorted((recover(digest, a.signature), a.signature) for a in certificate.attestations)
        return (*facts.values(), [signature for _, signature in signed])

    def executed(self, outcome_digest: bytes) -> bool:
        return bool(self.contract.functions.executed(outcome_digest).call() != bytes(32))

    def balance(self, account: Account) -> int:
        return int(self.contract.functions.balances(account_key(account.owner, account.tag)).call())

    def transfer(self, transfer: Transfer, held: int, at_millis: int) -> int:
        statement = transfer.statement
        if statement.kind is TransferKind.DEPOSIT:
            raise InvalidInput(
                "on the chain executor a deposit is a payment: send it to the settlement contract's "
                f"deposit({account_key(statement.account.owner, statement.account.tag).hex()}) from your EVM account"
            )
        key = account_key(statement.account.owner, statement.account.tag)
        nonce = keccak(statement.account.owner + statement.nonce)
        if self.contract.functions.released_nonces(nonce).call():
            raise AlreadyExists("this release was already applied (replay)")
        balance = self.balance(statement.account)
        if balance - statement.amount < held:
            raise InsufficientFunds(
                f"account {statement.account.describe()} holds {balance}, of which {held} backs a live intendo: "
                f"at most {max(balance - held, 0)} may be released, not {statement.amount}"
            )
        _mined(self.web3, self.contract.functions.release(key, statement.amount, nonce).transact({"from": self.operator}))
        return self.balance(statement.account)

    def fund_pool(self, spec: StagSpec, held: int, at_millis: int) -> Pool:
        raise InvalidInput("the chain executor does not hold refund pools")

    def settle(self, spec: StagSpec, certificate: SettlementCertificate) -> bool:
        raise InvalidInput("the chain executor does not settle refunds")

    def charge_submission(self, spec: StagSpec, envelope: IntendoEnvelope, at_millis: int) -> bool:
        return False  # a stag with fees is refused at creation

    def pool(self, stag_id: bytes) -> Pool | None:
        return None

    def open_pools(self) -> list[bytes]:
        return []

    def return_pool(self, stag_id: bytes) -> int:
        return 0

    # -- outside the executor interface -------------------------------------------------------

    def deposit(self, account: Account, amount: int, payer: str) -> None:
        """Pay `amount` (wei) into `account` from the EVM account `payer`."""
        _mined(self.web3, self.contract.functions.deposit(account_key(account.owner, account.tag)).transact({"from": payer, "value": amount}))

    def bundles(self) -> list[tuple[tuple[bytes, int], ...]]:
        """Every bundle executed, in order: the (stag id, epoch) of each of its hunts, root first."""
        grouped: dict[bytes, list[tuple[bytes, int]]] = {}
        for event in self.contract.events.HuntExecuted.get_logs(from_block=0):
            grouped.setdefault(bytes(event["args"]["root"]), []).append((bytes(event["args"]["stag"]), int(event["args"]["epoch"])))
        return [tuple(hunts) for hunts in grouped.values()]

    def totals(self) -> ChainTotals:
        deposited = sum(int(e["args"]["amount"]) for e in self.contract.events.Deposited.get_logs(from_block=0))
        released = sum(int(e["args"]["amount"]) for e in self.contract.events.Released.get_logs(from_block=0))
        return ChainTotals(
            deposited, released, int(self.contract.functions.total_held().call()), int(self.web3.eth.get_balance(self.contract.address))
        )

    def close(self) -> None:
        pass


def _mined(web3: Any, transaction: bytes) -> Any:
    receipt = web3.eth.wait_for_transaction_receipt(transaction)
    if receipt["status"] != 1:
        raise IntegrityFailure("the transaction reverted")
    return receipt


def _reason(error: Exception) -> str:
    message = getattr(error, "message", None) or str(error)
    return str(message).removeprefix("execution reverted: ")
