"""The plaintext reference for capital across stags (`solver.market.MarketReference`).

Hand-worked cases pin the rules (creation order, voids, the release guard); a randomized run
checks the invariants every encrypted run inherits from it: money is conserved, no account ever
pays more than it holds or pays twice, a voided intendo never executes, and each stag's hunts
are what `greatest_satisfying_subset` computes from the definition on what was left in it.
"""

from __future__ import annotations

import random

import pytest

from stagpack.accounts import Account
from stagpack.errors import InsufficientFunds, StagpackError, WrongPhase
from stagpack.solver import greatest_satisfying_subset
from stagpack.solver.market import MarketReference

LEVELS = 20


def account(name: str, tag: str = "main") -> Account:
    return Account(name.encode().ljust(32, b"\0"), tag)


ALICE, BOB, FUND_A, FUND_B = account("alice"), account("bob"), account("fund-a", "fund"), account("fund-b", "fund")


def two_stags() -> MarketReference:
    market = MarketReference()
    market.create_stag("a", LEVELS, FUND_A)
    market.create_stag("b", LEVELS, FUND_B)
    return market


def test_the_first_stag_to_fire_spends_the_account_and_voids_the_rest() -> None:
    market = two_stags()
    market.deposit(ALICE, 5)
    market.deposit(BOB, 4)
    market.submit("a", "alice-a", ALICE, 3, 3)  # alone: a fixed point at 3
    market.submit("b", "alice-b", ALICE, 5, 5)
    market.submit("b", "bob-b", BOB, 5, 2)  # b never fires: c[5] = 7 and c[7] = 7 needs nobody below 7
    assert market.held(ALICE) == 5  # the larger of 3 and 5, not the sum
    hunts = market.epoch(1)
    assert hunts["a"] is not None and hunts["a"].members == ("alice-a",)
    assert market.status("alice-b") == "voided" and market.status("bob-b") == "live"
    assert market.balance(ALICE) == 2 and market.balance(FUND_A) == 3 and market.held(ALICE) == 0
    assert market.spent[ALICE] == ("a", 1) and market.conserved
    with pytest.raises(WrongPhase):
        market.submit("b", "alice-b2", ALICE, 2, 2)  # a spent account backs nothing new


def test_in_one_epoch_the_earlier_stag_wins_and_the_later_is_evaluated_without_the_voided() -> None:
    market = two_stags()
    market.deposit(ALICE, 5)
    market.deposit(BOB, 5)
    market.submit("a", "alice-a", ALICE, 4, 4)
    market.submit("b", "alice-b", ALICE, 3, 3)
    market.submit("b", "bob-b", BOB, 1, 1)
    # on its own stag b would fire at 4 (alice 3 + bob 1); a, created first, spends alice first
    hunts = market.epoch(1)
    assert hunts["a"] is not None and hunts["a"].members == ("alice-a",)
    assert hunts["b"] is not None and hunts["b"].members == ("bob-b",) and hunts["b"].level == 1
    assert market.status("alice-b") == "voided"
    assert (market.balance(ALICE), market.balance(BOB), market.balance(FUND_A), market.balance(FUND_B)) == (1, 4, 4, 1)


def test_releases_keep_what_live_intendos_hold() -> None:
    market = two_stags()
    market.deposit(ALICE, 6)
    market.submit("a", "alice-a", ALICE, 9, 2)
    market.submit("b", "alice-b", ALICE, 9, 4)
    with pytest.raises(InsufficientFunds):
        market.release(ALICE, 3)
    market.release(ALICE, 2)
    market.withdraw("alice-b")
    market.release(ALICE, 2)
    assert market.balance(ALICE) == 2 and market.held(ALICE) == 2 and market.conserved
    with pytest.raises(InsufficientFunds):
        market.submit("b", "alice-b2", ALICE, 9, 3)


@pytest.mark.parametrize("seed", range(12))
def test_random_markets_conserve_money_and_never_spend_twice(seed: int) -> None:
    rng = random.Random(seed)
    market = MarketReference()
    stags = [f"stag-{index}" for index in range(3)]
    for stag in stags:
        market.create_stag(stag, LEVELS, account(stag, "fund"))
    people = [account(f"person-{index}", tag) for index in range(6) for tag in ("main", "side")[: 1 + index % 2]]
    thresholds: dict[str, tuple[str, int, int]] = {}  # intendo -> (stag, threshold, weight)
    paid: dict[Account, int] = {}
    for epoch in range(1, 9):
        for _ in range(rng.randint(2, 6)):
            owner = rng.choice(people)
            operation = rng.random()
            try:
                if operation < 0.3:
                    market.deposit(owner, rng.randint(1, 6))
                elif operation < 0.4:
                    market.release(owner, rng.randint(1, 4))
                else:
                    intendo = f"{epoch}-{len(thresholds)}"
                    stag, threshold, weight = rng.choice(stags), rng.randint(1, 12), rng.randint(1, 4)
                    market.submit(stag, intendo, owner, threshold, weight)
                    thresholds[intendo] = (stag, threshold, weight)
            except StagpackError:
                pass
        live_before = {i: market.status(i) for i in thresholds}
        hunts = market.epoch(epoch)
        for stag, hunt in hunts.items():
            # what was left of the stag after this pass's voids, solved from the definition: the
            # largest m with c[m] = m counting executed intendos too, if above the executed level
            pending = [i for i, (s, _, _) in thresholds.items() if s == stag and live_before[i] == "live" and market.status(i) != "voided"]
            executed = [i for i, (s, _, _) in thresholds.items() if s == stag and live_before[i] == "executed"]
            executed_level = sum(thresholds[i][2] for i in executed)
            level = greatest_satisfying_subset([thresholds[i][1:] for i in pending + executed])
            expected = None if level <= executed_level else (level, {i for i in pending if thresholds[i][1] <= level})
            assert (None if hunt is None else (hunt.level, set(hunt.members))) == expected, (seed, epoch, stag)
            for member in hunt.members if hunt else ():
                owner = market._intendos[member].account  # noqa: SLF001
                assert owner not in paid, "an account paid twice"
                paid[owner] = thresholds[member][2]
        assert market.conserved and all(balance >= 0 for balance in market.balances.values())
        for intendo, status in ((i, market.status(i)) for i in thresholds):
            if status == "voided":
                assert market.spent[market._intendos[intendo].account][0] != thresholds[intendo][0]  # noqa: SLF001
