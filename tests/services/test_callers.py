"""Who may call whom, over real gRPC between real processes (DESIGN.md §4, "Who may ask").

A keyholder serves session calls only to the aggregator its committee transcript names, and
ceremony calls only to its configured coordinator; every call carries a credential signed by
the caller for this very call, keyholder and request, fresh, and never accepted twice. The
aggregator serves its log to keyholders only, on an internal port the public API does not
expose. Each attack below is sent as raw gRPC by an outsider on the same loopback network.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterator

import grpc
import pytest

from support.services import Services, deployment_fixture, wait_for

from stagpack import codec
from stagpack.calls import SignedCredential, sign_call
from stagpack.dkg.messages import CeremonyPlan
from stagpack.dkg.rounds import PLAN
from stagpack.edge.remote import RemoteKeyholder
from stagpack.edge.rpc import INTERNAL_MESSAGE_LIMIT, channel
from stagpack.encoding import Threshold
from stagpack.errors import Unauthenticated
from stagpack.identity import SigningIdentity
from stagpack.log import LogRange
from stagpack.participant.identity_file import AGGREGATOR, COORDINATOR, read_identity_file
from stagpack.session import OPEN_SESSION, SessionKind, SessionRef
from stagpack.stag import now_millis
from stagpack.v1 import keyholder_pb2, keyholder_pb2_grpc

pytestmark = [pytest.mark.processes]


@pytest.fixture(scope="module")
def services(scratch: Callable[[str], Path]) -> Iterator[Services]:
    yield from deployment_fixture(scratch("callers"), 3, 2)


def keyholder_key(services: Services, index: int) -> bytes:
    bundle = services.deployment.bundle
    assert bundle is not None
    return bytes(bundle.transcript.body.participants[index - 1].verify_key)


def keyholder_address(services: Services, index: int) -> str:
    return str(services.deployment.keyholders[index - 1].address)


def aggregator_identity(services: Services) -> SigningIdentity:
    identity = read_identity_file(services.deployment.aggregator_identity_path, AGGREGATOR)
    assert isinstance(identity, SigningIdentity)
    return identity


def unknown_session() -> SessionRef:
    return SessionRef(os.urandom(32), SessionKind.HUNT, 1, 0, bytes(32))


def raw_open_session(services: Services, index: int, body: bytes, credential: bytes) -> grpc.StatusCode:
    """Send OpenSession to keyholder `index` exactly as given; the status it answers."""
    stub = keyholder_pb2_grpc.KeyholderStub(channel(keyholder_address(services, index), INTERNAL_MESSAGE_LIMIT))
    try:
        stub.OpenSession(keyholder_pb2.Record(body=body, credential=credential), timeout=60)
    except grpc.RpcError as error:
        return grpc.StatusCode(error.code())
    return grpc.StatusCode.OK


def signed(identity: SigningIdentity, audience: bytes, body: bytes, issued_at: int | None = None) -> bytes:
    return codec.encode(sign_call(identity, OPEN_SESSION.rpc, audience, body, now_millis() if issued_at is None else issued_at))


def test_an_outsider_cannot_open_a_session(services: Services) -> None:
    """Signed by anyone but the transcript's aggregator: refused before anything is read."""
    outsider = RemoteKeyholder(keyholder_address(services, 1), SigningIdentity(), 1, verify_key=keyholder_key(services, 1))
    with pytest.raises(Unauthenticated, match="not one this service serves"):
        outsider.call(OPEN_SESSION, unknown_session())
    # The aggregator itself gets past the check (and is told the stag does not exist).
    body = codec.encode(unknown_session())
    assert raw_open_session(services, 1, body, signed(aggregator_identity(services), keyholder_key(services, 1), body)) not in (
        grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.OK,
    )


def test_a_call_without_a_credential_is_refused(services: Services) -> None:
    body = codec.encode(unknown_session())
    assert raw_open_session(services, 1, body, b"") == grpc.StatusCode.UNAUTHENTICATED
    assert raw_open_session(services, 1, body, os.urandom(200)) == grpc.StatusCode.UNAUTHENTICATED


def test_a_credential_is_good_for_one_call_to_one_keyholder_with_one_request(services: Services) -> None:
    """Replayed, sent to another keyholder, attached to another request, stale, or from the
    future: each refused, though the aggregator signed every one."""
    aggregator = aggregator_identity(services)
    body = codec.encode(unknown_session())
    credential = signed(aggregator, keyholder_key(services, 1), body)
    first = raw_open_session(services, 1, body, credential)
    assert first not in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.OK)  # admitted, then the stag is unknown
    assert raw_open_session(services, 1, body, credential) == grpc.StatusCode.UNAUTHENTICATED  # replayed
    assert raw_open_session(services, 2, body, credential) == grpc.StatusCode.UNAUTHENTICATED  # another audience
    other = codec.encode(unknown_session())
    assert raw_open_session(services, 1, other, signed(aggregator, keyholder_key(services, 1), body)) == grpc.StatusCode.UNAUTHENTICATED
    ten_minutes = 10 * 60 * 1000
    for issued_at in (now_millis() - ten_minutes, now_millis() + ten_minutes):
        assert raw_open_session(services, 1, body, signed(aggregator, keyholder_key(services, 1), body, issued_at)) == grpc.StatusCode.UNAUTHENTICATED
    # A credential whose signed fields were edited after signing (the audience swapped in).
    decoded = codec.decode(SignedCredential, credential)
    forged = replace(decoded, credential=replace(decoded.credential, audience=keyholder_key(services, 2)))
    assert raw_open_session(services, 2, body, codec.encode(forged)) == grpc.StatusCode.UNAUTHENTICATED


def test_the_aggregator_cannot_run_ceremony_calls(services: Services) -> None:
    """Ceremony calls come from the configured coordinator only: the aggregator (or anyone who
    is not the coordinator) cannot start a ceremony on a keyholder."""
    keyholder = RemoteKeyholder(keyholder_address(services, 2), aggregator_identity(services), 2, verify_key=keyholder_key(services, 2))
    coordinator = read_identity_file(services.deployment.coordinator_path, COORDINATOR)
    assert coordinator.verify_key != aggregator_identity(services).verify_key
    plan = CeremonyPlan(os.urandom(32), b"", 3, 2, 1, True, (), aggregator_identity(services).verify_key, aggregator_identity(services).verify_key)
    with pytest.raises(Unauthenticated, match="not one this service serves"):
        keyholder.call(PLAN, plan)


def read_log_status(address: str, identity: SigningIdentity | None, audience: bytes = b"") -> grpc.StatusCode:
    stub = keyholder_pb2_grpc.ReplicationStub(channel(address, INTERNAL_MESSAGE_LIMIT))
    stag_id = os.urandom(32)
    credential = b""
    if identity is not None:
        body = codec.encode(LogRange(stag_id, 0, 1))
        credential = codec.encode(sign_call(identity, "ReadLog", audience, body, now_millis()))
    try:
        list(stub.ReadLog(keyholder_pb2.ReadLogRequest(stag_id=stag_id, after_height=0, up_to_height=1, credential=credential), timeout=60))
    except grpc.RpcError as error:
        return grpc.StatusCode(error.code())
    return grpc.StatusCode.OK


def test_the_log_is_served_to_keyholders_only_and_not_on_the_public_port(services: Services) -> None:
    public = services.address
    assert services.deployment.aggregator is not None
    replication = json.loads(services.deployment.aggregator.config_path.read_text())["replication_listen"]
    assert replication != public
    assert read_log_status(public, None) == grpc.StatusCode.UNIMPLEMENTED
    aggregator_key = aggregator_identity(services).verify_key
    assert read_log_status(replication, None) == grpc.StatusCode.UNAUTHENTICATED
    assert read_log_status(replication, SigningIdentity(), aggregator_key) == grpc.StatusCode.UNAUTHENTICATED
    # The keyholders themselves replicate through it: an intendo is validated only once every
    # keyholder's replica holds it.
    stag = services.new_stag(levels=8)
    services.submit(stag, Threshold(2, 1))
    wait_for(lambda: services.client.status(stag.stag_id).counted == 1, "the intendo to be validated", 240)
