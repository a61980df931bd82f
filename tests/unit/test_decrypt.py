"""Unit tests for stagpack.decrypt: quorum rules and families of quorums, fusion of complete
partial sets with the public lead term, the fact readers, and what happens when one partial
decryption is corrupted or crafted.

Fact readers are fed hand-built numpy vectors on a small slot layout; fusion and corruption use
the session committees (3-of-3 and 2-of-3, and a 3-of-5 built here) on real circuit outputs
whose plaintext facts are known from the plaintext solver.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pytest

from support.unit import coefficient_regions, crafted_partial, family_shares_for, random_mask, shares_for, word_at, with_word
from support.committees import shared_committee
from stagpack.decrypt import circuit
from stagpack.decrypt import (
    DecryptingParty,
    PartialShare,
    Quorum,
    family_members,
    quorum_family,
    reveal_confirmation,
    reveal_hunt_check,
    reveal_membership,
    reveal_validity,
)
from stagpack.decrypt.facts import read_confirmation, read_hunt_check, read_membership, read_validity
from stagpack.decrypt.threshold import fuse
from stagpack.encoding import SlotLayout, Threshold
from stagpack.committee import check_committee_shape, default_fault_bound
from stagpack.errors import CommitteeUnavailable, IntegrityFailure, InvalidInput, WrongPhase
from stagpack.fhe import Ciphertext, FheContext
from stagpack.solver import PackSolver

P = 65537
SMALL = SlotLayout(slot_count=64, plaintext_modulus=P)  # rows of 32 slots


# --- quorum rules ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "parties, threshold, members",
    [(1, 1, (1,)), (2, 2, (1, 2)), (3, 3, (1, 2, 3)), (3, 2, (1, 2)), (3, 2, (2, 3)), (3, 2, (1, 2, 3)), (5, 3, (1, 3, 5)), (5, 5, (1, 2, 3, 4, 5)), (7, 4, (2, 4, 6, 7))],
)
def test_valid_quorums(parties: int, threshold: int, members: tuple[int, ...]) -> None:
    quorum = Quorum(parties, threshold, members)
    assert quorum.members == members
    assert not hasattr(quorum, "lead")  # no partial carries c0: the lead term is public
    assert quorum.offline == tuple(sorted(set(range(1, parties + 1)) - set(members)))


@pytest.mark.parametrize(
    "parties, threshold, members",
    [
        (3, 0, (1, 2, 3)),  # threshold below 1
        (3, 4, (1, 2, 3)),  # threshold above n
        (4, 2, (1, 2)),  # t <= n/2
        (3, 1, (1,)),  # t <= n/2
        (2, 1, (1,)),
        (3, 2, (1,)),  # neither exactly t nor all n
        (5, 3, (1, 2, 3, 4)),
        (3, 3, (1, 2)),  # n-of-n needs everyone
        (3, 2, (2, 1)),  # not sorted
        (3, 2, (1, 1)),  # duplicate
        (3, 2, (0, 1)),  # outside 1..n
        (3, 2, (3, 4)),
    ],
)
def test_invalid_quorums(parties: int, threshold: int, members: tuple[int, ...]) -> None:
    with pytest.raises(InvalidInput):
        Quorum(parties, threshold, members)


def test_choose_takes_everyone_when_all_live_else_the_t_smallest() -> None:
    assert Quorum.choose(3, 2, {1, 2, 3}).members == (1, 2, 3)
    assert Quorum.choose(3, 3, frozenset({3, 1, 2})).members == (1, 2, 3)
    assert Quorum.choose(3, 2, {3, 1}).members == (1, 3)
    assert Quorum.choose(5, 3, {5, 2, 4, 3}).members == (2, 3, 4)
    assert Quorum.choose(7, 4, {7, 6, 5, 4, 3}).members == (3, 4, 5, 6)
    for parties, threshold, live in ((3, 2, {2}), (3, 2, set()), (3, 3, {1, 2}), (5, 3, {1, 5}), (7, 4, {1, 2, 3})):
        with pytest.raises(CommitteeUnavailable):
            Quorum.choose(parties, threshold, live)


def test_quorum_family_examples() -> None:
    def family(parties: int, threshold: int, live: set[int]) -> list[tuple[int, ...]]:
        return [quorum.members for quorum in quorum_family(parties, threshold, live)]

    # t = n: everyone, one quorum.
    assert family(1, 1, {1}) == [(1,)]
    assert family(3, 3, {3, 1, 2}) == [(1, 2, 3)]
    # Exactly t live: one quorum of them, which nothing can cross-check.
    assert family(3, 2, {1, 3}) == [(1, 3)]
    assert family(5, 3, {5, 2, 4}) == [(2, 4, 5)]
    # More than t live: quorums of t that each leave out one run of (live − t) keyholders, in
    # order (the last run wraps around), so that every live keyholder is left out once.
    assert family(3, 2, {1, 2, 3}) == [(2, 3), (1, 3), (1, 2)]
    assert family(5, 3, {1, 2, 3, 4, 5}) == [(3, 4, 5), (1, 2, 5), (2, 3, 4)]  # without 1-2, 3-4, 5-1
    assert family(5, 3, {1, 2, 4, 5}) == [(2, 4, 5), (1, 4, 5), (1, 2, 5), (1, 2, 4)]
    assert family(7, 4, set(range(1, 8))) == [(4, 5, 6, 7), (1, 2, 3, 7), (3, 4, 5, 6)]
    assert family(7, 4, {2, 3, 5, 6, 7}) == [(3, 5, 6, 7), (2, 5, 6, 7), (2, 3, 6, 7), (2, 3, 5, 7), (2, 3, 5, 6)]
    for parties, threshold, live in ((3, 3, {1, 2}), (3, 2, {2}), (3, 2, set()), (5, 3, {1, 5}), (7, 4, {1, 2, 3})):
        with pytest.raises(CommitteeUnavailable):
            quorum_family(parties, threshold, live)
    assert family_members(quorum_family(5, 3, {1, 2, 4, 5})) == (1, 2, 4, 5)
    assert family_members(quorum_family(5, 3, {2, 4, 5})) == (2, 4, 5)


@pytest.mark.parametrize("parties, threshold", [(1, 1), (2, 2), (3, 2), (3, 3), (4, 3), (5, 3), (5, 4), (7, 4), (7, 5)])
def test_every_family_lets_each_live_keyholder_be_checked_without_it(parties: int, threshold: int) -> None:
    """For every set of live keyholders that can decrypt: the family's quorums are valid and made
    of live keyholders only; when more than t are live, more than t take part and each of them
    is left out of at least one quorum (so a dishonest keyholder's shift shows as a
    disagreement); and the family is the one prescribed for the keyholders it names — which is
    what every keyholder checks before it decrypts."""
    everyone = range(1, parties + 1)
    for size in range(threshold, parties + 1):
        for live in map(set, combinations(everyone, size)):
            if threshold == parties and size < parties:
                continue
            family = quorum_family(parties, threshold, live)
            members = family_members(family)
            assert len(set(family)) == len(family) <= max(1, -(-len(live) // max(1, len(live) - threshold)))
            assert set(members) <= live
            assert quorum_family(parties, threshold, set(members)) == family
            for quorum in family:
                assert len(quorum.members) == (parties if threshold == parties else threshold)
            if len(live) > threshold:
                assert len(members) > threshold
                for keyholder in members:
                    assert any(keyholder not in quorum.members for quorum in family), (live, keyholder)
            else:
                assert len(family) == 1 and members == tuple(sorted(live))
        for live in map(set, combinations(everyone, threshold - 1)):
            with pytest.raises(CommitteeUnavailable):
                quorum_family(parties, threshold, live)


FAULT_SHAPES = [
    (parties, threshold, fault_bound)
    for parties, threshold in [(3, 2), (4, 3), (5, 3), (6, 4), (7, 4), (7, 5), (9, 5)]
    for fault_bound in (0, 1, 2, 3)
    if fault_bound <= parties - threshold
]


@pytest.mark.parametrize("parties, threshold, fault_bound", FAULT_SHAPES)
def test_with_fault_bound_f_every_f_keyholders_are_left_out_by_some_quorum(parties: int, threshold: int, fault_bound: int) -> None:
    """DESIGN.md §4: for every set of up to f of the keyholders taking part, the family holds a
    quorum disjoint from it (so up to f dishonest keyholders cannot shift every quorum); that
    needs t + f taking part, and fewer raise CommitteeUnavailable. Checked over every set of
    live keyholders and every set of up to f of them, by brute force."""
    everyone = range(1, parties + 1)
    for size in range(threshold + fault_bound, parties + 1):
        for live in map(frozenset, combinations(everyone, size)):
            family = quorum_family(parties, threshold, live, fault_bound)
            members = family_members(family)
            assert set(members) <= live and len(set(family)) == len(family)
            for quorum in family:
                Quorum(parties, threshold, quorum.members)  # a valid quorum
                assert set(quorum.members) <= live
            for count in range(0, fault_bound + 1):
                for suspects in combinations(sorted(live), count):
                    assert any(not set(suspects) & set(quorum.members) for quorum in family), (live, suspects)
            # What every keyholder checks: the family is the prescribed one for the keyholders it names.
            assert quorum_family(parties, threshold, frozenset(members), fault_bound) == family
    for size in range(max(0, threshold + fault_bound - 2), threshold + fault_bound):
        for live in map(frozenset, combinations(everyone, size)):
            with pytest.raises(CommitteeUnavailable):
                quorum_family(parties, threshold, live, fault_bound)


def test_fault_bound_one_gives_the_run_family_and_the_committee_shape_bounds_f() -> None:
    """f ≤ 1 keeps the cheap construction (runs of live − t left out, the last wrapping); with
    more than t + f live and f = 0 a keyholder is still left out of one quorum. t + f is what a
    committee decrypts with, and f is at most n − t."""
    for parties, threshold, live in ((3, 2, {1, 2, 3}), (5, 3, {1, 2, 3, 4, 5}), (5, 3, {1, 2, 4, 5}), (7, 4, set(range(1, 8)))):
        assert quorum_family(parties, threshold, live, 1) == quorum_family(parties, threshold, live, 0)
    # f = 2 must leave out every pair, which runs of two alone do not: more quorums.
    assert len(quorum_family(5, 3, {1, 2, 3, 4, 5}, 2)) > len(quorum_family(5, 3, {1, 2, 3, 4, 5}, 1))
    with pytest.raises(CommitteeUnavailable, match=r"t \+ f = 3"):
        quorum_family(3, 2, {1, 3}, 1)  # exactly t live: the step waits, it never runs unchecked
    assert [quorum.members for quorum in quorum_family(3, 2, {1, 3}, 0)] == [(1, 3)]
    assert default_fault_bound(3, 3) == 0 and default_fault_bound(3, 2) == 1 and default_fault_bound(7, 4) == 1
    check_committee_shape(7, 4, 3, 32)
    check_committee_shape(1, 1, 0, 32)
    for parties, threshold, fault_bound in ((3, 3, 1), (3, 2, 2), (3, 2, -1), (7, 4, 4), (4, 2, 0), (0, 1, 0), (65, 64, 0), (3, 0, 0)):
        with pytest.raises(InvalidInput):
            check_committee_shape(parties, threshold, fault_bound, 32)
    # One fusion combines 1 + t + t·(n − t) partials: within max_fused_partials plus the lead.
    check_committee_shape(9, 5, 0, 1 + 5 + 5 * 4 - 1)
    with pytest.raises(InvalidInput, match="partials"):
        check_committee_shape(9, 5, 0, 1 + 5 + 5 * 4 - 2)


@pytest.mark.parametrize("parties, threshold", [(1, 1), (3, 3), (3, 2), (5, 3), (7, 4)])
def test_expected_partials_are_own_plus_one_stand_in_per_offline_keyholder(parties: int, threshold: int) -> None:
    everyone = range(1, parties + 1)
    for size in {threshold, parties}:
        for members in combinations(everyone, size):
            quorum = Quorum(parties, threshold, members)
            expected = {(member, member) for member in members} | {
                (member, absent) for member in members for absent in everyone if absent not in members
            }
            roles = quorum.expected_partials()
            assert len(roles) == len(set(roles)) == len(expected)
            assert set(roles) == expected
            assert len(roles) == size + size * (parties - size)


# --- fusion ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def plain_and_ciphertext(context, committee3):  # type: ignore[no-untyped-def]
    plain = np.random.default_rng(5).integers(0, P, context.slot_count)
    return plain, context.encrypt(committee3.joint_key, plain)


def test_fuse_a_complete_set_in_any_order(context, committee3, plain_and_ciphertext) -> None:  # type: ignore[no-untyped-def]
    plain, ciphertext = plain_and_ciphertext
    quorum, shares = shares_for(committee3, ciphertext)
    assert np.array_equal(fuse(context, ciphertext, quorum, shares), plain)
    assert np.array_equal(fuse(context, ciphertext, quorum, list(reversed(shares))), plain)


def test_keyholders_release_only_main_partials_and_the_fuser_adds_the_public_lead(context, committee3, plain_and_ciphertext) -> None:  # type: ignore[no-untyped-def]
    """Every partial a keyholder releases is a main partial (own partials name no quorum); the
    lead term c0 comes from the ciphertext that `fuse` is given, so the same partials fused
    with another ciphertext of the same c1 give that ciphertext's plaintext, not this one."""
    plain, ciphertext = plain_and_ciphertext
    quorum, shares = shares_for(committee3, ciphertext)
    assert [(share.producer, share.on_behalf_of, share.quorum) for share in shares] == [(1, 1, ()), (2, 2, ()), (3, 3, ())]
    mains = [context.partial_from_bytes(share.data) for share in shares]
    assert np.array_equal(context.fuse([context.public_lead_partial(ciphertext), *mains]), plain)
    assert not np.array_equal(context.fuse(mains), plain)
    shift = np.random.default_rng(8).integers(0, P, context.slot_count)
    moved = context.add_plain(ciphertext, shift)  # same c1, c0 + Δ·shift
    assert np.array_equal(fuse(context, moved, quorum, shares), (plain + shift) % P)


def test_fuse_refuses_missing_duplicate_and_unexpected_partials(context, committee3, plain_and_ciphertext) -> None:  # type: ignore[no-untyped-def]
    plain, ciphertext = plain_and_ciphertext
    quorum, shares = shares_for(committee3, ciphertext)
    for index in range(len(shares)):
        with pytest.raises(InvalidInput, match="missing"):
            fuse(context, ciphertext, quorum, shares[:index] + shares[index + 1 :])
    with pytest.raises(InvalidInput, match="duplicate"):
        fuse(context, ciphertext, quorum, shares + [shares[1]])
    with pytest.raises(InvalidInput, match="duplicate"):
        fuse(context, ciphertext, quorum, shares + [PartialShare(shares[0].producer, shares[0].on_behalf_of, (), shares[1].data)])
    with pytest.raises(InvalidInput, match="names no quorum"):
        fuse(context, ciphertext, quorum, shares + [PartialShare(1, 2, (), shares[0].data)])  # a stand-in must name its quorum
    stray = PartialShare(1, 2, quorum.members, shares[0].data)  # a stand-in for this quorum that nobody is missing
    with pytest.raises(InvalidInput, match="unexpected"):
        fuse(context, ciphertext, quorum, shares + [stray])
    with pytest.raises(InvalidInput):
        fuse(context, ciphertext, quorum, [])
    with pytest.raises(InvalidInput):
        fuse(context, ciphertext, quorum, shares[:2] + [PartialShare(4, 4, (), shares[2].data)])
    with pytest.raises(InvalidInput):
        fuse(context, ciphertext, quorum, shares[:2] + [PartialShare(3, 3, (), b"garbage")])
    # Stand-ins made for another quorum are not this quorum's business: they are left out.
    other_quorum = PartialShare(1, 2, (1, 3), shares[0].data)
    assert np.array_equal(fuse(context, ciphertext, quorum, shares + [other_quorum]), plain)


def test_t_of_n_fusion_needs_every_stand_in(committee2of3) -> None:  # type: ignore[no-untyped-def]
    context = committee2of3.context
    plain = np.random.default_rng(6).integers(0, P, context.slot_count)
    ciphertext = context.encrypt(context.joint_key, plain)
    for members in ((1, 2), (1, 3), (2, 3)):
        quorum, shares = shares_for(committee2of3, ciphertext, members)
        assert {(share.producer, share.on_behalf_of) for share in shares} == set(quorum.expected_partials())
        assert all(share.quorum == (() if share.producer == share.on_behalf_of else members) for share in shares)
        assert np.array_equal(fuse(context, ciphertext, quorum, shares), plain)
        stand_ins = [share for share in shares if share.producer != share.on_behalf_of]
        assert len(stand_ins) == 2
        for stand_in in stand_ins:
            with pytest.raises(InvalidInput, match="missing"):
                fuse(context, ciphertext, quorum, [share for share in shares if share is not stand_in])
        # The partials of one quorum do not fuse under another.
        other = Quorum(3, 2, tuple(sorted({1, 2, 3} - {members[0]})))
        with pytest.raises(InvalidInput):
            fuse(context, ciphertext, other, shares)


def test_one_own_partial_per_keyholder_serves_every_quorum_of_the_family(committee2of3) -> None:  # type: ignore[no-untyped-def]
    """With all three of a 2-of-3 committee live, each keyholder releases its own partial once
    and a stand-in for the absent keyholder in each quorum it belongs to; every quorum of the
    family fuses from the same own partials, and the other quorums' partials do not disturb it."""
    context = committee2of3.context
    plain = np.random.default_rng(16).integers(0, P, context.slot_count)
    ciphertext = context.encrypt(context.joint_key, plain)
    family, shares = family_shares_for(committee2of3, ciphertext)
    assert [quorum.members for quorum in family] == [(2, 3), (1, 3), (1, 2)]
    own = [share for share in shares if share.quorum == ()]
    assert sorted((share.producer, share.on_behalf_of) for share in own) == [(1, 1), (2, 2), (3, 3)]
    stand_ins = {(share.producer, share.on_behalf_of, share.quorum) for share in shares if share.quorum}
    assert stand_ins == {(member, absent, quorum.members) for quorum in family for absent in quorum.offline for member in quorum.members}
    assert len(shares) == 3 + 6
    for quorum in family:
        assert np.array_equal(fuse(context, ciphertext, quorum, shares), plain), quorum.members
        assert np.array_equal(fuse(context, ciphertext, quorum, list(reversed(shares))), plain), quorum.members
    # The full quorum of all three needs only the own partials.
    assert np.array_equal(fuse(context, ciphertext, Quorum(3, 2, (1, 2, 3)), own), plain)


def test_decrypting_party_refuses_foreign_quorums(committee2of3, context) -> None:  # type: ignore[no-untyped-def]
    committee_context = committee2of3.context
    ciphertext = committee_context.encrypt(committee_context.joint_key, np.zeros(committee_context.slot_count, dtype=np.int64))
    party = committee2of3.parties[0]
    with pytest.raises(InvalidInput):
        party.partials(ciphertext, [Quorum(3, 3, (1, 2, 3))])  # wrong t
    with pytest.raises(InvalidInput):
        party.partials(ciphertext, [Quorum(3, 2, (1, 2)), Quorum(5, 3, (1, 2, 3))])  # wrong n in one of them
    with pytest.raises(InvalidInput):
        party.partials(ciphertext, [Quorum(3, 2, (2, 3))])  # not a member
    with pytest.raises(InvalidInput):
        party.partials(ciphertext, [])  # no quorum at all
    without_backups = DecryptingParty(committee_context, 1, committee2of3.secrets[0], {}, 3, 2)
    with pytest.raises(WrongPhase):
        without_backups.partials(ciphertext, [Quorum(3, 2, (1, 2))])
    # Own partial only, when the keyholder's quorum has no absent keyholder (none needs a backup).
    assert [(s.producer, s.on_behalf_of, s.quorum) for s in without_backups.partials(ciphertext, [Quorum(3, 2, (1, 2, 3))])] == [(1, 1, ())]


def test_decrypting_party_gives_one_own_partial_and_stand_ins_for_its_quorums_only(committee2of3) -> None:  # type: ignore[no-untyped-def]
    context = committee2of3.context
    plain = np.random.default_rng(17).integers(0, P, context.slot_count)
    ciphertext = context.encrypt(context.joint_key, plain)
    family = committee2of3.family()
    party = committee2of3.parties[0]
    shares = party.partials(ciphertext, family)
    assert [(s.producer, s.on_behalf_of, s.quorum) for s in shares] == [(1, 1, ()), (1, 2, (1, 3)), (1, 3, (1, 2))]
    again = party.partials(ciphertext, family, own=False)  # own partial already released
    assert [(s.producer, s.on_behalf_of, s.quorum) for s in again] == [(1, 2, (1, 3)), (1, 3, (1, 2))]
    # The own partial released first still fuses with stand-ins made later.
    others = [share for other in committee2of3.parties[1:] for share in other.partials(ciphertext, family)]
    for quorum in family:
        assert np.array_equal(fuse(context, ciphertext, quorum, [shares[0], *again, *others]), plain), quorum.members


# --- fact readers on hand-built vectors ------------------------------------------------------


def _vector(first: dict[int, int], second: dict[int, int] | None = None, layout: SlotLayout = SMALL) -> np.ndarray:
    vector = layout.zeros()
    for level, value in first.items():
        vector[level] = value
    for level, value in (first if second is None else second).items():
        vector[layout.row_width + level] = value
    return vector


def _masked(levels: int, executed: int, zeros: set[int], rng: np.random.Generator) -> dict[int, int]:
    """Non-zero at levels executed < ℓ < L except `zeros`; zero elsewhere."""
    return {level: int(rng.integers(1, P)) for level in range(executed + 1, levels) if level not in zeros}


def test_read_hunt_check() -> None:
    rng = np.random.default_rng(11)
    levels, executed = 20, 4
    first = _masked(levels, executed, {7, 12, 19}, rng)
    second = _masked(levels, executed, {12, 19, 9}, rng)
    facts = read_hunt_check(SMALL, _vector(first, second), levels, executed)
    assert facts.candidates == (12, 19) and facts.fired  # zero in both copies only
    quiet = read_hunt_check(SMALL, _vector(_masked(levels, 0, set(), rng), _masked(levels, 0, set(), rng)), levels, 0)
    assert quiet.candidates == () and not quiet.fired
    # Anything non-zero where the circuit guarantees zero reveals nothing.
    for slot in (0, executed, levels, SMALL.row_width - 1, SMALL.row_width, SMALL.row_width + executed, SMALL.row_width + levels + 3, SMALL.slot_count - 1):
        corrupted = _vector(first, second)
        corrupted[slot] = 1
        with pytest.raises(IntegrityFailure):
            read_hunt_check(SMALL, corrupted, levels, executed)


def test_read_confirmation() -> None:
    rng = np.random.default_rng(12)
    levels = 20
    candidates = [5, 9, 14]
    first = {5: 0, 9: int(rng.integers(1, P)), 14: 0}
    second = {5: 0, 9: int(rng.integers(1, P)), 14: int(rng.integers(1, P))}
    assert read_confirmation(SMALL, _vector(first, second), levels, candidates).level == 5
    assert read_confirmation(SMALL, _vector({5: 0, 9: 0, 14: 0}), levels, candidates).level == 14
    assert read_confirmation(SMALL, _vector({5: 3, 9: 3, 14: 3}), levels, candidates).level is None
    for slot in (0, 6, levels - 1, levels, SMALL.row_width + 13, SMALL.slot_count - 1):
        corrupted = _vector(first, second)
        corrupted[slot] = 2
        with pytest.raises(IntegrityFailure):
            read_confirmation(SMALL, corrupted, levels, candidates)


def _membership_vector(bits: list[bool], level: int, layout: SlotLayout = SMALL) -> np.ndarray:
    """Group g = i // 32 of the bits: a 16-bit word per row, in slot (level − g) mod W."""
    vector = layout.zeros()
    width = layout.row_width
    for group in range(0, -(-len(bits) // 32)):
        for row in (0, 1):
            chunk = bits[32 * group + 16 * row : 32 * group + 16 * row + 16]
            vector[row * width + (level - group) % width] = sum(1 << bit for bit, member in enumerate(chunk) if member)
    return vector


def test_read_membership() -> None:
    rng = np.random.default_rng(13)
    width = SMALL.row_width
    for level in (9, 1, width - 1):
        for count in (1, 15, 16, 17, 32, 33, 70, 200):
            bits = [bool(bit) for bit in rng.integers(0, 2, count)]
            assert read_membership(SMALL, _membership_vector(bits, level), level, count) == tuple(bits), (level, count)
    level = 9
    bits = [True] * 40
    vector = _membership_vector(bits, level)
    assert read_membership(SMALL, vector, level, 40) == (True,) * 40
    # A bit beyond the pending intendos (positions 40 and 48 do not exist; group 1 is in slot 8).
    for slot, bit in ((level - 1, 8), (width + level - 1, 0)):
        beyond = vector.copy()
        beyond[slot] |= 1 << bit
        with pytest.raises(IntegrityFailure):
            read_membership(SMALL, beyond, level, 40)
    # A value in any slot no group of the pending intendos uses: corrupted.
    for slot in (level + 1, level - 2, width + level + 1, width + level - 2, 0, width - 1, SMALL.slot_count - 1):
        elsewhere = vector.copy()
        elsewhere[slot] = 1
        with pytest.raises(IntegrityFailure):
            read_membership(SMALL, elsewhere, level, 40)
    # The second group rotated the wrong way (to slot level + 1).
    misplaced = vector.copy()
    misplaced[[level + 1, width + level + 1]] = misplaced[[level - 1, width + level - 1]]
    misplaced[[level - 1, width + level - 1]] = 0
    with pytest.raises(IntegrityFailure):
        read_membership(SMALL, misplaced, level, 40)
    # A whole group more than there are pending intendos.
    with pytest.raises(IntegrityFailure):
        read_membership(SMALL, vector, level, 32)
    too_big = vector.copy()
    too_big[level] = P - 1  # more than 16 bits
    with pytest.raises(IntegrityFailure):
        read_membership(SMALL, too_big, level, 40)


def test_read_validity() -> None:
    assert read_validity(SMALL, _vector({0: 0, 1: 5, 2: 0}, {0: 0, 1: 0, 2: 9}), 3) == (True, False, False)
    assert read_validity(SMALL, SMALL.zeros(), 4) == (True,) * 4
    for slot in (3, SMALL.row_width - 1, SMALL.row_width + 3, SMALL.slot_count - 1):
        corrupted = SMALL.zeros()
        corrupted[slot] = 1
        with pytest.raises(IntegrityFailure):
            read_validity(SMALL, corrupted, 3)


# --- corrupted partial decryptions -----------------------------------------------------------


@pytest.fixture(scope="module")
def hunt_pack(context, committee3):  # type: ignore[no-untyped-def]
    """A count pack of 40 intendos (two membership groups in one ciphertext) whose hunt fires."""
    layout = circuit.layout_of(context)
    levels = 48
    rng = np.random.default_rng(99)
    solver = PackSolver(levels)
    thresholds = []
    for index in range(40):
        threshold = Threshold(int(rng.integers(1, 36)), 1)
        solver.insert(index, threshold.level, 1)
        thresholds.append(threshold)
    hunt = solver.hunt()
    assert hunt is not None
    # The hunt path at the evaluation level: compressed intendos and masks.
    ciphertexts = [context.compress(context.encrypt(context.joint_key, layout.thermometer(threshold, levels))) for threshold in thresholds]
    total = context.add_many(ciphertexts)
    check = circuit.hunt_check(context, total, context.compress(random_mask(context, rng)), levels, 0)
    membership = circuit.membership_ciphertext(context, [(ct, 1) for ct in ciphertexts], hunt.level, levels)
    return levels, solver, hunt, thresholds, check, membership


def _corrupt(data: bytes, reference: bytes, rng: np.random.Generator, modulus_floor: int) -> bytes:
    """Flip one low bit of one coefficient, keeping it reduced: still a well-formed partial."""
    regions = coefficient_regions(data, reference, 16384)
    start, length = regions[int(rng.integers(0, len(regions)))]
    offset = start + 8 * int(rng.integers(0, length // 8))
    word = word_at(data, offset) ^ (1 << int(rng.integers(0, 16)))
    assert word < modulus_floor
    return with_word(data, offset, word)


def _with_data(share: PartialShare, data: bytes) -> PartialShare:
    return PartialShare(share.producer, share.on_behalf_of, share.quorum, data)


CORRUPTIONS = 6


def test_corrupted_partial_makes_the_hunt_check_an_integrity_failure(context, committee3, hunt_pack) -> None:  # type: ignore[no-untyped-def]
    levels, solver, hunt, _, check, _ = hunt_pack
    quorum, shares = shares_for(committee3, check)
    facts = reveal_hunt_check(context, check, (quorum,), shares, levels, 0)
    assert max(facts.candidates) == hunt.level == solver.greatest_fixed_point()
    rng = np.random.default_rng(2024)
    floor = min(context.tower_moduli)
    for attempt in range(CORRUPTIONS):
        victim = attempt % len(shares)  # every keyholder's (main) partial in turn
        reference = shares[(victim + 1) % len(shares)].data
        corrupted = list(shares)
        corrupted[victim] = _with_data(shares[victim], _corrupt(shares[victim].data, reference, rng, floor))
        context.partial_from_bytes(corrupted[victim].data)  # structurally valid
        with pytest.raises(IntegrityFailure):
            reveal_hunt_check(context, check, (quorum,), corrupted, levels, 0)


def test_corrupted_partial_makes_membership_an_integrity_failure(context, committee3, hunt_pack) -> None:  # type: ignore[no-untyped-def]
    levels, _, hunt, thresholds, _, membership = hunt_pack
    quorum, shares = shares_for(committee3, membership)
    bits = reveal_membership(context, membership, (quorum,), shares, hunt.level, len(thresholds))
    assert bits == tuple(threshold.level <= hunt.level for threshold in thresholds)
    assert tuple(index for index, bit in enumerate(bits) if bit) == hunt.members
    rng = np.random.default_rng(4048)
    floor = min(context.tower_moduli)
    for attempt in range(CORRUPTIONS):
        victim = attempt % len(shares)
        reference = shares[(victim + 1) % len(shares)].data
        corrupted = list(shares)
        corrupted[victim] = _with_data(shares[victim], _corrupt(shares[victim].data, reference, rng, floor))
        with pytest.raises(IntegrityFailure):
            reveal_membership(context, membership, (quorum,), corrupted, hunt.level, len(thresholds))


def test_corrupted_partial_makes_confirmation_and_validity_integrity_failures(context, committee3, hunt_pack) -> None:  # type: ignore[no-untyped-def]
    levels, solver, hunt, thresholds, _, _ = hunt_pack
    layout = circuit.layout_of(context)
    rng = np.random.default_rng(77)
    first = context.encrypt(context.joint_key, layout.thermometer(thresholds[0], levels))
    total = context.add_many([context.compress(context.encrypt(context.joint_key, layout.thermometer(t, levels))) for t in thresholds[:3]])
    confirmation = circuit.hunt_confirmation(context, total, context.compress(random_mask(context, rng)), levels, [1, 2, 3])
    terms = circuit.validity_terms(context, first, 1, levels, b"seed", b"label")
    validity = circuit.validity_check(context, [[terms]], random_mask(context, rng))
    floor = min(context.tower_moduli)
    for ciphertext, reveal in (
        (confirmation, lambda q, s: reveal_confirmation(context, confirmation, q, s, levels, [1, 2, 3])),
        (validity, lambda q, s: reveal_validity(context, validity, q, s, 1)),
    ):
        quorum, shares = shares_for(committee3, ciphertext)
        reveal((quorum,), shares)  # the honest set reads without error
        for attempt in range(3):
            victim = attempt % len(shares)
            corrupted = list(shares)
            corrupted[victim] = _with_data(shares[victim], _corrupt(shares[victim].data, shares[victim - 1].data, rng, floor))
            with pytest.raises(IntegrityFailure):
                reveal((quorum,), corrupted)


def _small_hunt(context: FheContext, levels: int = 10) -> tuple[list[Threshold], tuple[int, ...], list]:  # type: ignore[type-arg]
    thresholds = [Threshold(level, 1) for level in (1, 2, 3, 7, 9)]
    counts = [sum(t.weight for t in thresholds if t.level <= ell) for ell in range(levels)]
    fixed = tuple(ell for ell in range(1, levels) if counts[ell] == ell)
    assert fixed
    layout = circuit.layout_of(context)
    ciphertexts = [context.compress(context.encrypt(context.joint_key, layout.thermometer(t, levels))) for t in thresholds]
    return thresholds, fixed, ciphertexts


def _small_check(context: FheContext, rng: np.random.Generator, levels: int = 10) -> tuple[tuple[int, ...], Ciphertext]:
    """The masked hunt check of `_small_hunt`'s pack and its fixed points."""
    _, fixed, ciphertexts = _small_hunt(context, levels)
    return fixed, circuit.hunt_check(context, context.add_many(ciphertexts), context.compress(random_mask(context, rng)), levels, 0)


def test_corrupted_stand_in_partial_is_an_integrity_failure(committee2of3) -> None:  # type: ignore[no-untyped-def]
    context = committee2of3.context
    levels = 10
    rng = np.random.default_rng(3)
    fixed, check = _small_check(context, rng, levels)
    floor = min(context.tower_moduli)
    quorum, shares = shares_for(committee2of3, check, (1, 3))
    assert reveal_hunt_check(context, check, (quorum,), shares, levels, 0).candidates == fixed
    for victim, share in enumerate(shares):
        corrupted = list(shares)
        corrupted[victim] = _with_data(share, _corrupt(share.data, shares[victim - 1].data, rng, floor))
        with pytest.raises(IntegrityFailure):
            reveal_hunt_check(context, check, (quorum,), corrupted, levels, 0)
    # With the whole family (all three live), any one corrupted partial fails too: the quorum
    # without its producer reads the truth, the others do not agree with it.
    family, shares = family_shares_for(committee2of3, check)
    assert reveal_hunt_check(context, check, family, shares, levels, 0).candidates == fixed
    for victim in range(0, len(shares), 2):
        corrupted = list(shares)
        corrupted[victim] = _with_data(shares[victim], _corrupt(shares[victim].data, shares[victim - 1].data, rng, floor))
        with pytest.raises(IntegrityFailure):
            reveal_hunt_check(context, check, family, corrupted, levels, 0)


def test_reveal_needs_every_quorum_of_the_family_complete(committee2of3) -> None:  # type: ignore[no-untyped-def]
    context = committee2of3.context
    levels = 10
    rng = np.random.default_rng(4)
    fixed, check = _small_check(context, rng, levels)
    family, shares = family_shares_for(committee2of3, check)
    for missing in range(len(shares)):
        with pytest.raises(InvalidInput, match="incomplete"):
            reveal_hunt_check(context, check, family, shares[:missing] + shares[missing + 1 :], levels, 0)
    with pytest.raises(InvalidInput):
        reveal_hunt_check(context, check, (), shares, levels, 0)


# --- the membership of many pending intendos -------------------------------------------------


def test_membership_of_many_pending_intendos_decodes_to_the_solver_members(committee2of3) -> None:  # type: ignore[no-untyped-def]
    """More than 32 pending intendos (three groups, rotated into one ciphertext), after an
    executed hunt, revealed through the whole 2-of-3 family: exactly the solver's members."""
    context = committee2of3.context
    layout = circuit.layout_of(context)
    levels = 120
    rng = np.random.default_rng(4242)
    solver = PackSolver(levels)
    thresholds: dict[int, Threshold] = {}
    for index in range(10):  # a first hunt executes, its members stay counted
        thresholds[index] = Threshold(int(rng.integers(1, 8)), 1)
        solver.insert(index, thresholds[index].level, 1)
    first = solver.hunt()
    assert first is not None
    solver.execute(first)
    for index in range(10, 90):
        thresholds[index] = Threshold(int(rng.integers(solver.executed_level + 1, 95)), 1)
        solver.insert(index, thresholds[index].level, 1)
    hunt = solver.hunt()
    assert hunt is not None
    pending = list(solver.pending_ids())
    assert len(pending) > 2 * circuit.MEMBERS_PER_GROUP and len(hunt.members) > circuit.MEMBERS_PER_GROUP
    encrypted = {index: context.compress(context.encrypt(context.joint_key, layout.thermometer(t, levels))) for index, t in thresholds.items()}
    membership = circuit.membership_ciphertext(context, [(encrypted[index], 1) for index in pending], hunt.level, levels)
    family, shares = family_shares_for(committee2of3, membership)
    assert len(family) == 3
    bits = reveal_membership(context, membership, family, shares, hunt.level, len(pending))
    assert tuple(index for index, bit in zip(pending, bits) if bit) == hunt.members
    assert solver.executed_level + sum(hunt.weights) == hunt.level


# --- crafted partial decryptions (a dishonest keyholder) -------------------------------------


@pytest.fixture(scope="module")
def committee5of3():  # type: ignore[no-untyped-def]
    """A 3-of-5 committee on its own FheContext (a context binds exactly one committee key);
    test_dkg checks the same ceremony (support.committees.shared_committee)."""
    return shared_committee(5, 3)


@dataclass
class Forgery:
    """A small hunt's membership ciphertext decrypted by the family of quorums for the live
    keyholders, and the shift a dishonest keyholder aims at: one member out, a non-member in
    (plausible: every zero-by-construction slot stays zero and the weights still total m)."""

    context: FheContext
    membership: Ciphertext
    level: int
    count: int
    family: tuple[Quorum, ...]
    honest: list[PartialShare]
    truth: tuple[bool, ...]
    swapped: tuple[bool, ...]
    shift: np.ndarray

    def crafted(self, forger: int, *, stand_in_of: tuple[int, ...] | None = None) -> list[PartialShare]:
        """The partials with the forger's own partial shifted, or instead its stand-in for
        quorum `stand_in_of`."""
        target = stand_in_of or ()
        return [
            crafted_partial(self.context, share, self.membership, self.shift) if (share.producer, share.quorum) == (forger, target) else share
            for share in self.honest
        ]

    def reveal(self, shares: list[PartialShare], family: tuple[Quorum, ...] | None = None) -> tuple[bool, ...]:
        return reveal_membership(self.context, self.membership, family or self.family, shares, self.level, self.count)


def forgery(committee, live: tuple[int, ...] | None = None, fault_bound: int | None = None) -> Forgery:  # type: ignore[no-untyped-def]
    """`fault_bound` (default: the committee's) sets the family of quorums decrypting."""
    context = committee.context
    levels = 10
    thresholds, fixed, ciphertexts = _small_hunt(context, levels)
    level = max(fixed)
    membership = circuit.membership_ciphertext(context, [(ct, 1) for ct in ciphertexts], level, levels)
    if fault_bound is None:
        family, honest = family_shares_for(committee, membership, live)
    else:
        count = len(committee.parties)
        family = quorum_family(count, committee.threshold, frozenset(live or range(1, count + 1)), fault_bound)
        honest = committee.partials(membership, family)
    truth = tuple(t.level <= level for t in thresholds)
    inside, outside = truth.index(True), truth.index(False)
    swapped = tuple(bit if index not in (inside, outside) else not bit for index, bit in enumerate(truth))
    shift = circuit.layout_of(context).zeros()
    shift[level] = ((1 << outside) - (1 << inside)) % P  # group 0, row 0: slot `level`
    return Forgery(context, membership, level, len(thresholds), family, honest, truth, swapped, shift)


@pytest.mark.parametrize("forger", [1, 2, 3])
def test_crafted_partial_shifting_the_membership_word_is_detected(committee2of3, forger: int) -> None:  # type: ignore[no-untyped-def]
    """A keyholder adding Δ·m' to its own partial shifts every quorum it belongs to — plausibly:
    each of those quorums alone reads a membership whose weights still total m. But with all
    three of a 2-of-3 committee live, the family has a quorum without the forger, which reads
    the truth, and the disagreement is an IntegrityFailure: nothing is revealed."""
    case = forgery(committee2of3)
    assert case.reveal(case.honest) == case.truth
    crafted = case.crafted(forger)
    for quorum in case.family:  # what each quorum alone would read from the crafted set
        assert case.reveal(crafted, (quorum,)) == (case.swapped if forger in quorum.members else case.truth), quorum.members
    with pytest.raises(IntegrityFailure, match="disagree"):
        case.reveal(crafted)
    # Shifting one of its stand-ins instead shifts that quorum alone: caught the same way.
    for quorum in case.family:
        if forger in quorum.members:
            with pytest.raises(IntegrityFailure, match="disagree"):
                case.reveal(case.crafted(forger, stand_in_of=quorum.members))


@pytest.mark.parametrize("forger, live", [(3, None), (5, None), (1, (1, 2, 4, 5))])
def test_crafted_partial_is_detected_in_a_five_of_three_committee(committee5of3, forger: int, live) -> None:  # type: ignore[no-untyped-def]
    """3-of-5 with all five live (three quorums, each leaving out two keyholders) or four live
    (one offline, stood in for; four quorums, each leaving out one)."""
    case = forgery(committee5of3, live)
    assert len(case.family) == (3 if live is None else 4)
    assert case.reveal(case.honest) == case.truth
    assert any(forger in quorum.members for quorum in case.family) and any(forger not in quorum.members for quorum in case.family)
    with pytest.raises(IntegrityFailure, match="disagree"):
        case.reveal(case.crafted(forger))


def test_exactly_t_live_do_not_decrypt_with_a_fault_bound_and_the_f_zero_residual_remains(committee2of3) -> None:  # type: ignore[no-untyped-def]
    """Before the security changes, exactly t live keyholders decrypted with one quorum that
    nothing cross-checks, so a crafted partial swapped members undetectably. With the
    committee's fault bound f = 1 (the default where n > t) a step needs t + f keyholders: the
    family for exactly t refuses (the step waits; it never runs unchecked). A committee made
    with f = 0 keeps the documented limit (stagpack.decrypt.quorum): the result is plausible,
    every zero-by-construction slot is zero, and the members' weights still total m."""
    assert committee2of3.fault_bound == 1
    with pytest.raises(CommitteeUnavailable):
        committee2of3.family((1, 2))
    case = forgery(committee2of3, (1, 2), fault_bound=0)
    assert [quorum.members for quorum in case.family] == [(1, 2)]
    assert case.reveal(case.honest) == case.truth
    revealed = case.reveal(case.crafted(1))
    assert revealed == case.swapped != case.truth
    assert sum(revealed) == sum(case.truth) == case.level  # count stag: the weight total check passes
