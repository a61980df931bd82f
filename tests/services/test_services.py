"""The committee as real services: separate keyholder and aggregator processes talking gRPC on
loopback ports (issue: the committee as gRPC services).

One 5-keyholder deployment (any 3 decrypt) serves the module; each test uses its own stags.
Hunts are judged by the plaintext solver replayed to each hunt's log height.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable, Iterator

import pytest

from stagpack import codec
from stagpack.accounts import Account
from stagpack.edge.ledger import SqliteLedger
from stagpack.encoding import StagKind, Threshold
from stagpack.identity import SigningIdentity
from stagpack.app.launcher import LocalDeployment, health_status
from stagpack.log import CertificateBundle
from stagpack.edge.wire import spec_from_proto
from stagpack.terms import FeeTerms

from support.services import CAPITAL_TAG, Services, random_count_thresholds, wait_for

pytestmark = [pytest.mark.processes]


@pytest.fixture(scope="module")
def services(scratch: Callable[[str], Path]) -> Iterator[Services]:
    deployment = LocalDeployment.create(scratch("services"), 5, 3, tick_millis=200)
    deployment.start()
    try:
        yield Services(deployment)
    finally:
        deployment.stop()


def test_ceremony_over_grpc_gives_every_keyholder_the_signed_committee(services: Services) -> None:
    deployment = services.deployment
    bundle = deployment.bundle
    assert bundle is not None
    bundle.transcript.verify()
    body = bundle.transcript.body
    assert (body.parties, body.threshold) == (5, 3)
    from stagpack.edge.remote import RemoteKeyholder

    for index, service in enumerate(deployment.keyholders, start=1):
        info = RemoteKeyholder(service.address, SigningIdentity(), index).info()  # GetIdentity is public: any caller
        assert info.ready and bytes(info.committee_id) == bundle.committee_id and info.index == index
        assert bytes(info.verify_key) == body.participants[index - 1].verify_key
        assert health_status(service.address) == "SERVING"
    assert health_status(services.address) == "SERVING"
    # a client checks the joint key against every keyholder's signature before encrypting
    context, joint = services.client.encryption_context()
    assert joint.digest() == body.joint_public_key
    assert services.client.committee_id == bundle.committee_id


def test_intendos_from_several_processes_hunt_like_the_solver(services: Services, tmp_path: Path) -> None:
    """48 intendos from four participant processes at once (46 of them hunt), then arrivals and
    withdrawals; the protocol tier's larger packs (hundreds of intendos) run in process."""
    rng = random.Random(11)
    stag = services.new_stag(levels=160, epoch_millis=1500)
    thresholds = random_count_thresholds(rng, 48, 160, 3, 50)
    workers, conditions = services.submit_from_processes(stag, thresholds, processes=4, directory=tmp_path)
    acknowledged = services.collect(stag, workers)
    assert len(acknowledged) == len(thresholds), "every participant process got its submissions acknowledged"
    services.register(stag, acknowledged, conditions)
    services.settle(stag)
    wait_for(lambda: stag.check_new_hunts(services.client) or stag.hunts_checked, "a hunt equal to the solver's")
    # a few more arrivals, withdrawals of counted intendos, another epoch: still the solver's hunts
    for member in list(stag.members.values())[:3]:
        if services.client.intendo_status(stag.stag_id, member.intendo_id).status == "counted":
            services.withdraw(stag, member)
    for threshold in random_count_thresholds(rng, 10, 160, 3, 40):
        services.submit(stag, threshold)
    services.settle(stag)
    stag.check_new_hunts(services.client)
    expected_final = stag.oracle.expected_hunt(int(services.client.status(stag.stag_id).log_height))
    assert expected_final is None, "the solver expects a hunt that has not fired"

    # the certificate verifies on its own, with the CLI too; a tampered one does not
    status = services.client.status(stag.stag_id)
    hunt = status.hunts[0]
    bundle = codec.decode(CertificateBundle, hunt.certificate_bundle)
    bundle.verify()
    assert spec_from_proto(status.spec).stag_id == stag.stag_id
    path = tmp_path / "hunt.certificate"
    path.write_bytes(bytes(hunt.certificate_bundle))
    verified = subprocess.run([sys.executable, "-m", "stagpack", "verify", str(path)], capture_output=True, text=True)
    assert verified.returncode == 0 and "valid hunt certificate" in verified.stdout
    tampered = bytearray(hunt.certificate_bundle)
    tampered[-40] ^= 1  # inside the last keyholder signature
    path.write_bytes(bytes(tampered))
    rejected = subprocess.run([sys.executable, "-m", "stagpack", "verify", str(path)], capture_output=True, text=True)
    assert rejected.returncode == 2 and "error:" in rejected.stderr


def _read_lines(process: subprocess.Popen[str], into: list[str], first_ack: threading.Event) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        into.append(line)
        if '"intendo_id"' in line and sum('"intendo_id"' in seen for seen in into) >= 5:
            first_ack.set()
    first_ack.set()


@pytest.mark.slow
def test_kill_minus_nine_loses_no_acknowledged_intendo_and_hunts_stay_right(services: Services, tmp_path: Path) -> None:
    rng = random.Random(23)
    deployment = services.deployment
    committee_fees, operator_fees = Account(SigningIdentity().verify_key, "fees"), Account(SigningIdentity().verify_key, "fees")
    stag = services.new_stag(  # with fees: 1 per submission (charged when logged), 1 per executed member
        kind=StagKind.CAPITAL, levels=400, epoch_millis=1500, fees=FeeTerms(1, 1, committee_fees, operator_fees, 50)
    )
    thresholds = [Threshold.capital(rng.randint(2, 9), rng.randint(20, 300), levels=400) for _ in range(44)]

    # 22 intendos, then 22 more while the aggregator is killed mid-stream
    workers, conditions = services.submit_from_processes(stag, thresholds[:22], processes=2, directory=tmp_path)
    services.register(stag, services.collect(stag, workers), conditions)
    assert len(stag.members) == 22
    workers, more_conditions = services.submit_from_processes(stag, thresholds[22:], processes=1, directory=tmp_path)
    conditions.update(more_conditions)
    lines: list[str] = []
    some_acknowledged = threading.Event()
    reader = threading.Thread(target=_read_lines, args=(workers[0], lines, some_acknowledged))
    reader.start()
    assert some_acknowledged.wait(300)
    deployment.service("aggregator").kill()
    workers[0].wait(120)
    reader.join(60)
    records = [json.loads(line) for line in lines]
    acknowledged = [record for record in records if "intendo_id" in record]
    assert 5 <= len(acknowledged) < 22 or len(acknowledged) == 22

    deployment.restart("aggregator")
    services.register(stag, acknowledged, conditions)
    for member in stag.members.values():
        assert services.exists(stag, member.intendo_id), "an acknowledged intendo was lost"
    # a submission in flight when the aggregator died was either committed or not; the rest of
    # that participant process's queue submits again
    done = {str(record["seed"]) for record in acknowledged}
    for record in records:
        if "sending" in record and record["seed"] not in done:
            in_flight = bytes.fromhex(str(record["sending"]))
            if services.exists(stag, in_flight):
                services.register(stag, [{"seed": record["seed"], "intendo_id": record["sending"], "height": 0}], conditions)
                done.add(str(record["seed"]))
    for seed, threshold in conditions.items():
        if seed not in done and all(member.seed.hex() != seed for member in stag.members.values()):
            services.submit(stag, threshold, bytes.fromhex(seed))

    # kill -9 a keyholder mid-pack: the other four (t = 3) carry on; then it returns
    deployment.service("keyholder-2").kill()
    services.settle(stag)
    stag.check_new_hunts(services.client)
    deployment.restart("keyholder-2")
    for threshold in [Threshold.capital(rng.randint(2, 9), rng.randint(20, 120), levels=400) for _ in range(8)]:
        services.submit(stag, threshold)
    # and the aggregator once more, between epochs
    deployment.service("aggregator").kill()
    deployment.restart("aggregator")
    services.settle(stag)
    stag.check_new_hunts(services.client)
    assert stag.hunts_checked >= 1, "the pack was built to fire"
    status = services.client.status(stag.stag_id)
    assert stag.oracle.expected_hunt(int(status.log_height)) is None
    assert len(stag.members) == 52
    # money across the kills: the beneficiary holds exactly what the hunts executed, every
    # executed member's account paid its weight and its member fee once, every logged
    # submission paid its fee once (an aggregator killed between the log and the ledger charges
    # it on restart), and the ledger (read beside the running aggregator) conserves what was
    # deposited
    assert stag.spec.beneficiary is not None
    assert services.client.balance(stag.spec.beneficiary).balance == status.executed_level > 0
    ledger = SqliteLedger(deployment.directory / "aggregator" / "ledger.db")
    try:
        assert ledger.totals().conserved and ledger.totals().released == 0
        executed = ledger.executions(stag.stag_id)
        assert sum(execution.weight for execution in executed) == status.executed_level
        for execution in executed:
            movements = ledger.movements(Account(execution.participant, CAPITAL_TAG))
            assert ("paid", execution.weight) in movements and movements.count(("fee", 1)) == 2  # submission, member
        assert ledger.balance(committee_fees) + ledger.balance(operator_fees) == len(stag.members) + len(executed)
    finally:
        ledger.close()


@pytest.mark.slow
def test_kill_minus_nine_during_a_cascade_executes_its_bundle_once(services: Services) -> None:
    """A trigger and a stag it arms, each built to fire. The aggregator is killed with kill -9 as
    soon as the trigger's hunt shows in its log — while the dependent's immediate check runs,
    before the bundle executes — and restarted. The bundle then executes exactly once: both
    hunts in one transaction, every member's weight paid once, the ledger conserving money."""
    deployment = services.deployment
    root = services.new_stag(kind=StagKind.CAPITAL, levels=16, epoch_millis=2000)
    dependent = services.new_stag(kind=StagKind.CAPITAL, levels=16, epoch_millis=2000, trigger=root.stag_id)
    for _ in range(3):  # 2 + 2 + 2 = 6, each "if the total reaches 6": fires once armed
        services.submit(dependent, Threshold.capital(2, 6, levels=16))
    wait_for(lambda: services.client.status(dependent.stag_id).awaiting_validation == 0, "the dependent's intendos to count")
    assert not services.client.status(dependent.stag_id).armed and not services.client.status(dependent.stag_id).epochs
    services.submit(root, Threshold.capital(3, 3, levels=16))
    wait_for(lambda: services.client.status(root.stag_id).hunts, "the trigger to hunt", interval=0.02)
    deployment.service("aggregator").kill()
    deployment.restart("aggregator")
    wait_for(lambda: not services.client.status(root.stag_id).awaiting_bundle and services.client.status(dependent.stag_id).hunts,
             "the bundle to execute")
    root_status, dependent_status = services.client.status(root.stag_id), services.client.status(dependent.stag_id)
    (root_hunt,), (dependent_hunt,) = root_status.hunts, dependent_status.hunts
    assert dependent_status.armed and bytes(dependent_hunt.cause) == codec.decode(
        CertificateBundle, bytes(root_hunt.certificate_bundle)).certificate.outcome.digest()
    ledger = SqliteLedger(deployment.directory / "aggregator" / "ledger.db")
    try:
        bundles = [bundle for bundle in ledger.bundles() if bundle[0][0] == root.stag_id]
        assert bundles == [((root.stag_id, root_hunt.epoch), (dependent.stag_id, dependent_hunt.epoch))]
        assert root.spec.beneficiary is not None and dependent.spec.beneficiary is not None
        assert (ledger.balance(root.spec.beneficiary), ledger.balance(dependent.spec.beneficiary)) == (3, 6)
        for stag in (root, dependent):
            for member in stag.members.values():
                account = Account(SigningIdentity(member.seed).verify_key, CAPITAL_TAG)
                assert ledger.movements(account) == [("deposit", member.threshold.weight), ("paid", member.threshold.weight)]
        assert ledger.totals().conserved
    finally:
        ledger.close()


def test_watchers_receive_each_hunt_with_a_certificate_that_verifies(services: Services, tmp_path: Path) -> None:
    stag = services.new_stag(levels=20, epoch_millis=1000)
    watcher = subprocess.Popen(
        [sys.executable, "-m", "stagpack", "watch", "--aggregator", services.address, "--stag", stag.stag_id.hex(),
         "--count", "1", "--json", "--timeout", "240", "--out-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    members = [services.submit(stag, Threshold.count(2, levels=20)) for _ in range(3)]
    output, errors = watcher.communicate(timeout=300)
    assert watcher.returncode == 0, errors
    (line,) = [line for line in output.splitlines() if line.startswith("{")]
    hunt = json.loads(line)
    assert hunt["verified"] and hunt["level"] == 3
    assert {member["intendo_id"] for member in hunt["members"]} == {member.intendo_id.hex() for member in members}
    saved = tmp_path / f"hunt-{hunt['epoch']}.certificate"
    codec.decode(CertificateBundle, saved.read_bytes()).verify()
    # and the executor applied it once: the same members, in the ledger
    stag.check_new_hunts(services.client)


def test_sigterm_shuts_a_keyholder_down_gracefully(services: Services) -> None:
    import signal

    service = services.deployment.service("keyholder-5")
    assert service.process is not None
    service.process.send_signal(signal.SIGTERM)
    assert service.process.wait(60) == 0, "a clean exit on SIGTERM"
    assert '"stopped"' in service.log_path.read_text() or "stopped" in service.log_path.read_text()
    services.deployment.restart("keyholder-5")
    assert health_status(service.address) == "SERVING", "keys reload from the sealed store on restart"
