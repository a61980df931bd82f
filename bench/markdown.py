"""The markdown report and the JSON summary of one `stagpack bench` run (rendering only)."""

from __future__ import annotations

import datetime
import os
import platform
from dataclasses import dataclass, field
from importlib import metadata

import numpy as np

from stagpack.bench.composition import CascadeCost, GasCost
from stagpack.bench.shielded import AnonymousIngestCost, ProofCost, RingCost
from stagpack.bench.performance import ApplyCost, CeremonyCost, ClientCost, EvaluationCost, HuntCost, IngestCost, MeteredStag, StorageCost
from stagpack.bench.minority import MinorityResults
from stagpack.bench.policy import PolicyRow
from stagpack.bench.privacy import PrivacyResults
from stagpack.bench.sizes import BenchSize
from stagpack.bench.stats import CHI_SQUARE_CRITICAL_15


@dataclass
class Measurements:
    """Everything one run measured."""

    size: BenchSize
    seed: int
    command: str
    started_at: datetime.datetime
    deployment_seconds: float = 0.0
    privacy: PrivacyResults | None = None
    policy: list[PolicyRow] = field(default_factory=list)
    client: ClientCost | None = None
    ingest: list[IngestCost] = field(default_factory=list)
    replica: list[ApplyCost] = field(default_factory=list)
    storage: list[StorageCost] = field(default_factory=list)
    metering: list[MeteredStag] = field(default_factory=list)
    by_size: list[EvaluationCost] = field(default_factory=list)
    by_levels: list[EvaluationCost] = field(default_factory=list)
    hunts: list[HuntCost] = field(default_factory=list)
    ceremonies: list[CeremonyCost] = field(default_factory=list)
    minority: MinorityResults | None = None
    cascades: list[CascadeCost] = field(default_factory=list)
    gas: list[GasCost] = field(default_factory=list)
    rings: list[RingCost] = field(default_factory=list)
    proofs: list[ProofCost] = field(default_factory=list)
    anonymous_ingest: list[AnonymousIngestCost] = field(default_factory=list)
    load: tuple[float, float] = (0.0, 0.0)  # 1-minute load average at start and end
    warnings: dict[str, int] = field(default_factory=dict)  # stagpack log warnings by logger
    stages: list[tuple[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def _ms(value: float) -> str:
    return f"{value:,.1f} ms" if value < 10_000 else f"{value / 1000:,.1f} s"


def _us(value: float) -> str:
    return f"{value:,.1f} µs" if value < 1000 else _ms(value / 1000)


def _bytes(value: float) -> str:
    if value >= 1e6:
        return f"{value / 1e6:,.2f} MB"
    if value >= 1e3:
        return f"{value / 1e3:,.1f} kB"
    return f"{value:,.0f} B"


def _ratio(value: float) -> str:
    return f"{value:,.0f}×" if value >= 10 else f"{value:,.1f}×"


def _p(value: float, *, equals: bool = False) -> str:
    """A permutation p-value (its resolution is 1/(permutations + 1))."""
    if value < 0.01:
        return "< 0.01"
    return f"= {value:.2f}" if equals else f"{value:.2f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *["| " + " | ".join(row) + " |" for row in rows], ""]


def _host(measured: Measurements) -> str:
    try:
        openfhe = metadata.version("openfhe")
    except metadata.PackageNotFoundError:
        openfhe = "unknown"
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"openfhe {openfhe}, numpy {np.__version__}; 1-minute load average {measured.load[0]:.1f} at the start, "
        f"{measured.load[1]:.1f} at the end"
    )


def render_report(measured: Measurements, figures: tuple[str, ...]) -> str:
    privacy = measured.privacy
    assert privacy is not None
    size = measured.size
    lines = [
        "# stagpack benchmark report",
        "",
        f"`{measured.command}` ({size.name} mode, seed {measured.seed}), "
        f"{measured.started_at:%Y-%m-%d %H:%M %Z}, {measured.seconds / 60:.1f} min in total.",
        "",
        f"Host: {_host(measured)}. BFV ring dimension 16384, p = {privacy.plaintext_modulus}, noise-flooding threshold "
        f"decryption, one OpenMP thread. In-process deployment: {size.parties} keyholders, any {size.threshold} decrypt "
        f"(key ceremony, sealing and SQLite stores included: {measured.deployment_seconds:.1f} s). Timings are wall clock "
        "on a host that may be shared; each is shown next to the plaintext solver measured in the same run, and the "
        "ratios are the figures to compare between runs.",
        "",
    ]
    lines += _summary(measured)
    lines += _privacy_section(measured)
    lines += _minority_section(measured)
    lines += _performance_section(measured)
    lines += ["## Plots", ""] + [f"![{name}]({name})" for name in figures] + [""]
    lines += ["## Run time by stage", ""]
    lines += _table(["stage", "seconds"], [[stage, f"{seconds:.1f}"] for stage, seconds in measured.stages])
    warned = ", ".join(f"{name}: {count}" for name, count in sorted(measured.warnings.items())) or "none"
    lines += [f"stagpack log warnings during the run (counted, not printed; the policy probe's refusals are among them): {warned}.", ""]
    return "\n".join(lines)


def _summary(measured: Measurements) -> list[str]:
    privacy = measured.privacy
    assert privacy is not None and measured.client is not None
    lines = ["## Summary", ""]
    operator_view = [d for result in privacy.scenarios for d in result.distinguishers if not d.baseline]
    for result in privacy.scenarios:
        best = result.best_operator()
        low, high = best.accuracy.advantage_interval()
        baselines = ", ".join(f"{d.name.split(':')[0]} {d.accuracy.advantage:+.2f}" for d in result.distinguishers if d.baseline)
        lines.append(
            f"- **{result.scenario.title}** ({result.first.design.name} vs {result.second.design.name}): best operator-view "
            f"advantage {best.accuracy.advantage:+.2f} ({best.name}; 95 % CI {low:+.2f} … {high:+.2f}; permutation p "
            f"{_p(best.null.p_value, equals=True)}, chance alone gives {best.null.low:+.2f} … {best.null.high:+.2f}). Baselines: {baselines}."
        )
    smallest = min(operator_view, key=lambda d: d.null.p_value)
    lines.append(
        f"- Smallest permutation p-value among all {len(operator_view)} operator-view distinguishers: "
        f"{smallest.null.p_value:.3f} ({smallest.name}); × {len(operator_view)} (Bonferroni) = "
        f"{min(1.0, smallest.null.p_value * len(operator_view)):.2f}."
    )
    passed = sum(row.passed for row in privacy.uniformity)
    lines.append(
        f"- Masked check outputs: {passed}/{len(privacy.uniformity)} packs pass the χ² uniformity test on Z_p* "
        f"(critical {CHI_SQUARE_CRITICAL_15} at α = 0.001); near/far homogeneity: "
        + ", ".join(f"χ² = {result.homogeneity:.1f} ({'pass' if result.homogeneous else 'FAIL'})" for result in privacy.scenarios)
        + "."
    )
    forbidden = [row for row in measured.policy if not row.control]
    lines.append(
        f"- Decryption policy: {sum(row.as_expected for row in forbidden)}/{len(forbidden)} forbidden requests refused by "
        f"every keyholder; the honest control request was "
        + ("served." if all(row.as_expected for row in measured.policy if row.control) else "NOT served.")
    )
    client = measured.client
    lines.append(
        f"- Client: encrypt + sign an intendo {_ms(client.encrypt_sign_ms)}, {_bytes(client.ciphertext_bytes + client.envelope_bytes)} "
        f"on the wire ({_ratio(client.encrypt_sign_ms * 1000 / client.solver_insert_us)} a plaintext solver insert)."
    )
    if len(measured.by_size) > 1:
        first, last = measured.by_size[0], measured.by_size[-1]
        lines.append(
            f"- Hunt-check circuit: {_ms(first.check_ms)} on a sum of {first.pack_size:,} intendos, {_ms(last.check_ms)} on "
            f"{last.pack_size:,} (flat: the pack sum is kept incrementally); mean in-process non-firing epoch "
            f"{_ms(privacy.mean_session_seconds * 1000)}."
        )
    if measured.hunts:
        last_hunt = measured.hunts[-1]
        lines.append(f"- Hunt of {last_hunt.members} members: {_ms(last_hunt.hunt_ms)} from run_due to the certificate.")
    if measured.storage:
        stored = measured.storage[0]
        footprint = stored.footprint
        sessions = footprint.erased_sessions + footprint.whole_sessions
        kept_whole = f"; kept whole, all {sessions:,} would take ≈ {_bytes(sessions * stored.whole_session_mean_bytes)}" if footprint.whole_sessions else ""
        lines.append(
            f"- Session records on {stored.keyholder} after {sessions:,} sessions: {footprint.erased_sessions:,} erased "
            f"({_bytes(footprint.erased_session_bytes)}), {footprint.whole_sessions:,} whole ({_bytes(footprint.whole_session_bytes)})"
            f"{kept_whole}."
        )
    if measured.ceremonies:
        lines.append("- Key ceremony: " + ", ".join(f"n = {c.parties}: {c.seconds:.1f} s" for c in measured.ceremonies) + ".")
    if measured.minority:
        described = []
        for setting in measured.minority.settings:
            crafted, narrowed = setting.crafted, setting.narrowed
            described.append(
                f"{setting.name}: c recovered exactly in {crafted.exact}/{crafted.epochs} epochs through a crafted mask, "
                f"{narrowed.forged}/{narrowed.attempts} forged hunts executed through a narrowed family"
                + (f", keyholder(s) {', '.join(map(str, crafted.reported))} reported misbehaving" if crafted.reported else "")
            )
        lines.append("- Malicious minority (operator + one keyholder of 2-of-3): " + "; ".join(described) + ".")
    return lines + [""]


def _privacy_section(measured: Measurements) -> list[str]:
    privacy = measured.privacy
    assert privacy is not None
    size = measured.size
    lines = [
        "## 1. Privacy: the operator-view distinguishing game",
        "",
        f"Each scenario is a pair of count stags (L = {size.levels}) of equal public size that never fire. Both run in the "
        f"same deployment for {size.epochs} epochs, in a random order each epoch. The adversary is the operator: it sees "
        "every ciphertext (bytes), every message size, the timing of every session and keyholder call, and every "
        "decrypted output — in a non-firing epoch that is the fused hunt-check vector (d ⊙ window) ⊗ R, seen through the "
        "aggregator's decryption observer (the operator's own view). One epoch is one observation; the adversary guesses which "
        f"pack produced it. Distinguishers are fitted on {size.folds - 1} of {size.folds} folds and scored on the held-out "
        "fold (stratified cross-validation), so a rule that fits noise scores ≈ 1/2.",
        "",
        "**Advantage = 2·accuracy − 1** (for balanced classes, P[guess A | A] − P[guess A | B]): 0 is chance, 1 a "
        "perfect distinguisher; the interval is the 95 % Wilson interval of the accuracy mapped the same way. Because "
        "cross-validated estimates spread a little wider than a binomial, each distinguisher is also re-run on "
        f"{size.permutations} random relabellings of the same observations: the *null* column is the central 95 % of "
        "what it scores by chance, and p is the fraction of relabellings scoring at least the observed advantage. The two "
        "baselines are what a user might pick instead: a public progress counter (as crowdfunding sites show; here the "
        "solver's distance to firing, the fewest newcomers that would make a hunt fire) and decrypting the count "
        "vector c directly.",
        "",
    ]
    rows = []
    for result in privacy.scenarios:
        for run in (result.first, result.second):
            rows.append([run.design.name, run.design.describe(), str(run.observations[0].distance), str(len(run.observations))])
    lines += _table(["pack", "intendos", "distance to firing (hidden)", "epochs observed"], rows)
    for result in privacy.scenarios:
        lines += [f"### {result.scenario.title}", ""]
        rows = []
        for d in result.distinguishers:
            low, high = d.accuracy.advantage_interval()
            name = f"**{d.name}**" if d.baseline else d.name
            rows.append([
                name, d.observable, f"{d.accuracy.rate:.2f}", f"{d.accuracy.advantage:+.2f}", f"{low:+.2f} … {high:+.2f}",
                f"{d.null.low:+.2f} … {d.null.high:+.2f}", _p(d.null.p_value), str(d.accuracy.trials),
            ])
        lines += _table(["distinguisher", "observable", "accuracy", "advantage", "95 % interval", "null 95 %", "p", "trials"], rows)
        difference, low, high = result.timing_difference
        mean = np.mean([o.session_seconds for o in result.first.observations]) * 1000
        lines += [
            f"Pooled over all epochs: mean session time {result.second.design.name} − {result.first.design.name} = "
            f"{difference:+.1f} ms (95 % bootstrap interval {low:+.1f} … {high:+.1f}; mean session {mean:.0f} ms); "
            f"bytes per session {_bytes(float(np.mean([o.message_bytes for o in result.first.observations])))} vs "
            f"{_bytes(float(np.mean([o.message_bytes for o in result.second.observations])))}.",
            "",
        ]
    lines += [
        "The best operator-view figure is the maximum over many noisy estimates, so it is biased upwards: with this "
        "many distinguishers one p-value in twenty falls below 0.05 by chance, hence the Bonferroni figure in the "
        "summary. Negative values are noise too (a threshold fitted on some folds can point the wrong way on the "
        "held-out fold). Message sizes and call counts are identical in every non-firing epoch, so those "
        "distinguishers score exactly 1/2. Over k observed epochs the masks are fresh each time, so an "
        "adversary's advantage is at most k times the per-epoch advantage; the pooled tests below use every slot of "
        "every epoch at once.",
        "",
        "Not covered by this game, by design or as documented leakage (DESIGN.md §3): what a *fired* hunt reveals "
        "(its level and members), the public pack size and the timing of submissions and withdrawals (both packs of "
        "a scenario have the same size and were submitted before the first epoch), and validation sessions (they "
        "decrypt one valid/invalid bit per batch and do not depend on thresholds).",
        "",
        "### Uniformity of the masked outputs",
        "",
        f"Every masked slot (levels 1…L−1 of both rows, every epoch) of each pack, in {16} equal buckets of Z_p*; chance "
        f"zeros are expected at rate 1/p per slot (DESIGN.md §3 step 5). Critical value χ²(15) = {CHI_SQUARE_CRITICAL_15} "
        "at α = 0.001.",
        "",
    ]
    rows = [
        [row.pack, f"{row.slots:,}", f"{row.zeros} ({row.expected_zeros:.2f})", f"{row.chi_square:.1f}", "pass" if row.passed else "FAIL"]
        for row in privacy.uniformity
    ]
    lines += _table(["pack", "masked slots", "zeros (expected)", "χ² vs uniform", "verdict"], rows)
    rows = [
        [f"{r.first.design.name} vs {r.second.design.name}", f"{r.homogeneity:.1f}", "pass" if r.homogeneous else "FAIL"]
        for r in privacy.scenarios
    ]
    lines += ["Two-sample homogeneity (2 × 16 table, df = 15):", ""] + _table(["packs", "χ²", "verdict"], rows)
    outside = sum(o.outside_nonzero for r in privacy.scenarios for run in (r.first, r.second) for o in run.observations)
    lines += [f"Slots outside the window (slot 0, unused slots) that decrypted non-zero: {outside}.", ""]
    lines += [
        "### Decryption policy (DESIGN.md §4)",
        "",
        "Requests sent by the benchmark, playing a malicious aggregator, straight to every keyholder of the in-process "
        "deployment (through `LocalKeyholder`, records byte-encoded). Refused = an error and no partial decryption.",
        "",
    ]
    rows = []
    for row in measured.policy:
        verdict = "served (control)" if row.control and row.refused_by == 0 else f"{row.refused_by}/{row.asked} refused"
        if not row.as_expected:
            verdict = f"**UNEXPECTED: {verdict}**"
        rows.append([row.request, row.would_reveal, verdict, ", ".join(row.errors) or "—", row.message.replace("|", "/"), str(row.logged)])
    lines += _table(["request", "would reveal", "outcome", "error", "first keyholder's message", "refusals logged"], rows)
    return lines


def _minority_section(measured: Measurements) -> list[str]:
    minority = measured.minority
    if minority is None:
        return []
    lines = [
        "## Malicious minority",
        "",
        "The operator colluding with one keyholder of a 2-of-3 committee (`stagpack.bench.minority`, the attacks of "
        "`stagpack.bench.attacks`), against the protocol with its defences off — no noise test, any t decrypt "
        "(f = 0): a benchmark-only setting that production configuration refuses — and on (noise test, f = 1), in "
        f"the same run, L = {minority.levels}. **Crafted mask**: keyholder 3's check mask carries κ = Δ/2^39 in its "
        "noise; each epoch the operator reads the check's noise from the partials it fetched and estimates "
        "c[ℓ] = d[ℓ] + ℓ at every level, scored against the plaintext solver, next to the best guess from public "
        "facts (pack size and the threshold distribution). **Narrowed family**: the operator leaves keyholder 3 "
        "out and keyholder 1 shifts its partials to fire a hunt that no threshold allows.",
        "",
    ]
    rows = []
    for setting in minority.settings:
        crafted, narrowed = setting.crafted, setting.narrowed
        rows.append([
            setting.name, f"{setting.fault_bound}", "on" if setting.noise_test else "off",
            f"{crafted.exact}/{crafted.epochs}", f"{crafted.accuracy:.0%}", f"{crafted.baseline:.0%}",
            ", ".join(map(str, crafted.reported)) or "none",
            f"{narrowed.forged}/{narrowed.attempts}", ", ".join(sorted(set(narrowed.outcomes))),
        ])
    lines += _table(
        ["setting", "f", "noise test", "epochs c recovered exactly", "levels right (reading)", "levels right (public guess)",
         "reported misbehaving", "forged hunts executed", "epoch results under the forger"],
        rows,
    )
    cost_rows = [
        [setting.name, _ms(1000 * setting.costs.validation_seconds), _ms(1000 * setting.costs.hunt_seconds),
         _ms(1000 * setting.costs.quiet_seconds)]
        for setting in minority.settings
    ]
    members = minority.settings[0].costs.members
    if len(minority.settings) == 2:
        off, on = (setting.costs for setting in minority.settings)
        cost_rows.append([
            "ratio on / off", f"{on.validation_seconds / off.validation_seconds:.2f}×",
            f"{on.hunt_seconds / off.hunt_seconds:.2f}×", f"{on.quiet_seconds / off.quiet_seconds:.2f}×",
        ])
    lines += [
        f"What the defences cost (attackers disarmed; wall clock, in-process): a validation batch of {members} "
        f"intendos, the epoch that fires a {members}-member hunt, and a non-firing epoch of a {members}-intendo pack.",
        "",
    ]
    lines += _table(["setting", f"validation batch ({members})", f"{members}-member hunt", "non-firing epoch"], cost_rows)
    return lines


def _performance_section(measured: Measurements) -> list[str]:
    client = measured.client
    assert client is not None
    lines = [
        "## 2. Performance, next to the plaintext solver",
        "",
        "### Client and aggregator",
        "",
    ]
    rows = [
        [
            "encrypt + sign one intendo (encode, encrypt, compress, serialize, Ed25519)",
            _ms(client.encrypt_sign_ms), f"{_us(client.solver_insert_us)} (solver insert)", _ratio(client.encrypt_sign_ms * 1000 / client.solver_insert_us),
        ],
        [
            "bytes per intendo (ciphertext + signed envelope)",
            f"{_bytes(client.ciphertext_bytes)} + {_bytes(client.envelope_bytes)}", "8 B (threshold, weight)",
            _ratio((client.ciphertext_bytes + client.envelope_bytes) / 8),
        ],
    ]
    for ingest in measured.ingest:
        rows.append([
            f"ingest: {ingest.transport} ({ingest.count} intendos; median {_ms(ingest.median_submit_ms)} each)",
            f"{ingest.per_second:,.1f} /s", f"{ingest.solver_inserts_per_second:,.0f} /s (solver inserts)",
            _ratio(ingest.solver_inserts_per_second / ingest.per_second),
        ])
    lines += _table(["operation", "stagpack", "plaintext solver", "ratio"], rows)
    if not any("gRPC" in ingest.transport for ingest in measured.ingest):
        lines += ["Ingest over gRPC (`LocalDeployment` processes): not measured at this size.", ""]
    lines += [
        "### Keyholder replica apply",
        "",
        "`PackState.apply` of every stag's whole log in this run (signatures, rules, ciphertext parsing, Σ additions; "
        "the replica's SQLite I/O not included).",
        "",
    ]
    insert_rate = 1e6 / client.solver_insert_us
    rows = []
    for cost in measured.replica:
        carried = f"{cost.intendos} intendos" if cost.intendos else "—"
        rows.append([cost.kind, str(cost.entries), carried, _ms(cost.seconds * 1000 / max(cost.entries, 1)), f"{cost.per_second:,.1f}"])
    lines += _table(["entry kind", "entries", "intendos carried/counted", "mean per entry", "entries/s"], rows)
    lines += [f"Plaintext solver for comparison: {insert_rate:,.0f} inserts/s.", ""]
    lines += _storage_section(measured)
    lines += _metering_section(measured)
    lines += _composition_section(measured)
    lines += _shielded_section(measured)
    lines += [
        "### Epoch evaluation vs pack size",
        "",
        "The hunt-check circuit (d = Σ − ramp, window, ⊗ R) on pack sums of N ciphertexts, L = 64. The sums are built by "
        "adding the same four fresh ciphertexts repeatedly (for timing only: the circuit's cost does not depend on the "
        "values). Note that one stag holds at most L − 1 ≤ 8191 intendos, so 10⁴ is beyond a single stag and shows the "
        "trend only. The second column is what re-summing the pack from scratch each epoch would cost; stagpack keeps Σ "
        "incrementally (one addition per submit or withdrawal).",
        "",
    ]
    rows = [
        [f"{c.pack_size:,}", _ms(c.check_ms), _ms(c.from_scratch_ms), _us(c.solver_query_us), _ratio(c.check_ms * 1000 / c.solver_query_us)]
        for c in measured.by_size
    ]
    lines += _table(["intendos in Σ", "check circuit", "Σ from scratch", "solver query", "ratio"], rows)
    lines += ["### Epoch evaluation vs L", ""]
    rows = [[str(c.levels), _ms(c.check_ms), _us(c.solver_query_us), _ratio(c.check_ms * 1000 / c.solver_query_us)] for c in measured.by_levels]
    pack = measured.by_levels[0].pack_size if measured.by_levels else 0
    lines += [f"Pack sum of {pack} ciphertexts; every L uses all 16384 slots, so the circuit costs the same.", ""]
    lines += _table(["L", "check circuit", "solver query", "ratio"], rows)
    lines += _hunt_and_ceremony_tables(measured)
    return lines


def _storage_section(measured: Measurements) -> list[str]:
    lines = [
        "### Keyholder storage",
        "",
        "Each keyholder's store after everything above (record payloads; SQLite's page overhead not counted). A "
        "session that can never be served again (its log height passed, or a later epoch's hunt opened) keeps only "
        "what the policy reads; its masks and released partials are erased. The last column is what the session "
        "records would take if every one were kept whole (estimated from the whole ones). The plaintext solver keeps "
        "8 B per intendo.",
        "",
    ]
    rows = []
    for cost in measured.storage:
        footprint = cost.footprint
        sessions = footprint.erased_sessions + footprint.whole_sessions
        per_intendo = footprint.ciphertext_bytes / footprint.ciphertexts if footprint.ciphertexts else 0.0
        rows.append([
            cost.keyholder, f"{footprint.log_entries:,} ({_bytes(footprint.log_bytes)})",
            f"{footprint.ciphertexts:,} ({_bytes(footprint.ciphertext_bytes)}; {_bytes(per_intendo)} each)",
            f"{footprint.erased_sessions:,} ({_bytes(footprint.erased_session_bytes)})",
            f"{footprint.whole_sessions:,} ({_bytes(footprint.whole_session_bytes)})",
            f"≈ {_bytes(sessions * cost.whole_session_mean_bytes)}" if footprint.whole_sessions else "—",
        ])
    lines += _table(["keyholder", "log entries", "intendo ciphertexts", "sessions erased", "sessions whole", "all kept whole"], rows)
    return lines


def _metering_section(measured: Measurements) -> list[str]:
    if not measured.metering:
        return []
    lines = [
        "### Metered committee work per stag",
        "",
        "What `stag status` reports for every stag of the in-process deployment at the end of the run (sessions, "
        "decryption steps, keyholder calls, partial decryptions received and their bytes, failed and retried work "
        "included): the measurements fees per submission and per epoch can be set from. Per epoch: the stag's totals "
        "over the epochs it was evaluated in (its validation sessions included).",
        "",
    ]
    rows = []
    for stag in measured.metering:
        cost, epochs = stag.cost, max(stag.epochs, 1)
        rows.append([
            stag.title, str(stag.intendos), str(stag.epochs), str(cost.sessions), str(cost.steps), f"{cost.calls:,}",
            f"{cost.partials:,}", _bytes(cost.partial_bytes), _bytes(cost.partial_bytes / epochs),
        ])
    lines += _table(["stag", "intendos", "epochs", "sessions", "steps", "keyholder calls", "partial decryptions",
                     "partial bytes", "bytes per epoch"], rows)
    return lines


def _composition_section(measured: Measurements) -> list[str]:
    lines = [
        "### Composed hunts: cascade latency and settlement gas",
        "",
        "Cascade: in the in-process deployment, a root stag's hunt certificate → its bundle executed by the ledger "
        "(each dependent armed, checked at once — a hunt session that binds, since every stag holds one intendo that "
        "fires alone — and the bundle's one transaction), for a chain of d dependents below the root and for w "
        "dependents beside each other; next to the root's own run to its certificate in the same cascade.",
        "",
    ]
    lines += _table(
        ["shape", "hunts in the bundle", "root: its run to the certificate (validation and hunt)", "root certificate → bundle executed", "× root"],
        [[c.shape, str(c.hunts), _ms(c.root_seconds * 1000), _ms(c.cascade_seconds * 1000),
          f"{c.cascade_seconds / c.root_seconds:.2f}" if c.root_seconds else "–"] for c in measured.cascades],
    )
    if measured.gas:
        base = measured.gas[0].gas
        lines += [
            "Gas of the settlement contract's `execute` (Vyper, py-evm embedded through web3.py), 2-of-3 attestations "
            "checked with `ecrecover` per hunt; next to one hunt of one member in the same run.",
            "",
        ]
        lines += _table(
            ["hunts in the bundle", "members per hunt", "gas", "gas per member", "× one hunt of one member"],
            [[str(g.hunts), str(g.members), f"{g.gas:,}", f"{g.gas / (g.hunts * g.members):,.0f}", f"{g.gas / base:.2f}"]
             for g in measured.gas],
        )
    return lines


def _shielded_section(measured: Measurements) -> list[str]:
    if not measured.rings:
        return []
    lines = [
        "### Shielded participation: ring signatures, proofs and anonymous ingest",
        "",
        "An anonymous intendo's authorization: the linkable ring signature over the eligibility list that also proves "
        "the encrypted identity is the signer's (`stagpack.shield.ring`), signed and verified against the ring size; "
        "next to one Ed25519 signature and its check, the ordinary intendo's, timed in the same run.",
        "",
    ]
    lines += _table(
        ["ring members", "sign", "verify", "bytes", "× Ed25519 sign", "× Ed25519 verify"],
        [[str(r.members), _ms(r.sign_ms), _ms(r.verify_ms), f"{r.bytes:,}", f"{r.sign_ms / r.ed25519_sign_ms:,.0f}",
          f"{r.verify_ms / r.ed25519_verify_ms:,.0f}"] for r in measured.rings],
    )
    lines += _table(
        ["proof", "prove", "verify", "bytes"],
        [[p.what, _ms(p.prove_ms) if p.prove_ms else "–", _ms(p.verify_ms), str(p.bytes)] for p in measured.proofs],
    )
    if measured.anonymous_ingest:
        base = measured.anonymous_ingest[0]
        lines += [
            "Ingest: the same number of prepared intendos into an ordinary count stag and an anonymous one, in one "
            "deployment; `Aggregator.submit` per intendo (median) and one replica applying the stag's log.",
            "",
        ]
        lines += _table(
            ["stag", "intendos", "submit per intendo", "× ordinary", "replica apply per intendo", "× ordinary", "envelope bytes"],
            [[f"anonymous, ring {c.ring}" if c.ring else "ordinary", str(c.intendos), _ms(c.submit_ms),
              f"{c.submit_ms / base.submit_ms:.2f}", _ms(c.apply_ms), f"{c.apply_ms / base.apply_ms:.2f}", f"{c.envelope_bytes:,}"]
             for c in measured.anonymous_ingest],
        )
    return lines


def _hunt_and_ceremony_tables(measured: Measurements) -> list[str]:
    lines = ["### Hunt-to-certificate latency", ""]
    if measured.hunts:
        lines += [
            "In-process deployment: `Aggregator.run_due` start → hunt certificate appended and executed by the ledger "
            "(open, masks, check, confirmation, membership, certify with every keyholder). Consecutive hunts on one stag; "
            "the members (all pending intendos) were validated before the epoch (validation shown separately).",
            "",
        ]
        rows = [
            [
                str(h.members), _ms(h.hunt_ms), _ms(h.membership_circuit_ms), _us(h.solver_us), _ratio(h.hunt_ms * 1000 / h.solver_us),
                f"{h.validation_seconds:.1f} s", "yes" if h.matches_solver else "**NO**",
            ]
            for h in measured.hunts
        ]
        lines += _table(
            ["members", "hunt latency", "membership circuit (one party)", "solver hunt()", "ratio", "validation beforehand", "= solver"], rows
        )
        steps = [step for step in ("open", "reveal", "check", "confirm", "membership", "certify") if any(step in h.steps_ms for h in measured.hunts)]
        lines += ["Where the time goes: the slowest keyholder's answer to each round (keyholders answer in parallel; the "
                  "aggregator's own recomputation, fusion and log writes make up the rest).", ""]
        lines += _table(["members", *steps], [[str(h.members), *[_ms(h.steps_ms.get(step, 0.0)) for step in steps]] for h in measured.hunts])
    else:
        lines += ["Not measured at this size.", ""]
    lines += ["### Key ceremony", ""]
    if measured.ceremonies:
        lines += [
            "`run_ceremony` over in-process `DkgParty` peers (every record byte-encoded), t a majority; no plaintext "
            "counterpart.",
            "",
        ]
        lines += _table(["n", "t", "seconds"], [[str(c.parties), str(c.threshold), f"{c.seconds:.1f}"] for c in measured.ceremonies])
    else:
        lines += ["Not measured at this size.", ""]
    return lines


def summarize(measured: Measurements) -> dict[str, object]:
    """The figures of the report as JSON-friendly data."""
    privacy = measured.privacy
    assert privacy is not None
    return {
        "command": measured.command,
        "size": measured.size.name,
        "seed": measured.seed,
        "started_at": measured.started_at.isoformat(),
        "seconds": round(measured.seconds, 1),
        "load_average": measured.load,
        "privacy": [
            {
                "scenario": result.scenario.title,
                "distinguishers": [
                    {
                        "name": d.name, "observable": d.observable, "accuracy": d.accuracy.rate, "advantage": d.accuracy.advantage,
                        "interval": d.accuracy.advantage_interval(), "trials": d.accuracy.trials,
                        "null": [d.null.low, d.null.high], "p_value": d.null.p_value,
                    }
                    for d in result.distinguishers
                ],
                "homogeneity_chi_square": result.homogeneity,
                "timing_difference_ms": result.timing_difference,
            }
            for result in privacy.scenarios
        ],
        "uniformity": [{"pack": r.pack, "slots": r.slots, "zeros": r.zeros, "chi_square": r.chi_square} for r in privacy.uniformity],
        "metering": [
            {"stag": m.title, "intendos": m.intendos, "epochs": m.epochs, "sessions": m.cost.sessions, "steps": m.cost.steps,
             "keyholder_calls": m.cost.calls, "partial_decryptions": m.cost.partials, "partial_bytes": m.cost.partial_bytes}
            for m in measured.metering
        ],
        "minority": None if measured.minority is None else {
            "levels": measured.minority.levels,
            "settings": [
                {
                    "name": m.name, "fault_bound": m.fault_bound, "noise_test": m.noise_test,
                    "crafted_mask": {
                        "epochs": m.crafted.epochs, "exact": m.crafted.exact, "accuracy": m.crafted.accuracy,
                        "public_guess_accuracy": m.crafted.baseline, "reported": list(m.crafted.reported),
                    },
                    "narrowed_family": {"attempts": m.narrowed.attempts, "forged": m.narrowed.forged, "outcomes": m.narrowed.outcomes},
                    "costs": dict(m.costs.__dict__),
                }
                for m in measured.minority.settings
            ],
        },
        "policy": [{"request": r.request, "refused_by": r.refused_by, "asked": r.asked, "errors": r.errors, "control": r.control} for r in measured.policy],
        "client": measured.client.__dict__ if measured.client else None,
        "ingest": [dict(i.__dict__, per_second=i.per_second) for i in measured.ingest],
        "replica": [dict(r.__dict__, per_second=r.per_second) for r in measured.replica],
        "storage": [dict(s.footprint.__dict__, keyholder=s.keyholder) for s in measured.storage],
        "evaluation_by_size": [c.__dict__ for c in measured.by_size],
        "evaluation_by_levels": [c.__dict__ for c in measured.by_levels],
        "hunts": [h.__dict__ for h in measured.hunts],
        "ceremonies": [c.__dict__ for c in measured.ceremonies],
        "rings": [r.__dict__ for r in measured.rings],
        "proofs": [p.__dict__ for p in measured.proofs],
        "anonymous_ingest": [c.__dict__ for c in measured.anonymous_ingest],
        "deployment_seconds": measured.deployment_seconds,
    }
