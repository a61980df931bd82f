# pragma version ~=0.4.3
"""
@title stagpack settlement escrow
@notice Holds capital in escrow per account (keccak256(abi_encode(owner, tag))) and pays it out
        only on a stagpack committee's attestation: a bundle of hunts, each signed by at least t
        keyholders with the secp256k1 keys registered at the committee's key ceremony, executes
        in one transaction — every member's amount to its stag's beneficiary, each stag's hook
        called — or reverts as a whole. Each hunt executes once (replays revert); a hunt that
        fired on another (a composed hunt) executes only after it or in the same bundle.
        Amounts are in wei. Deposits are payments to `deposit`; releases are relayed by the
        operator (who checks the owner's Ed25519 signature and what its live intendos hold) and
        go only to the address that made the account's first deposit.
"""

MAX_KEYHOLDERS: constant(uint256) = 64
MAX_MEMBERS: constant(uint256) = 128
MAX_HUNTS: constant(uint256) = 16  # a trigger tree holds at most 16 stags (stagpack.stag.MAX_BUNDLE)
MAX_SIGNATURES: constant(uint256) = 16  # attestations per hunt: committees with t <= 16 settle on chain
DOMAIN: constant(bytes32) = keccak256("stagpack.HuntAttestation.v1")
HALF_ORDER: constant(uint256) = 57896044618658097711785492504343953926418782139537452191302581570759080747168  # secp256k1 n / 2: a larger s is malleable


struct Member:
    account: bytes32
    amount: uint256


struct Hunt:
    outcome: bytes32       # the hunt's outcome digest: what it is known by
    stag: bytes32
    epoch: uint256
    cause: bytes32         # the outcome of the hunt it fired on (zero: none)
    trigger: bytes32       # the stag's trigger (zero: none)
    beneficiary: bytes32   # the account its members pay (zero: a count stag)
    members: DynArray[Member, MAX_MEMBERS]
    hook: address          # called with the hunt once the bundle is paid (zero: none)
    signatures: DynArray[Bytes[65], MAX_SIGNATURES]  # r ‖ s ‖ v, signers in ascending address order


interface Hook:
    def on_hunt(outcome: bytes32, stag: bytes32, epoch: uint256, beneficiary: bytes32, total: uint256): nonpayable


event Deposited:
    account: indexed(bytes32)
    payer: address
    amount: uint256

event Released:
    account: indexed(bytes32)
    to: address
    amount: uint256
    nonce: bytes32

event HuntExecuted:
    outcome: indexed(bytes32)
    root: indexed(bytes32)
    stag: bytes32
    epoch: uint256
    total: uint256


committee: public(immutable(bytes32))
threshold: public(immutable(uint256))
operator: public(immutable(address))
is_keyholder: public(HashMap[address, bool])
balances: public(HashMap[bytes32, uint256])
payout: public(HashMap[bytes32, address])
executed: public(HashMap[bytes32, bytes32])  # outcome -> its stag (zero: not executed)
released_nonces: public(HashMap[bytes32, bool])
total_held: public(uint256)


@deploy
def __init__(_committee: bytes32, _keyholders: DynArray[address, MAX_KEYHOLDERS], _threshold: uint256, _operator: address):
    assert _threshold >= 1 and _threshold <= len(_keyholders) and _threshold <= MAX_SIGNATURES, "threshold out of range"
    committee = _committee
    threshold = _threshold
    operator = _operator
    for keyholder: address in _keyholders:
        assert keyholder != empty(address), "a keyholder without an address"
        assert not self.is_keyholder[keyholder], "a keyholder listed twice"
        self.is_keyholder[keyholder] = True


@external
@payable
def deposit(account: bytes32):
    assert msg.value > 0, "nothing deposited"
    if self.payout[account] == empty(address):
        self.payout[account] = msg.sender
    self.balances[account] += msg.value
    self.total_held += msg.value
    log Deposited(account=account, payer=msg.sender, amount=msg.value)


@external
def release(account: bytes32, amount: uint256, nonce: bytes32):
    assert msg.sender == operator, "only the operator relays releases"
    assert not self.released_nonces[nonce], "this release was already applied"
    assert amount > 0 and self.balances[account] >= amount, "the account does not hold the amount"
    self.released_nonces[nonce] = True
    self.balances[account] -= amount
    self.total_held -= amount
    send(self.payout[account], amount)
    log Released(account=account, to=self.payout[account], amount=amount, nonce=nonce)


@internal
@view
def _check_attestation(digest: bytes32, signatures: DynArray[Bytes[65], MAX_SIGNATURES]):
    last: uint256 = 0
    for signature: Bytes[65] in signatures:
        r: uint256 = convert(slice(signature, 0, 32), uint256)
        s: uint256 = convert(slice(signature, 32, 32), uint256)
        v: uint256 = convert(slice(signature, 64, 1), uint256)
        assert s <= HALF_ORDER, "a malleable signature"
        signer: address = ecrecover(digest, v, r, s)
        assert self.is_keyholder[signer], "a signer outside the committee"
        assert convert(signer, uint256) > last, "signers must be distinct, in ascending order"
        last = convert(signer, uint256)
    assert len(signatures) >= threshold, "fewer than t keyholder signatures"


@external
def execute(hunts: DynArray[Hunt, MAX_HUNTS]):
    assert len(hunts) > 0, "an empty bundle"
    root: bytes32 = hunts[0].outcome
    totals: DynArray[uint256, MAX_HUNTS] = []
    for position: uint256 in range(MAX_HUNTS):
        if position >= len(hunts):
            break
        outcome: bytes32 = hunts[position].outcome
        cause: bytes32 = hunts[position].cause
        trigger: bytes32 = hunts[position].trigger
        digest: bytes32 = keccak256(abi_encode(
            DOMAIN, committee, outcome, hunts[position].stag, hunts[position].epoch, cause, trigger,
            hunts[position].beneficiary, hunts[position].members, hunts[position].hook,
        ))
        self._check_attestation(digest, hunts[position].signatures)
        assert self.executed[outcome] == empty(bytes32), "the hunt was already executed"
        if position == 0:
            if cause != empty(bytes32):
                assert self.executed[cause] == trigger, "the hunt it fired on has not executed"
        else:
            found: bool = False
            for earlier: uint256 in range(MAX_HUNTS):
                if earlier >= position:
                    break
                if hunts[earlier].outcome == cause:
                    assert hunts[earlier].stag == trigger, "the hunt names a cause that is not its trigger's hunt"
                    found = True
            assert found, "a hunt of the bundle names no earlier hunt of the bundle as its cause"
        self.executed[outcome] = hunts[position].stag
        total: uint256 = 0
        for member: Member in hunts[position].members:
            assert self.balances[member.account] >= member.amount, "an account cannot pay"
            self.balances[member.account] -= member.amount
            total += member.amount
        self.balances[hunts[position].beneficiary] += total
        totals.append(total)
        log HuntExecuted(outcome=outcome, root=root, stag=hunts[position].stag, epoch=hunts[position].epoch, total=total)
    for position: uint256 in range(MAX_HUNTS):
        if position >= len(hunts):
            break
        if hunts[position].hook != empty(address):
            extcall Hook(hunts[position].hook).on_hunt(
                hunts[position].outcome, hunts[position].stag, hunts[position].epoch, hunts[position].beneficiary, totals[position]
            )
