"""The benchmarks still run. `stagpack bench` at smoke size (seconds): the report and its plots are
written, the baselines a user might pick instead of stagpack (a public progress counter,
decrypting c) are perfect distinguishers, and every forbidden decryption request is refused by
every keyholder. `stagpack.bench.core` measures at least one committee. Nothing here asserts
anything about speed or about the operator-view advantages (two epochs per pack say nothing
statistically)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stagpack.bench import core
from stagpack.bench.report import run_report


def test_smoke_report_is_written_with_perfect_baselines_and_every_forbidden_request_refused(tmp_path: Path) -> None:
    outcome = run_report(tmp_path / "report", "smoke", seed=7, quiet=True)

    text = outcome.report.read_text()
    assert text.startswith("# stagpack benchmark report")
    for section in ("## 1. Privacy", "### Decryption policy", "## 2. Performance", "### Keyholder storage",
                    "### Metered committee work per stag", "### Composed hunts: cascade latency and settlement gas",
                    "### Shielded participation: ring signatures, proofs and anonymous ingest"):
        assert section in text
    # the shielded rows measured what they say: a ring of 16 (its signature 2 responses per member), both stags
    (ring,) = outcome.measurements.rings
    assert ring.members == 16 and ring.bytes > 32 * (2 * 16 + 4)
    assert [row.ring for row in outcome.measurements.anonymous_ingest] == [0, 16]
    # every stag's metered work: the privacy packs ran sessions, and their partial decryptions were counted
    metering = outcome.measurements.metering
    assert any(m.epochs and m.cost.sessions >= m.epochs and m.cost.steps >= 2 * m.cost.sessions for m in metering)
    assert all(m.cost.partial_bytes > m.cost.partials * 1000 for m in metering if m.cost.partials)
    pngs = sorted(outcome.directory.glob("*.png"))
    assert pngs and all(png.stat().st_size > 0 for png in pngs)
    assert (outcome.directory / "results.json").exists()

    privacy = outcome.measurements.privacy
    assert privacy is not None and privacy.scenarios
    for result in privacy.scenarios:
        baselines = [d for d in result.distinguishers if d.baseline]
        assert len(baselines) == 2
        for baseline in baselines:
            assert baseline.accuracy.advantage > 0.99, (baseline.name, baseline.accuracy)
        for run in (result.first, result.second):
            assert all(observation.result == "no-hunt" for observation in run.observations)
            assert all(observation.outside_nonzero == 0 for observation in run.observations)

    policy = outcome.measurements.policy
    forbidden = [row for row in policy if not row.control]
    assert len(forbidden) >= 13
    for row in forbidden:
        assert row.refused_by == row.asked, (row.request, row.message)
        assert set(row.errors) <= {"PolicyRefusal", "WrongPhase", "Unauthenticated"}, row
        assert row.logged >= row.asked, row
    # what is asked (a family narrowed below t + f among it) and who asks (forged, unnamed, replayed)
    narrowed = [row for row in forbidden if "narrowed" in row.request]
    assert len(narrowed) == 1 and narrowed[0].errors == ("PolicyRefusal",) and "t + f" in narrowed[0].message
    callers = [row for row in forbidden if row.errors == ("Unauthenticated",)]
    assert len(callers) == 3, [row.request for row in forbidden]
    assert any("signature does not verify" in row.message for row in callers)
    assert any("not one this service serves" in row.message for row in callers)
    assert any("replay" in row.message for row in callers)
    controls = [row for row in policy if row.control]
    assert controls and all(row.refused_by == 0 for row in controls)

    # The malicious-minority game: with the defences off the operator reads c exactly (the oracle:
    # the plaintext solver) and the forger's hunt executes; with them on, neither, and the
    # crafted-mask keyholder is reported.
    minority = outcome.measurements.minority
    assert minority is not None and "## Malicious minority" in text
    off, on = minority.settings
    assert (off.fault_bound, off.noise_test, on.fault_bound, on.noise_test) == (0, False, 1, True)
    assert off.crafted.epochs == on.crafted.epochs > 0
    assert off.crafted.exact == off.crafted.epochs and off.crafted.accuracy == 1.0
    assert on.crafted.exact == 0 and on.crafted.accuracy < on.crafted.baseline
    assert off.crafted.reported == () and on.crafted.reported == (3,)
    assert off.narrowed.forged == off.narrowed.attempts > 0 and set(off.narrowed.outcomes) == {"hunt"}
    assert on.narrowed.forged == 0 and set(on.narrowed.outcomes) == {"committee-unavailable"}
    assert all(setting.costs.hunt_seconds > 0 and setting.costs.quiet_seconds > 0 for setting in minority.settings)

    # Every stag's sessions but the ones at its last log position (its latest hunt, and a
    # validation batch at the same height) are erased, and an erased record is a fraction of a whole one.
    storage = outcome.measurements.storage
    assert len(storage) == outcome.measurements.size.parties
    for cost in storage:
        footprint = cost.footprint
        assert 0 < footprint.whole_sessions <= 2 * cost.stags and footprint.erased_sessions > 0, cost
        assert footprint.erased_session_bytes / footprint.erased_sessions < cost.whole_session_mean_bytes / 10, cost


def test_core_benchmark_still_runs_against_the_current_api() -> None:
    """`python -m stagpack.bench.core` measures the primitives directly, so an API change of the
    decryption layer breaks it without breaking any protocol test (it happened once)."""
    rows, extra = core.measure(2, 1, np.random.default_rng(1))
    assert len(rows) == 10 and all(row.fhe for row in rows)
    assert extra["ceremony_seconds"] > 0


def test_offline_decryption_benchmark_decrypts_with_every_family() -> None:
    """The 3-of-5 offline rows fuse and cross-check the facts of each prescribed family (a wrong
    family or a missing stand-in would raise inside `reveal_hunt_check`)."""
    lines = core.measure_offline([0, 2], 1, np.random.default_rng(2))
    rows = [line for line in lines if line.startswith("| 0 ") or line.startswith("| 2 ")]
    assert len(rows) == 2
    assert "{3,4,5} {1,2,5} {2,3,4}" in rows[0] and rows[0].endswith("| 1.00× |")
    assert "{3,4,5}" in rows[1] and "{1," not in rows[1] and "{2," not in rows[1]
