"""The gRPC edge: error mapping, message-size limits, channels and server plumbing.

One table maps the error hierarchy to status codes (STYLE.md §4); clients map them back, so a
caller of the SDK sees the same `StagpackError` subclass the server raised, with its message.
Unknown exceptions become INTERNAL with no detail (and a logged traceback on the server).
"""

from __future__ import annotations

import functools
import logging
import signal
import threading
from concurrent import futures
from typing import Any, Callable, TypeVar

import grpc
from google.protobuf import message_factory
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from stagpack.errors import (
    AlreadyExists,
    CommitteeUnavailable,
    CryptoFailure,
    IntegrityFailure,
    InvalidInput,
    NotFound,
    PolicyRefusal,
    RateLimited,
    StagpackError,
    Unauthenticated,
    WrongPhase,
)

log = logging.getLogger("stagpack.grpc")

T = TypeVar("T")

MEGABYTE = 1024 * 1024
# The public API carries one ~790 KB ciphertext per submission; 4 MB leaves room and nothing more.
PUBLIC_MESSAGE_LIMIT = 4 * MEGABYTE
# Keyholder traffic carries masks, partial decryptions and, during the ceremony, every party's
# evaluation-key shares (~18 MB each): 256 MB bounds it for committees of up to ~12 keyholders.
INTERNAL_MESSAGE_LIMIT = 256 * MEGABYTE

ERROR_CODES: tuple[tuple[type[StagpackError], grpc.StatusCode], ...] = (
    (InvalidInput, grpc.StatusCode.INVALID_ARGUMENT),
    (WrongPhase, grpc.StatusCode.FAILED_PRECONDITION),
    (PolicyRefusal, grpc.StatusCode.PERMISSION_DENIED),
    (Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (RateLimited, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (CommitteeUnavailable, grpc.StatusCode.UNAVAILABLE),
    (IntegrityFailure, grpc.StatusCode.ABORTED),
    (CryptoFailure, grpc.StatusCode.INTERNAL),
)
_FROM_CODE: dict[grpc.StatusCode, type[StagpackError]] = {code: error for error, code in ERROR_CODES}


def status_code(error: StagpackError) -> grpc.StatusCode:
    for error_type, code in ERROR_CODES:
        if isinstance(error, error_type):
            return code
    return grpc.StatusCode.INTERNAL


def server_options(message_limit: int) -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", message_limit),
        ("grpc.max_send_message_length", message_limit),
        ("grpc.so_reuseport", 0),
    ]


def channel(address: str, message_limit: int) -> grpc.Channel:
    """A channel with our message limits. Reconnection backs off to at most one second (gRPC's
    default grows to two minutes), so a keyholder or aggregator that comes back after a crash is
    used again at the next epoch rather than minutes later."""
    return grpc.insecure_channel(
        address,
        options=[
            ("grpc.max_receive_message_length", message_limit),
            ("grpc.max_send_message_length", message_limit),
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 1000),
        ],
    )


class MalformedRequest:
    """What a request that does not parse as its protobuf message turns into (see
    `add_servicer`), so that servicers can answer INVALID_ARGUMENT instead of gRPC's INTERNAL."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _lenient(message_class: Any) -> Callable[[bytes], Any]:
    def parse(data: bytes) -> Any:
        try:
            return message_class.FromString(data)
        except DecodeError as error:
            return MalformedRequest(str(error) or "does not parse")

    return parse


def add_servicer(server: grpc.Server, servicer: Any, service: Any) -> None:
    """Register `servicer` for the protobuf `service` descriptor, with request parsing that never
    fails inside gRPC: an unparseable request reaches the method as a MalformedRequest."""
    handlers = {}
    for method in service.methods:
        request_class = message_factory.GetMessageClass(method.input_type)
        response_class = message_factory.GetMessageClass(method.output_type)
        factory = grpc.unary_stream_rpc_method_handler if method.server_streaming else grpc.unary_unary_rpc_method_handler
        handlers[method.name] = factory(
            getattr(servicer, method.name),
            request_deserializer=_lenient(request_class),
            response_serializer=response_class.SerializeToString,
        )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))


def reject_malformed(request: Any, context: grpc.ServicerContext) -> None:
    if isinstance(request, MalformedRequest):
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed request: {request.reason}")


def servicer_method(method: Callable[..., T]) -> Callable[..., T]:
    """Wrap a servicer method: StagpackError -> its status code and message; an unparseable
    request or a TypeError -> INVALID_ARGUMENT; anything else -> INTERNAL without detail."""

    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> T:
        reject_malformed(request, context)
        try:
            return method(self, request, context)
        except StagpackError as error:
            code = status_code(error)
            if code is grpc.StatusCode.INTERNAL:
                log.error("%s failed: %s", method.__name__, error)
            context.abort(code, str(error) or type(error).__name__)
        except TypeError as error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"wrong field type: {error}")
        except Exception:  # noqa: BLE001 - the edge: log, and tell the caller nothing
            log.exception("%s failed with an unexpected error", method.__name__)
            context.abort(grpc.StatusCode.INTERNAL, "internal error")
        raise AssertionError("unreachable")  # context.abort raises

    return wrapper


def error_from_rpc(error: grpc.RpcError) -> StagpackError:
    """The StagpackError a client should raise for a failed call."""
    code = error.code()
    details = error.details() or code.name
    error_type = _FROM_CODE.get(code)
    if error_type is not None:
        return error_type(details)
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED):
        return CommitteeUnavailable(details)
    if code is grpc.StatusCode.RESOURCE_EXHAUSTED:
        return InvalidInput(f"message too large or rate limited: {details}")
    return CryptoFailure(f"{code.name}: {details}")


class HealthReporter:
    """The standard gRPC health service: NOT_SERVING until `serving()` is called."""

    def __init__(self, server: grpc.Server, services: list[str]) -> None:
        self._servicer = health.HealthServicer()
        self._services = ["", *services]
        health_pb2_grpc.add_HealthServicer_to_server(self._servicer, server)
        for service in self._services:
            self._servicer.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)

    def serving(self) -> None:
        for service in self._services:
            self._servicer.set(service, health_pb2.HealthCheckResponse.SERVING)


def new_server(address: str, message_limit: int, workers: int = 8) -> tuple[grpc.Server, int]:
    """A server bound to `address` ("127.0.0.1:0" picks a free port); returns (server, port)."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers), options=server_options(message_limit))
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot listen on {address}")
    return server, port


def enable_reflection(server: grpc.Server, service_names: list[str]) -> None:
    reflection.enable_server_reflection([*service_names, reflection.SERVICE_NAME, health.SERVICE_NAME], server)


def serve_until_signalled(server: grpc.Server, on_stop: Callable[[], None], grace_seconds: float = 5.0) -> None:
    """Block until SIGTERM/SIGINT, then stop accepting calls, let running ones finish within the
    grace period, and call `on_stop` (close stores)."""
    stopped = threading.Event()

    def handle(signum: int, _frame: object) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        stopped.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    stopped.wait()
    server.stop(grace_seconds).wait()
    on_stop()
    log.info("stopped")
