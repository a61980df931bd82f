"""The report's figures (matplotlib, Agg backend: no display needed). Each function writes one
PNG and returns its file name."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
import numpy as np  # noqa: E402

from stagpack.bench.performance import CeremonyCost, EvaluationCost, HuntCost  # noqa: E402
from stagpack.bench.privacy import PrivacyResults  # noqa: E402
from stagpack.bench.stats import BUCKETS, bucket_counts  # noqa: E402

OPERATOR = "#3b6ea8"
BASELINE = "#c0504d"
PLAINTEXT = "#7f7f7f"


def _save(figure: Figure, directory: Path, name: str, bottom: float = 0.0) -> str:
    figure.tight_layout(rect=(0, bottom, 1, 1))
    figure.savefig(directory / name, dpi=110)
    plt.close(figure)
    return name


def plot_advantages(privacy: PrivacyResults, directory: Path) -> str:
    """Each distinguisher's advantage with its 95 % interval, one panel per scenario."""
    scenarios = privacy.scenarios
    rows = max(len(result.distinguishers) for result in scenarios)
    figure, axes = plt.subplots(1, len(scenarios), figsize=(6.5 * len(scenarios), 0.42 * rows + 1.6), squeeze=False, sharey=True)
    for axis, result in zip(axes[0], scenarios):
        names = [d.name for d in result.distinguishers]
        values = np.array([d.accuracy.advantage for d in result.distinguishers])
        intervals = np.array([d.accuracy.advantage_interval() for d in result.distinguishers])
        errors = np.clip(np.vstack([values - intervals[:, 0], intervals[:, 1] - values]), 0, None)
        colours = [BASELINE if d.baseline else OPERATOR for d in result.distinguishers]
        positions = np.arange(len(names))[::-1]
        for position, d in zip(positions, result.distinguishers):
            axis.fill_betweenx([position - 0.4, position + 0.4], d.null.low, d.null.high, color="#e3e3e3", zorder=0)
        axis.barh(positions, values, xerr=errors, color=colours, capsize=3, height=0.6, zorder=2)
        axis.axvline(0, color="black", linewidth=0.8)
        axis.set_xlim(-1.05, 1.05)
        axis.set_yticks(positions)
        axis.set_yticklabels(names, fontsize=8)
        axis.set_xlabel("advantage = 2·accuracy − 1, 95 % Wilson interval")
        axis.set_title(result.scenario.title, fontsize=10)
    figure.legend(
        handles=[Rectangle((0, 0), 1, 1, color=OPERATOR), Rectangle((0, 0), 1, 1, color=BASELINE), Rectangle((0, 0), 1, 1, color="#e3e3e3")],
        labels=["operator view of stagpack", "baselines (progress counter, decrypting c)", "chance: 95 % over permuted labels"],
        loc="lower center", ncol=3 if len(scenarios) > 1 else 2, fontsize=8, bbox_to_anchor=(0.5, 0.0),
    )
    return _save(figure, directory, "privacy_advantage.png", bottom=0.05 if len(scenarios) > 1 else 0.08)


def plot_masked_histogram(privacy: PrivacyResults, directory: Path) -> str:
    """Bucket frequencies of the masked check outputs of each pack against uniform on Z_p*."""
    figure, axis = plt.subplots(figsize=(7, 3.6))
    edges = np.arange(BUCKETS)
    runs = {run.design.name: run for result in privacy.scenarios for run in (result.first, result.second)}
    width = 0.8 / max(len(runs), 1)
    for index, (name, run) in enumerate(runs.items()):
        counts = bucket_counts(run.values(), privacy.plaintext_modulus)
        axis.bar(edges + index * width - 0.4 + width / 2, counts / max(counts.sum(), 1), width=width, label=name)
    axis.axhline(1 / BUCKETS, color="black", linestyle="--", linewidth=1, label="uniform")
    axis.set_xlabel(f"bucket of Z_p* (p = {privacy.plaintext_modulus}, {BUCKETS} buckets)")
    axis.set_ylabel("fraction of masked slots")
    axis.set_title("Decrypted hunt checks of non-firing packs")
    axis.legend(fontsize=8, ncol=3)
    return _save(figure, directory, "privacy_masked_outputs.png")


def plot_evaluation_by_size(costs: list[EvaluationCost], directory: Path) -> str:
    figure, axis = plt.subplots(figsize=(6.5, 4))
    sizes = [cost.pack_size for cost in costs]
    axis.plot(sizes, [cost.check_ms for cost in costs], "o-", color=OPERATOR, label="hunt-check circuit on the kept Σ (per epoch)")
    axis.plot(sizes, [cost.from_scratch_ms for cost in costs], "s--", color=BASELINE, label="re-summing the pack from scratch")
    axis.plot(sizes, [cost.solver_query_us / 1000 for cost in costs], "^:", color=PLAINTEXT, label="plaintext solver query")
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("intendos in the pack sum")
    axis.set_ylabel("milliseconds")
    axis.set_title("Epoch evaluation vs pack size")
    axis.legend(fontsize=8)
    axis.grid(True, which="both", alpha=0.3)
    return _save(figure, directory, "evaluation_vs_pack_size.png")


def plot_evaluation_by_levels(costs: list[EvaluationCost], directory: Path) -> str:
    figure, axis = plt.subplots(figsize=(6.5, 4))
    levels = [cost.levels for cost in costs]
    axis.plot(levels, [cost.check_ms for cost in costs], "o-", color=OPERATOR, label="hunt-check circuit")
    axis.plot(levels, [cost.solver_query_us / 1000 for cost in costs], "^:", color=PLAINTEXT, label="plaintext solver query")
    axis.set_xscale("log", base=2)
    axis.set_yscale("log")
    axis.set_xlabel("levels L")
    axis.set_ylabel("milliseconds")
    axis.set_title(f"Epoch evaluation vs L (pack of {costs[0].pack_size})" if costs else "Epoch evaluation vs L")
    axis.legend(fontsize=8)
    axis.grid(True, which="both", alpha=0.3)
    return _save(figure, directory, "evaluation_vs_levels.png")


def plot_hunts(costs: list[HuntCost], directory: Path) -> str:
    figure, axis = plt.subplots(figsize=(6.5, 4))
    members = [cost.members for cost in costs]
    axis.plot(members, [cost.hunt_ms / 1000 for cost in costs], "o-", color=OPERATOR, label="run_due → certificate appended")
    axis.plot(members, [cost.membership_circuit_ms / 1000 for cost in costs], "s--", color=BASELINE, label="membership circuit alone (one party)")
    axis.set_xlabel("hunt members (all pending intendos)")
    axis.set_ylabel("seconds")
    axis.set_ylim(bottom=0)
    axis.set_title("Hunt-to-certificate latency (in-process deployment)")
    axis.legend(fontsize=8)
    axis.grid(True, alpha=0.3)
    return _save(figure, directory, "hunt_latency_vs_members.png")


def plot_ceremonies(costs: list[CeremonyCost], directory: Path) -> str:
    figure, axis = plt.subplots(figsize=(5.5, 3.8))
    axis.plot([cost.parties for cost in costs], [cost.seconds for cost in costs], "o-", color=OPERATOR)
    for cost in costs:
        axis.annotate(f"t = {cost.threshold}", (cost.parties, cost.seconds), textcoords="offset points", xytext=(4, -12), fontsize=8)
    axis.set_xlabel("committee size n")
    axis.set_ylabel("seconds")
    axis.set_ylim(bottom=0)
    axis.set_xticks([cost.parties for cost in costs])
    axis.set_title("Key ceremony (run_ceremony, one process)")
    axis.grid(True, alpha=0.3)
    return _save(figure, directory, "dkg_vs_committee_size.png")
