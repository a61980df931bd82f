"""`stagpack`: run the services, the ceremony, the demo and the benchmarks; act as a participant.

Every command prints human-readable output by default and one JSON document with --json.

Exit status: 0 on success. 2 when the request cannot be carried out as given: bad arguments
(argparse), a file that cannot be read or written (OSError), or any `StagpackError` (bad input,
an unknown stag, an unreachable aggregator, a certificate that does not verify, ...); these print
`error: <reason>` on stderr. 1 for an unexpected exception, which is a bug in stagpack rather
than the user's fault: it prints `error: internal error: <type>: <message>`, and the traceback
too when STAGPACK_DEBUG=1. `health` and `local status` also exit 1 when a service is not
healthy, and `demo` when a hunt disagrees with the plaintext solver. 130 after Ctrl-C (`local up`
stops every service on SIGTERM or Ctrl-C and exits 0).

Without --aggregator, commands use $STAGPACK_AGGREGATOR, else the aggregator that `local up`
wrote in addresses.json of $STAGPACK_LOCAL_DIR (or var/local), else 127.0.0.1:7100.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

from stagpack.errors import CommitteeUnavailable, InvalidInput, StagpackError

DEFAULT_AGGREGATOR = "127.0.0.1:7100"
DEFAULT_BASE_PORT = 7100  # `local up`: the aggregator on 7100, keyholder i on 7100 + i
EXIT_STATUS_HELP = """\
exit status: 0 success; 2 bad arguments, unreadable files or a refused request (error: <reason>);
1 an unexpected failure, i.e. a bug (error: internal error: <type>: <message>; set
STAGPACK_DEBUG=1 to print the traceback), or, for `health` and `local status`, a service that is
not healthy; 130 interrupted.

aggregator address: --aggregator, else $STAGPACK_AGGREGATOR, else the aggregator in
addresses.json that `stagpack local up` writes in $STAGPACK_LOCAL_DIR (default var/local), if
there is one, else 127.0.0.1:7100."""


MAX_DURATION_MILLIS = 100 * 365 * 24 * 3_600_000  # 100 years: anything longer is a typo


def parse_duration_millis(text: str, what: str = "duration") -> int:
    """'500ms', '10s', '2m', '1h' (a bare number is seconds) -> milliseconds, at most 100 years."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", text)
    if not match:
        raise InvalidInput(f"{what}: not a duration: {text!r} (use e.g. 500ms, 10s, 2m, 1h)")
    value = float(match.group(1)) * {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}[match.group(2) or "s"]
    if not value <= MAX_DURATION_MILLIS:  # also false for inf
        raise InvalidInput(f"{what}: {text.strip()!r} is too long (at most 100 years)")
    return int(value)


def hexid(data: bytes) -> str:
    return data.hex()


def parse_hex(text: str, what: str, size: int | None = 32) -> bytes:
    try:
        value = bytes.fromhex(text.strip())
    except ValueError:
        raise InvalidInput(f"{what} must be hex") from None
    if size is not None and len(value) != size:
        raise InvalidInput(f"{what} must be {size} bytes ({2 * size} hex digits)")
    return value


class Output:
    """Human lines by default, one JSON document with --json."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def emit(self, document: dict[str, Any], lines: Sequence[str]) -> None:
        if self.as_json:
            print(json.dumps(document, indent=2, sort_keys=True))
        else:
            for line in lines:
                print(line)


# --- services --------------------------------------------------------------------------------


def command_keyholder_serve(options: argparse.Namespace) -> int:
    from stagpack.edge.config import KeyholderConfig, configure_logging, load
    from stagpack.edge.rpc import serve_until_signalled
    from stagpack.edge.keyholder_service import KeyholderService

    config = load(KeyholderConfig, options.config, "STAGPACK_KEYHOLDER")
    configure_logging(config.logging, f"keyholder[{config.name}]")
    service = KeyholderService(config)
    service.start()
    serve_until_signalled(service.server, service.close)
    return 0


def command_aggregator_serve(options: argparse.Namespace) -> int:
    from stagpack.edge.aggregator_service import AggregatorService
    from stagpack.edge.config import AggregatorConfig, configure_logging, load
    from stagpack.edge.rpc import serve_until_signalled

    config = load(AggregatorConfig, options.config, "STAGPACK_AGGREGATOR")
    configure_logging(config.logging, "aggregator")
    service = AggregatorService(config)
    service.start()
    serve_until_signalled(service.server, service.close)
    return 0


def command_aggregator_key(options: argparse.Namespace) -> int:
    from stagpack.edge.config import AggregatorConfig, load
    from stagpack.participant.identity_file import AGGREGATOR, load_or_create_identity_file

    config = load(AggregatorConfig, options.config, "STAGPACK_AGGREGATOR")
    identity = load_or_create_identity_file(config.identity_path(), AGGREGATOR)
    Output(options.json).emit(
        {"public_key": hexid(identity.verify_key), "file": str(config.identity_path())}, [hexid(identity.verify_key)]
    )
    return 0


def command_coordinator_key(options: argparse.Namespace) -> int:
    from stagpack.participant.identity_file import COORDINATOR, load_or_create_identity_file

    identity = load_or_create_identity_file(Path(options.identity), COORDINATOR)
    Output(options.json).emit({"public_key": hexid(identity.verify_key), "file": str(options.identity)}, [hexid(identity.verify_key)])
    return 0


def command_ceremony(options: argparse.Namespace) -> int:
    from stagpack.app.console import progress_printer
    from stagpack.dkg import run_ceremony
    from stagpack.edge.remote import RemoteKeyholder
    from stagpack.edge.wire import bundle_exists, load_bundle_files, save_bundle
    from stagpack.fhe import FheContext
    from stagpack.participant.identity_file import COORDINATOR, load_or_create_identity_file, read_public_key

    output = Output(options.json)
    addresses = options.keyholder
    threshold = options.threshold or len(addresses)
    if options.skip_if_exists and bundle_exists(options.out):
        existing = load_bundle_files(options.out)
        output.emit(
            {"committee_id": hexid(existing.committee_id), "skipped": True},
            [f"committee {hexid(existing.committee_id)} already exists in {options.out}; nothing to do"],
        )
        return 0
    if options.aggregator_key_file:
        aggregator_key = read_public_key(Path(options.aggregator_key_file).read_text(), "--aggregator-key-file")
    elif options.aggregator_key:
        aggregator_key = read_public_key(options.aggregator_key, "--aggregator-key")
    else:
        raise InvalidInput("name the aggregator the committee will serve: --aggregator-key (see `stagpack aggregator key`)")
    coordinator = load_or_create_identity_file(Path(options.identity), COORDINATOR)
    if not output.as_json:
        print(f"key ceremony among {len(addresses)} keyholders (threshold {threshold}), coordinator {hexid(coordinator.verify_key)[:16]}…")
    peers = [RemoteKeyholder(address, coordinator, 0, timeout_seconds=900) for address in addresses]
    bundle = run_ceremony(
        FheContext(), peers, threshold, progress_printer(not output.as_json), aggregator_key=aggregator_key,
        coordinator_key=coordinator.verify_key, fault_bound=options.fault_bound,
    )
    save_bundle(bundle, options.out)
    body = bundle.transcript.body
    output.emit(
        {
            "committee_id": hexid(bundle.committee_id),
            "parties": body.parties,
            "threshold": body.threshold,
            "fault_bound": body.fault_bound,
            "aggregator_key": hexid(body.aggregator_key),
            "keyholders": [{"index": p.index, "name": p.name, "verify_key": hexid(p.verify_key)} for p in body.participants],
            "joint_public_key_sha256": hexid(body.joint_public_key),
            "out": str(options.out),
        },
        [
            f"committee {hexid(bundle.committee_id)}",
            f"  {body.parties} keyholders, any {body.threshold} can decrypt, up to {body.fault_bound} may misbehave "
            f"(steps need {body.threshold + body.fault_bound}); transcript signed by all",
            f"  serves the aggregator {hexid(body.aggregator_key)[:16]}…",
            *[f"  {p.index}. {p.name} {hexid(p.verify_key)[:16]}…" for p in body.participants],
            f"written to {options.out}",
        ],
    )
    return 0


def command_health(options: argparse.Namespace) -> int:
    """Exit 0 if the service answers its gRPC health check (SERVING, with --serving)."""
    from stagpack.app.launcher import health_status

    status = health_status(options.address, timeout=options.timeout)
    healthy = status == "SERVING" if options.serving else status is not None
    Output(options.json).emit({"address": options.address, "status": status, "healthy": healthy},
                              [f"{options.address}: {status or 'not answering'}"])
    return 0 if healthy else 1


def _local_directory(options: argparse.Namespace) -> Path:
    from stagpack.app.launcher import default_local_directory

    return Path(options.dir) if options.dir else default_local_directory()


def command_local_up(options: argparse.Namespace) -> int:
    from stagpack.app.console import progress_printer
    from stagpack.app.launcher import LocalSupervisor

    parties, threshold = options.keyholders, options.threshold
    if not 1 <= parties <= 64:
        raise InvalidInput(f"--keyholders must be in 1..64; got {parties}")
    if not 1 <= threshold <= parties or (threshold < parties and 2 * threshold <= parties):
        raise InvalidInput(f"--threshold must be more than half of --keyholders and at most all of them; got {threshold} of {parties}")
    if options.base_port and not 1024 <= options.base_port <= 65535 - parties:
        raise InvalidInput(f"--base-port must be 0 (free ports) or in 1024..{65535 - parties}; got {options.base_port}")
    supervisor = LocalSupervisor(_local_directory(options), parties, threshold, base_port=options.base_port)
    return supervisor.run(progress_printer(True))


def command_local_restart(options: argparse.Namespace) -> int:
    from stagpack.app.launcher import LocalControl, LocalDeploymentError

    control = LocalControl(_local_directory(options).resolve())
    if not options.json:
        print(f"asking the `local up` in {control.directory} to restart {options.service}", flush=True)
    answer = control.request({"action": "restart", "service": options.service}, options.timeout)
    if not answer.get("ok"):
        raise LocalDeploymentError(f"restarting {options.service} failed: {answer.get('error', 'no reason given')}")
    Output(options.json).emit(
        answer,
        [f"{options.service} restarted (pid {answer.get('previous_pid')} -> {answer.get('pid')}); "
         f"SERVING at {answer.get('address')} after {answer.get('seconds', 0):.1f} s"],
    )
    return 0


def command_local_status(options: argparse.Namespace) -> int:
    from stagpack.app.launcher import LocalControl, health_status

    control = LocalControl(_local_directory(options).resolve())
    state = control.state()
    services = [{**service, "health": health_status(str(service["address"]), timeout=options.timeout)}
                for service in state.get("services", [])]
    healthy = state.get("phase") == "serving" and all(service["health"] == "SERVING" for service in services)
    Output(options.json).emit(
        {"directory": str(control.directory), "pid": state.get("pid"), "phase": state.get("phase"), "healthy": healthy,
         "services": services},
        [f"local up (pid {state.get('pid')}) {state.get('phase')} in {control.directory}",
         *[f"  {service['name']:13} {service['address']:21} pid {str(service['pid'] or '-'):>7}  "
           f"{service['health'] or 'not answering'}" for service in services]],
    )
    return 0 if healthy else 1


def command_demo(options: argparse.Namespace) -> int:
    from stagpack.app.demo import run_demo

    return run_demo(options)


def command_bench(options: argparse.Namespace) -> int:
    from stagpack.bench.report import run_from_cli

    return run_from_cli(options)


# --- participant commands --------------------------------------------------------------------


def command_identity_create(options: argparse.Namespace) -> int:
    from stagpack.participant.identity_file import create_identity_file

    identity = create_identity_file(Path(options.out), overwrite=options.force)
    Output(options.json).emit(
        {"public_key": hexid(identity.verify_key), "file": options.out},
        [f"created identity {hexid(identity.verify_key)}", f"  secret key in {options.out} (keep it private)"],
    )
    return 0


def command_identity_card(options: argparse.Namespace) -> int:
    from stagpack.participant.identity_file import read_identity_file
    from stagpack.participant.proofs import make_verifier_card

    identity = read_identity_file(Path(options.file))
    card = make_verifier_card(identity).to_hex()
    Output(options.json).emit({"public_key": hexid(identity.verify_key), "card": card}, [card])
    return 0


def command_identity_show(options: argparse.Namespace) -> int:
    from stagpack.participant.identity_file import read_identity_file

    identity = read_identity_file(Path(options.file))
    Output(options.json).emit({"public_key": hexid(identity.verify_key)}, [hexid(identity.verify_key)])
    return 0


def resolve_aggregator(explicit: str | None) -> tuple[str, str]:
    """(address, where it came from): --aggregator, else $STAGPACK_AGGREGATOR, else the
    aggregator in addresses.json of the local deployment directory ($STAGPACK_LOCAL_DIR, else
    var/local) if `stagpack local up` wrote one there, else 127.0.0.1:7100."""
    from stagpack.app.launcher import ADDRESSES_FILE, default_local_directory, read_addresses

    if explicit:
        return explicit, "--aggregator"
    if os.environ.get("STAGPACK_AGGREGATOR"):
        return os.environ["STAGPACK_AGGREGATOR"], "$STAGPACK_AGGREGATOR"
    directory = default_local_directory()
    addresses = read_addresses(directory)
    if addresses is not None:
        return str(addresses["aggregator"]), str(directory / ADDRESSES_FILE)
    return DEFAULT_AGGREGATOR, "the default"


def _client(options: argparse.Namespace) -> Any:
    from stagpack.participant.client import AggregatorClient

    address, source = resolve_aggregator(options.aggregator)
    options.aggregator_source = f"aggregator {address} from {source}"
    return AggregatorClient(address)


def parse_eligible(text: str) -> bytes:
    """An --eligible key: 32 bytes in hex that encode a valid Ed25519 public key."""
    from stagpack.identity import check_verify_key

    key = parse_hex(text, f"--eligible {text.strip()[:80]!r}")
    return check_verify_key(key, f"--eligible {text.strip()}")


OPEN_STAG_WARNING = (
    "warning: this stag is open (no --eligible list): anyone can mint identities, so the per-identity budget of "
    "submissions and withdrawals does not bound what an operator colluding with participants learns about an "
    "intendo through validity checks (docs/threat-model.md); list the participants with --eligible to bound it"
)


def parse_account(text: str, what: str) -> Any:
    """An account as PUBLIC_KEY:TAG (the key in hex)."""
    from stagpack.accounts import Account, check_tag
    from stagpack.identity import check_verify_key

    key, separator, tag = text.strip().partition(":")
    if not separator:
        raise InvalidInput(f"{what}: give an account as PUBLIC_KEY:TAG (the owner's key in hex, then its tag); got {text.strip()[:80]!r}")
    return Account(check_verify_key(parse_hex(key, what), f"{what} key"), check_tag(tag, f"{what} tag"))


def command_stag_create(options: argparse.Namespace) -> int:
    from stagpack.edge.wire import MAX_LEVELS
    from stagpack.encoding import MIN_LEVELS, StagKind
    from stagpack.stag import MIN_EPOCH_MILLIS, StagSpec, now_millis

    # everything that can be checked without the aggregator is checked before contacting it
    if not MIN_LEVELS <= options.levels <= MAX_LEVELS:
        raise InvalidInput(f"--levels must be in {MIN_LEVELS}..{MAX_LEVELS} (a stag is full at levels-1; the committee's "
                           f"parameters may allow fewer); got {options.levels}")
    epoch_millis = parse_duration_millis(options.epoch, "--epoch")
    if epoch_millis < MIN_EPOCH_MILLIS:
        raise InvalidInput(f"--epoch must be at least {MIN_EPOCH_MILLIS} ms; got {options.epoch!r}")
    deadline_after = parse_duration_millis(options.deadline, "--deadline") if options.deadline is not None else 0
    if options.deadline is not None and deadline_after <= 0:
        raise InvalidInput(f"--deadline must be a positive duration (e.g. 30m); got {options.deadline!r}")
    eligibility = tuple(parse_eligible(key) for key in options.eligible or ())
    payload = Path(options.payload_file).read_bytes() if options.payload_file else b""
    beneficiary = parse_account(options.beneficiary, "--beneficiary") if options.beneficiary else None
    if options.kind == "capital" and beneficiary is None:
        raise InvalidInput("a capital stag pays its hunts' capital to --beneficiary PUBLIC_KEY:TAG (an escrow account)")
    if options.kind == "count" and beneficiary is not None:
        raise InvalidInput("--beneficiary is for capital stags: a count stag moves no money")
    funder, refund_from = _refund_options(options, deadline_after)
    fees = _fee_options(options)
    trigger = parse_hex(options.trigger, "--trigger (a stag id)") if options.trigger else b""
    hook = parse_hex(options.hook.removeprefix("0x"), "--hook (a contract address)", 20) if options.hook else b""
    if options.anonymous and (options.kind != "count" or len(set(eligibility)) < 2):
        raise InvalidInput("--anonymous is for count stags, with the members it hides among as --eligible (at least 2)")

    client = _client(options)
    context, _ = client.encryption_context()
    max_levels = int(context.row_width)  # the committee's parameters bound the levels
    if options.levels > max_levels:
        raise InvalidInput(f"--levels must be at most {max_levels} with this committee's parameters; got {options.levels}")
    opens = now_millis()
    spec = StagSpec.new(
        committee=client.committee_id, kind=StagKind(options.kind), levels=options.levels, title=options.title,
        eligibility=eligibility, epoch_millis=epoch_millis, opens_at_millis=opens,
        deadline_millis=opens + deadline_after if deadline_after else 0, payload=payload, beneficiary=beneficiary,
        refund=_refund_terms(options, funder, refund_from), fees=fees, trigger=trigger, hook=hook,
        anonymous=options.anonymous,
    )
    spec.validate(max_levels, client.committee_id)  # the aggregator's own check, before sending
    funding = b""
    if spec.refund is not None:
        from stagpack.participant.sdk import sign_pool_funding

        funding = sign_pool_funding(funder, spec)
    stag_id = client.create_stag(spec, funding)
    if not eligibility:
        print(OPEN_STAG_WARNING, file=sys.stderr)
    Output(options.json).emit(
        {"stag_id": hexid(stag_id), "kind": spec.kind.value, "levels": spec.levels, "epoch_millis": spec.epoch_millis,
         "deadline_millis": spec.deadline_millis, "open": not eligibility, "trigger": hexid(trigger) if trigger else None,
         "hook": "0x" + hook.hex() if hook else None, "anonymous": spec.anonymous},
        [f"created {'anonymous ' if spec.anonymous else ''}{spec.kind.value} stag {hexid(stag_id)}",
         f"  {spec.levels} levels (full at {spec.levels - 1}), one hunt check every {spec.epoch_millis / 1000:g} s"
         + (f", closes in {deadline_after / 1000:g} s" if deadline_after else ""),
         *([f"  {spec.refund.describe()} (escrowed from {spec.refund.funder.describe()})"] if spec.refund else []),
         *([f"  triggered by stag {hexid(trigger)}: no hunt fires before that stag's first hunt, which makes this one "
            "due for a check at once; hunts that fire on it execute in one bundle with it"] if trigger else []),
         *([f"  {_fees_line(spec.fees.submission, spec.fees.member, spec.fees.committee_percent)}"] if spec.fees else []),
         *([f"  anonymous: intendos are ring-signed among the {len(spec.eligibility)} eligible keys; nobody learns who "
            "signed until a hunt, which names every member it executes"] if spec.anonymous else [])],
    )
    return 0


def _refund_options(options: argparse.Namespace, deadline_after: int) -> tuple[Any, str]:
    """The funder's identity and tag for --refund-pool, checked before contacting anyone."""
    from stagpack.accounts import check_amount, check_tag

    given = [options.refund_from, options.funder, options.bonus, options.refund_to]
    if options.refund_pool is None:
        if any(value is not None for value in given):
            raise InvalidInput("--refund-from, --funder, --bonus and --refund-to describe a --refund-pool")
        return None, ""
    if options.kind != "capital":
        raise InvalidInput("a refund pool pays escrow accounts: only a capital stag's intendos name one")
    if not deadline_after:
        raise InvalidInput("a refund pool pays out at the deadline: give --deadline")
    check_amount(options.refund_pool, "--refund-pool")
    if options.funder is None or options.refund_from is None:
        raise InvalidInput("--refund-pool is escrowed from --refund-from TAG, an account of --funder IDENTITY_FILE (who signs)")
    return _read_identity(options.funder), check_tag(options.refund_from, "--refund-from")


def _refund_terms(options: argparse.Namespace, funder: Any, tag: str) -> Any:
    from stagpack.accounts import Account
    from stagpack.terms import RefundMode, RefundTerms

    if funder is None:
        return None
    account = Account(funder.verify_key, tag)
    returns_to = parse_account(options.refund_to, "--refund-to") if options.refund_to else account
    mode = RefundMode.FIXED if options.bonus is not None else RefundMode.PRO_RATA
    return RefundTerms(account, options.refund_pool, mode, options.bonus or 0, returns_to)


def _fee_options(options: argparse.Namespace) -> Any:
    from stagpack.terms import FeeTerms

    if options.fee_submission is None and options.fee_member is None:
        if options.fee_committee or options.fee_operator:
            raise InvalidInput("--fee-committee and --fee-operator receive a --fee-submission or --fee-member")
        return None
    if options.kind != "capital":
        raise InvalidInput("fees are charged from escrow accounts: only a capital stag's intendos name one")
    if not options.fee_committee or not options.fee_operator:
        raise InvalidInput("fees are paid to --fee-committee PUBLIC_KEY:TAG and --fee-operator PUBLIC_KEY:TAG")
    fees = FeeTerms(
        options.fee_submission or 0, options.fee_member or 0, parse_account(options.fee_committee, "--fee-committee"),
        parse_account(options.fee_operator, "--fee-operator"), options.fee_committee_percent,
    )
    fees.check()
    return fees


def _fees_line(submission: int, member: int, committee_percent: int) -> str:
    return (f"fees: {submission} per submission, {member} per executed member "
            f"({committee_percent} % to the committee, the rest to the operator)")


def kind_name(value: int) -> str:
    """A StagSummary's kind as the CLI shows it: the StagKind's name, or `unknown (N)` for a
    value this version does not know (listed, not refused)."""
    from stagpack.edge.wire import kind_from_proto

    try:
        return kind_from_proto(value).value
    except InvalidInput:
        return f"unknown ({value})"


def command_stag_list(options: argparse.Namespace) -> int:
    client = _client(options)
    stags = [(s, kind_name(s.kind)) for s in client.list_stags()]
    Output(options.json).emit(
        {"stags": [{"stag_id": hexid(s.stag_id), "kind": kind, "levels": s.levels, "title": s.title} for s, kind in stags]},
        [f"{hexid(s.stag_id)}  {kind:8} L={s.levels:<6} {s.title}" for s, kind in stags] or ["no stags"],
    )
    return 0


def command_stag_status(options: argparse.Namespace) -> int:
    client = _client(options)
    if options.intendo:
        intendo = client.intendo_status(parse_hex(options.stag, "stag id"), parse_hex(options.intendo, "intendo id"))
        Output(options.json).emit(
            {"intendo_id": options.intendo, "status": intendo.status, "weight": intendo.weight,
             "submitted_at_height": intendo.submitted_at_height, "counted_at_height": intendo.counted_at_height,
             "closed_at_height": intendo.closed_at_height},
            [f"intendo {options.intendo}: {intendo.status} (submitted at log height {intendo.submitted_at_height}"
             + (f", counted at {intendo.counted_at_height}" if intendo.counted_at_height else "")
             + (f", closed at {intendo.closed_at_height}" if intendo.closed_at_height else "") + ")"],
        )
        return 0
    status = client.status(parse_hex(options.stag, "stag id"))
    anonymous = status.spec.anonymous
    hunts = [{"epoch": h.epoch, "level": h.level, "log_height": h.log_height, "members": len(h.members),
              "executed_weight": _executed_weight(h), "cause": hexid(h.cause) if h.cause else None,
              **({"revealed": [hexid(key) for key in _revealed(h)]} if anonymous else {})} for h in status.hunts]
    epochs = [{"epoch": e.epoch, "result": e.result, "log_height": e.log_height, "at_millis": e.at_millis} for e in status.epochs]
    beneficiary = (f"{hexid(status.spec.beneficiary.owner)}:{status.spec.beneficiary.tag}"
                   if status.spec.HasField("beneficiary") else None)
    refund = _refund_document(status)
    fees = status.spec.fees if status.spec.HasField("fees") else None
    document = {
        "stag_id": options.stag, "title": status.spec.title, "kind": kind_name(status.spec.kind), "beneficiary": beneficiary,
        "anonymous": anonymous,
        "refund": refund, "refunded": status.refunded,
        "trigger": hexid(status.spec.trigger) if status.spec.trigger else None, "armed": status.armed,
        "awaiting_bundle": status.awaiting_bundle,
        "fees": None if fees is None else {"submission": fees.submission, "member": fees.member,
                                           "committee_percent": fees.committee_percent},
        "levels": status.spec.levels, "log_height": status.log_height,
        "live_intendos": status.live_intendos, "awaiting_validation": status.awaiting_validation,
        "withdrawn": status.withdrawn, "rejected": status.rejected, "voided": status.voided, "executed": status.executed,
        "cost": {"sessions": status.cost.sessions, "steps": status.cost.steps, "keyholder_calls": status.cost.keyholder_calls,
                 "partial_decryptions": status.cost.partial_decryptions,
                 "partial_decryption_bytes": status.cost.partial_decryption_bytes},
        "remaining_capacity": status.remaining_capacity, "accepting": status.accepting, "hunts": hunts,
        "epochs": epochs, "next_epoch_at_millis": status.next_epoch_at_millis, "committee": status.committee,
    }
    last = (f"; the last at epoch {epochs[-1]['epoch']} (log height {epochs[-1]['log_height']}): {epochs[-1]['result']}"
            if epochs else "")
    lines = [
        f"stag {options.stag} {status.spec.title!r} (log height {status.log_height})",
        f"  {status.live_intendos} live intendos ({status.awaiting_validation} awaiting validation), "
        f"{status.withdrawn} withdrawn, {status.rejected} rejected"
        + (f", {status.voided} voided (escrow spent elsewhere)" if status.voided else "")
        + f"; capacity left {status.remaining_capacity}",
        f"  {len(epochs)} epochs checked{last}; {len(hunts)} hunts"
        + "".join(f"\n    epoch {h['epoch']} (log height {h['log_height']}): level {h['level']}, "
                  f"{h['members']} members executed" + (f", fired on the trigger's hunt {h['cause'][:12]}" if h["cause"] else "")
                  + (f"; named: {', '.join(key[:16] for key in h['revealed'])} (as the aggregator reports them: "
                     "`stagpack watch` and `verify` check each certificate)" if anonymous else "")
                  for h in hunts),
        *([f"  anonymous among {len(status.spec.eligibility)} eligible keys: no intendo names its signer until a hunt "
           "executes it"] if anonymous else []),
        *([f"  capital paid to {beneficiary}"] if beneficiary else []),
        *([f"  triggered by stag {hexid(status.spec.trigger)}: "
           + ("armed by its first hunt" if status.armed else "waiting for it to hunt (this stag's hunts cannot fire before)")]
          if status.spec.trigger else []),
        *(["  a certified hunt waits to execute in one bundle with the hunts composed with it"] if status.awaiting_bundle else []),
        *([f"  {_refund_line(refund)}"] if refund else []),
        *([f"  {_fees_line(fees.submission, fees.member, fees.committee_percent)}"] if fees is not None else []),
        f"  committee: {status.committee}; work so far: {status.cost.sessions} sessions, {status.cost.steps} decryption "
        f"steps, {status.cost.partial_decryptions} partial decryptions ({status.cost.partial_decryption_bytes / 1e6:.1f} MB)",
        "  (how close the pack is to firing is not known to anyone, the operator included)",
    ]
    Output(options.json).emit(document, lines)
    return 0


def _refund_document(status: Any) -> dict[str, Any] | None:
    """A refund stag's promise and where its pool stands: what a participant reads before joining."""
    if not status.spec.HasField("refund"):
        return None
    terms = status.spec.refund
    fixed = terms.mode == 1  # REFUND_MODE_FIXED
    document: dict[str, Any] = {
        "pool": terms.pool, "mode": "fixed" if fixed else "pro-rata", "bonus": terms.bonus if fixed else None,
        "funder": f"{hexid(terms.funder.owner)}:{terms.funder.tag}", "returns_to": f"{hexid(terms.returns_to.owner)}:{terms.returns_to.tag}",
        "deadline_millis": status.spec.deadline_millis,
        "state": status.pool.state if status.HasField("pool") else None,
        "remaining": status.pool.remaining if status.HasField("pool") else None,
        "settlement": None,
    }
    if status.HasField("settlement"):
        settlement = status.settlement
        document["settlement"] = {
            "epoch": settlement.epoch, "log_height": settlement.log_height, "returned": settlement.returned,
            "refunds": [{"intendo_id": hexid(r.intendo_id), "account": f"{hexid(r.account.owner)}:{r.account.tag}",
                         "amount": r.amount} for r in settlement.refunds],
        }
    return document


def _refund_line(refund: dict[str, Any]) -> str:
    promise = (f"{refund['bonus']} to each intendo counted at the deadline" if refund["mode"] == "fixed"
               else "shared by weight among the intendos counted at the deadline")
    line = f"refund pool {refund['pool']}: if the deadline passes without a hunt, {promise}"
    if refund["settlement"] is not None:
        paid = sum(r["amount"] for r in refund["settlement"]["refunds"])
        return line + f"; settled: {paid} paid to {len(refund['settlement']['refunds'])} intendos, {refund['settlement']['returned']} returned"
    return line + ("; returned to its funder: the stag hunted" if refund["state"] == "returned" else f"; {refund['state']}")


def _executed_weight(hunt: Any) -> int | None:
    """The weight executed before a status hunt, from its certificate bundle (None if the
    bundle does not decode; `stagpack watch` and `verify` check certificates, status does not)."""
    from stagpack import codec
    from stagpack.log import CertificateBundle

    try:
        return int(codec.decode(CertificateBundle, bytes(hunt.certificate_bundle)).certificate.outcome.executed_weight)
    except StagpackError:
        return None


def _revealed(hunt: Any) -> tuple[bytes, ...]:
    """The members an anonymous stag's hunt named (its certificate's released identities)."""
    from stagpack import codec
    from stagpack.log import CertificateBundle

    return tuple(codec.decode(CertificateBundle, bytes(hunt.certificate_bundle)).certificate.revealed)


def _identity(options: argparse.Namespace) -> Any:
    return _read_identity(options.identity)


def _read_identity(path: str) -> Any:
    from stagpack.participant.identity_file import read_identity_file

    return read_identity_file(Path(path))


def command_submit(options: argparse.Namespace) -> int:
    from stagpack.participant.sdk import capital_threshold, count_threshold

    client = _client(options)
    stag_id = parse_hex(options.stag, "stag id")
    spec = client.spec(stag_id)
    if options.others is not None:
        if options.amount is not None or options.total is not None:
            raise InvalidInput("give either --others (count stag) or --amount and --total (capital stag)")
        threshold = count_threshold(spec, options.others)
        condition = f"I will if at least {options.others} others do"
    else:
        if options.amount is None or options.total is None:
            raise InvalidInput("give --others N for a count stag, or --amount A --total C for a capital stag")
        threshold = capital_threshold(spec, options.amount, options.total)
        condition = f"I commit {options.amount} if the total reaches {options.total}"
        if options.tag is None:
            raise InvalidInput("a capital intendo names the escrow account backing it: --tag TAG (see `stagpack account`)")
    if options.others is not None and options.tag is not None:
        raise InvalidInput("--tag is for capital stags: a count intendo commits no money")
    prepared = client.prepare(spec, _identity(options), threshold, options.tag or "")
    intendo_id, height = client.submit(prepared)
    if options.receipt:  # the signed statement: what `stagpack prove` shows friends
        from stagpack import codec

        Path(options.receipt).write_bytes(codec.encode(prepared.envelope.statement))
    Output(options.json).emit(
        {"intendo_id": hexid(intendo_id), "log_height": height, "ciphertext_bytes": len(prepared.ciphertext)},
        [f"submitted intendo {hexid(intendo_id)}", f"  \"{condition}\" — encrypted locally ({len(prepared.ciphertext):,} bytes); "
         f"only whether a hunt fires is ever decrypted"],
    )
    return 0


def _balance_document(balance: Any) -> dict[str, Any]:
    return {"owner": hexid(balance.account.owner), "tag": balance.account.tag, "balance": balance.balance,
            "held": balance.held, "releasable": balance.releasable}


def _balance_line(balance: Any) -> str:
    return (f"account {hexid(balance.account.owner)}:{balance.account.tag}: {balance.balance} "
            f"({balance.held} held by a live intendo, {balance.releasable} releasable)")


def command_account_transfer(options: argparse.Namespace) -> int:
    from stagpack.accounts import TransferKind, check_amount, check_tag

    kind = TransferKind(options.action)
    check_tag(options.tag, "--tag")
    check_amount(options.amount, "--amount")
    identity = _identity(options)
    balance = _client(options).transfer(identity, kind, options.tag, options.amount)
    verb = "deposited" if kind is TransferKind.DEPOSIT else "released"
    Output(options.json).emit(_balance_document(balance), [f"{verb} {options.amount}", "  " + _balance_line(balance)])
    return 0


def command_account_balance(options: argparse.Namespace) -> int:
    from stagpack.accounts import Account, check_tag
    from stagpack.identity import check_verify_key

    if (options.identity is None) == (options.owner is None):
        raise InvalidInput("give the account's owner: --identity FILE or --owner PUBLIC_KEY")
    owner = _identity(options).verify_key if options.identity else check_verify_key(parse_hex(options.owner, "--owner"), "--owner")
    balance = _client(options).balance(Account(owner, check_tag(options.tag, "--tag")))
    Output(options.json).emit(_balance_document(balance), [_balance_line(balance)])
    return 0


def _read_proof(path: str) -> Any:
    from stagpack.participant.proofs import IntendoProof

    return IntendoProof.from_bytes(Path(path).read_bytes())


def _proof_lines(proof: Any, verdict: str) -> list[str]:
    claim = proof.claim
    lines = [verdict, f"  signer {hexid(claim.signer)} signed intendo {hexid(claim.intendo_id)} in stag {hexid(claim.stag_id)}"
             + (" (anonymous: its key image is tied to the signer)" if claim.key_image else "")]
    if claim.claimed_threshold:
        lines.append(f"  claimed threshold (stated by the signer, NOT proven): {claim.claimed_threshold}")
    return lines


def command_prove(options: argparse.Namespace) -> int:
    from stagpack import codec
    from stagpack.envelope import IntendoStatement
    from stagpack.participant.proofs import VerifierCard, prove_intendo

    identity = _identity(options)
    statement = codec.decode(IntendoStatement, Path(options.receipt).read_bytes())
    cards = [VerifierCard.from_hex(card) for card in options.verifier]
    proof = prove_intendo(identity, statement, cards, anonymous=statement.participant != identity.verify_key,
                          claimed_threshold=options.claim or "")
    verifiers = [card.key for card in cards]
    Path(options.out).write_bytes(proof.to_bytes())
    Output(options.json).emit(
        {"proof": options.out, "intendo_id": hexid(proof.claim.intendo_id), "verifiers": [hexid(key) for key in verifiers],
         "bytes": proof.proof.size},
        [f"wrote {options.out}: a proof for {len(verifiers)} designated verifier(s) that you signed intendo "
         f"{hexid(proof.claim.intendo_id)} ({proof.proof.size} bytes)",
         "  only they can be convinced by it, and they could have made it themselves: it proves nothing to anyone else"],
    )
    return 0


def command_check_proof(options: argparse.Namespace) -> int:
    from stagpack.errors import IntegrityFailure
    from stagpack.participant.proofs import check_intendo_proof

    proof = _read_proof(options.file)
    verifier = _identity(options).verify_key
    check_intendo_proof(proof, verifier)
    live = None
    if not options.offline:  # the intendo must be in the stag, signed as the statement says
        status = _client(options).intendo_status(proof.claim.stag_id, proof.claim.intendo_id)
        if bytes(status.participant) != proof.statement.participant:
            raise IntegrityFailure("the aggregator holds this intendo under another signer or key image")
        live = status.status
    Output(options.json).emit(
        {"valid": True, "signer": hexid(proof.claim.signer), "intendo_id": hexid(proof.claim.intendo_id),
         "stag_id": hexid(proof.claim.stag_id), "anonymous": bool(proof.claim.key_image), "intendo_status": live,
         "claimed_threshold": proof.claim.claimed_threshold or None},
        [*_proof_lines(proof, "valid proof, designated to you"),
         *([f"  the aggregator has the intendo: {live}"] if live else ["  (not checked with the aggregator: --offline)"]),
         "  it convinces you only if you did not make it: any designated verifier could (`stagpack forge-proof`)"],
    )
    return 0


def command_forge_proof(options: argparse.Namespace) -> int:
    from stagpack.identity import check_verify_key
    from stagpack.participant.proofs import forge_intendo_proof

    shown = _read_proof(options.file)
    identities = [_read_identity(path) for path in options.identity]
    signer = check_verify_key(parse_hex(options.signer, "--signer"), "--signer") if options.signer else shown.claim.signer
    forged = forge_intendo_proof(
        identities, shown.statement, signer, anonymous=bool(shown.claim.key_image),
        claimed_threshold=shown.claim.claimed_threshold, designated=shown.claim.verifiers,
    )
    Path(options.out).write_bytes(forged.to_bytes())
    Output(options.json).emit(
        {"proof": options.out, "signer": hexid(signer), "forged": True},
        [f"wrote {options.out}: the same kind of proof, made by its designated verifier(s) without the signer's key",
         f"  it claims {hexid(signer)} signed intendo {hexid(shown.claim.intendo_id)} and verifies exactly like a real one: "
         "a proof you were shown is no evidence to anyone else"],
    )
    return 0


def command_withdraw(options: argparse.Namespace) -> int:
    client = _client(options)
    height = client.withdraw(_identity(options), parse_hex(options.stag, "stag id"), parse_hex(options.intendo, "intendo id"))
    Output(options.json).emit({"log_height": height}, [f"withdrawn (log height {height})"])
    return 0


def check_hunt_message(hunt: Any, stag_id: bytes) -> None:
    """The hunt's bundle verifies, is for `stag_id`, and the message's own fields say what the
    certificate says (what is printed is what the committee signed)."""
    from stagpack.errors import IntegrityFailure

    hunt.bundle.verify()
    outcome = hunt.bundle.certificate.outcome
    if outcome.stag_id != stag_id or hunt.stag_id != stag_id:
        raise IntegrityFailure("the aggregator sent a hunt certificate for another stag")
    members = tuple((m.intendo_id, m.statement.participant, m.statement.weight) for m in outcome.members)
    stated = (hunt.epoch, hunt.level, hunt.log_height, tuple(hunt.members))
    if stated != (outcome.epoch, outcome.level, outcome.height, members):
        raise IntegrityFailure(f"the aggregator's hunt message (epoch {hunt.epoch}) disagrees with its certificate")


def command_watch(options: argparse.Namespace) -> int:
    from stagpack import codec

    client = _client(options)
    stag_id = parse_hex(options.stag, "stag id")
    seen = 0
    if not options.json:
        print(f"watching stag {options.stag} for hunts (Ctrl-C to stop)", flush=True)
    for hunt in client.watch(stag_id, options.after, options.timeout):
        check_hunt_message(hunt, stag_id)
        outcome = hunt.bundle.certificate.outcome
        if options.out_dir:
            Path(options.out_dir).mkdir(parents=True, exist_ok=True)
            (Path(options.out_dir) / f"hunt-{outcome.epoch}.certificate").write_bytes(codec.encode(hunt.bundle))
        document = {
            "stag_id": hexid(outcome.stag_id), "epoch": outcome.epoch, "level": outcome.level, "log_height": outcome.height,
            "executed_weight": outcome.executed_weight,
            "members": [{"intendo_id": hexid(i), "participant": hexid(p), "weight": w, "member": hexid(key)}
                        for (i, p, w), key in zip(hunt.members, hunt.bundle.certificate.revealed)],
            "verified": True,
        }
        if options.json:
            print(json.dumps(document, sort_keys=True), flush=True)
        else:
            print(f"hunt at epoch {outcome.epoch} (log height {outcome.height}): level {outcome.level} = "
                  f"{outcome.executed_weight} executed before + {len(hunt.members)} members "
                  f"(weight {outcome.level - outcome.executed_weight}); certificate verified", flush=True)
        seen += 1
        if options.count and seen >= options.count:
            break
    return 0


def command_verify(options: argparse.Namespace) -> int:
    from stagpack import codec
    from stagpack.log import CertificateBundle

    bundle = codec.decode(CertificateBundle, Path(options.file).read_bytes())
    bundle.verify()
    outcome = bundle.certificate.outcome
    body = bundle.transcript.body
    Output(options.json).emit(
        {
            "valid": True, "stag_id": hexid(outcome.stag_id), "epoch": outcome.epoch, "level": outcome.level,
            "log_height": outcome.height, "executed_weight": outcome.executed_weight,
            "members": [hexid(member.intendo_id) for member in outcome.members],
            "named": [hexid(key) for key in bundle.certificate.revealed],
            "signers": sorted(signature.index for signature in bundle.certificate.signatures),
            "committee_id": hexid(bundle.transcript.committee_id),
        },
        [
            f"valid hunt certificate for stag {hexid(outcome.stag_id)}",
            f"  epoch {outcome.epoch} (log height {outcome.height}), level {outcome.level}, {len(outcome.members)} members "
            "(each intendo signature checked)",
            f"  signed by keyholders {sorted(s.index for s in bundle.certificate.signatures)} of {body.parties} "
            f"(threshold {body.threshold}); committee {hexid(bundle.transcript.committee_id)[:16]}… transcript verified",
            f"  fixed point: executed {outcome.executed_weight} + members {outcome.level - outcome.executed_weight} = level {outcome.level}",
            *([f"  anonymous stag: every member named by {body.threshold} keyholders' proven decryptions: "
               + ", ".join(hexid(key)[:16] for key in bundle.certificate.revealed)] if bundle.spec.anonymous else []),
        ],
    )
    return 0


# --- the parser ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stagpack",
        description="Threshold-FHE privacy service for coordination markets: encrypted conditional commitments "
        "that fire together, without anyone learning how close they are.",
        epilog=EXIT_STATUS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Callable[[argparse.Namespace], int], help_text: str, parent: Any = commands) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = parent.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    def with_json(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument("--json", action="store_true", help="print one JSON document instead of text")
        return sub

    def with_aggregator(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument("--aggregator", metavar="ADDRESS",
                         help="aggregator address (default: $STAGPACK_AGGREGATOR, else the aggregator in "
                         "addresses.json that `stagpack local up` writes in $STAGPACK_LOCAL_DIR or var/local, "
                         f"if there is one, else {DEFAULT_AGGREGATOR})")
        return with_json(sub)

    def with_local_directory(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument("--dir", help="the deployment's data and log directory (default: $STAGPACK_LOCAL_DIR, else var/local)")
        return sub

    keyholder = commands.add_parser("keyholder", help="run a keyholder service").add_subparsers(dest="action", required=True)
    serve = add("serve", command_keyholder_serve, "serve a keyholder over gRPC (config file and STAGPACK_KEYHOLDER_* variables)", keyholder)
    serve.add_argument("--config", help="JSON configuration file")
    aggregator = commands.add_parser("aggregator", help="run the aggregator service").add_subparsers(dest="action", required=True)
    serve = add("serve", command_aggregator_serve, "serve the aggregator over gRPC (config file and STAGPACK_AGGREGATOR_* variables)", aggregator)
    key = with_json(add("key", command_aggregator_key, "print the aggregator's public key (creating its identity if missing): "
                        "the ceremony names it", aggregator))
    key.add_argument("--config", help="JSON configuration file")
    serve.add_argument("--config", help="JSON configuration file")

    coordinator = commands.add_parser("coordinator", help="the key ceremony's coordinator identity").add_subparsers(
        dest="action", required=True)
    key = with_json(add("key", command_coordinator_key, "print the coordinator's public key (creating its identity if missing): "
                        "every keyholder is configured with it (coordinator_key) before the ceremony", coordinator))
    key.add_argument("--identity", default="coordinator.key", help="the coordinator's identity file (default %(default)s)")

    ceremony = with_json(add("ceremony", command_ceremony, "run the distributed key generation among keyholders"))
    ceremony.add_argument("--keyholder", action="append", required=True, metavar="ADDRESS",
                          help="a keyholder's address, once per keyholder, in committee order")
    ceremony.add_argument("--threshold", type=int, help="keyholders needed to decrypt (default: all; t-of-n needs t > n/2)")
    ceremony.add_argument("--out", required=True, help="directory for the committee bundle (transcript and joint keys)")
    ceremony.add_argument("--skip-if-exists", action="store_true", help="do nothing if --out already holds a committee")
    ceremony.add_argument("--fault-bound", type=int, help="f: keyholders that may be malicious; every step then needs t + f "
                          "keyholders (default 1 where n > t, else 0)")
    ceremony.add_argument("--identity", default="coordinator.key",
                          help="the coordinator's identity file, created if missing (default %(default)s); every keyholder "
                          "must be configured with its public key (coordinator_key)")
    ceremony.add_argument("--aggregator-key", help="public key (hex) of the aggregator the committee serves (`stagpack aggregator key`)")
    ceremony.add_argument("--aggregator-key-file", help="a file holding that key")

    health = with_json(add("health", command_health, "check a service's gRPC health (for container health checks)"))
    health.add_argument("address")
    health.add_argument("--serving", action="store_true", help="require SERVING (keys loaded), not just an answer")
    health.add_argument("--timeout", type=float, default=3.0)

    local = commands.add_parser("local", help="run the whole topology as local processes").add_subparsers(dest="action", required=True)
    up = with_local_directory(add(
        "up", command_local_up,
        "start n keyholders and an aggregator on loopback ports, run the key ceremony (once per directory), and serve "
        "until SIGTERM or Ctrl-C, which stop every service. Writes <dir>/addresses.json, where the other commands "
        "find the aggregator by default", local))
    up.add_argument("--keyholders", type=int, default=5, help="n (default %(default)s)")
    up.add_argument("--threshold", type=int, default=3, help="t: any t keyholders decrypt; t > n/2 (default %(default)s)")
    up.add_argument("--base-port", type=int, default=DEFAULT_BASE_PORT, metavar="PORT",
                    help="the aggregator listens on PORT and keyholder i on PORT+i, all on 127.0.0.1; 0 picks free ports "
                    "(default %(default)s)")
    restart = with_json(with_local_directory(add(
        "restart", command_local_restart,
        "restart one service of a running `local up` (stopped gracefully, started again, awaited until it serves)", local)))
    restart.add_argument("service", metavar="NAME", help="aggregator or keyholder-N")
    restart.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for the restart (default %(default)s)")
    status = with_json(with_local_directory(add(
        "status", command_local_status,
        "each service of a running `local up`: address, pid and health (exit 1 unless all serve)", local)))
    status.add_argument("--timeout", type=float, default=2.0, help="seconds per health check (default %(default)s)")

    demo = add("demo", command_demo, "a committee, a count stag and a capital stag, hundreds of simulated participants; "
               "then one escrow account backing two stags, a stag that pays refunds at its deadline, composed hunts "
               "settled on an EVM, and an anonymous stag with deniable proofs")
    demo.add_argument("--participants", type=int, default=240, help="simulated participants across both stags (default %(default)s)")
    demo.add_argument("--keyholders", type=int, default=5)
    demo.add_argument("--threshold", type=int, default=3, help="t of the t-of-n committee (default %(default)s)")
    demo.add_argument("--epochs", type=int, default=4, help="epochs of arrivals before the pack is left to fire (default %(default)s)")
    demo.add_argument("--in-process", action="store_true", help="run every party in this process instead of as services")
    demo.add_argument("--compose", action="store_true",
                      help="only the composition scene: a migration stag and an investors' stag it triggers, settled in one "
                           "transaction on an embedded EVM (the full demo ends with it)")
    demo.add_argument("--shielded", action="store_true",
                      help="only the shielded scene: an anonymous stag that names nobody until its hunt names every member, "
                           "and a deniable proof checked by one friend and forged by another (the full demo ends with it)")
    demo.add_argument("--dir", help="keep data and logs here (default: a temporary directory)")
    demo.add_argument("--seed", type=int, default=7)

    bench = add("bench", command_bench, "privacy and performance benchmarks: a markdown report with plots")
    bench.add_argument("--out", default="bench-report", help="report directory (default %(default)s)")
    bench.add_argument("--full", action="store_true", help="larger sweeps: 5 keyholders, more epochs, n = 7 (about 10 minutes)")
    bench.add_argument("--seed", type=int, default=1)

    identity = commands.add_parser("identity", help="participant identities").add_subparsers(dest="action", required=True)
    create = with_json(add("create", command_identity_create, "create an Ed25519 participant identity file", identity))
    create.add_argument("--out", required=True)
    create.add_argument("--force", action="store_true", help="overwrite an existing file")
    show = with_json(add("show", command_identity_show, "print an identity's public key", identity))
    show.add_argument("file")
    card = with_json(add("card", command_identity_card, "print your verifier card: give it to friends who may send you "
                         "designated-verifier proofs (`stagpack prove --verifier CARD`)", identity))
    card.add_argument("file")

    stag = commands.add_parser("stag", help="create and inspect stags").add_subparsers(dest="action", required=True)
    create = with_aggregator(add("create", command_stag_create, "create a stag", stag))
    create.add_argument("--kind", choices=["count", "capital"], required=True)
    create.add_argument("--levels", type=int, required=True,
                        help="L: totals 0..L-1 (the stag is full at L-1); 2 up to the committee's slot row width (8192)")
    create.add_argument("--title", default="")
    create.add_argument("--epoch", default="10s",
                        help="time between hunt checks: 500ms, 10s, 2m, 1h (at least 100ms; default %(default)s)")
    create.add_argument("--deadline", help="close the stag after this long (e.g. 30m, at most 100 years); default: never")
    create.add_argument("--eligible", action="append", metavar="PUBLIC_KEY",
                        help="restrict to this participant's Ed25519 public key (64 hex digits); repeat for each")
    create.add_argument("--payload-file", help="opaque execution payload handed to the executor")
    create.add_argument("--beneficiary", metavar="PUBLIC_KEY:TAG",
                        help="capital stags (required): the escrow account a hunt's capital is paid to")
    create.add_argument("--trigger", metavar="STAG_ID",
                        help="compose with another stag of this committee that has not hunted yet: this stag's hunts fire "
                             "only after its first hunt, and execute in one bundle with it (at most 8 triggers deep)")
    create.add_argument("--anonymous", action="store_true",
                        help="count stags: hide who joined until a hunt. Intendos are ring-signed among the --eligible keys "
                             "(2 to 1024), and each hunt names every member it executes")
    create.add_argument("--hook", metavar="ADDRESS",
                        help="a contract the chain executor calls in each hunt's settlement transaction (0x + 40 hex digits; "
                             "refused by the default SQLite ledger)")
    refund = create.add_argument_group(
        "dominant-assurance refunds (capital stags with a --deadline)",
        "A pool escrowed from the funder's account when the stag is created. If the deadline passes without a "
        "hunt, every intendo counted then is paid its bonus; what is left, or the whole pool once a hunt "
        "executes, goes back.")
    refund.add_argument("--refund-pool", type=int, metavar="AMOUNT", help="units escrowed for refunds")
    refund.add_argument("--funder", metavar="IDENTITY_FILE", help="who funds the pool (signs its escrow)")
    refund.add_argument("--refund-from", metavar="TAG", help="the funder's escrow account the pool comes from")
    refund.add_argument("--bonus", type=int, help="a fixed bonus per counted intendo (bonus × (levels-1) ≤ pool); "
                        "default: the pool shared by weight")
    refund.add_argument("--refund-to", metavar="PUBLIC_KEY:TAG", help="where what is left goes (default: the funder's account)")
    fee = create.add_argument_group("fees (capital stags)", "charged from the intendo's escrow account")
    fee.add_argument("--fee-submission", type=int, metavar="AMOUNT", help="per submission, valid or not")
    fee.add_argument("--fee-member", type=int, metavar="AMOUNT", help="per executed member, with its weight")
    fee.add_argument("--fee-committee", metavar="PUBLIC_KEY:TAG", help="the committee's fee account")
    fee.add_argument("--fee-operator", metavar="PUBLIC_KEY:TAG", help="the operator's fee account")
    fee.add_argument("--fee-committee-percent", type=int, default=50, help="the committee's share of each fee (default %(default)s)")
    with_aggregator(add("list", command_stag_list, "list stags", stag))
    status = with_aggregator(add("status", command_stag_status, "public status of a stag (never its progress)", stag))
    status.add_argument("stag", help="stag id (hex)")
    status.add_argument("--intendo", help="show where this intendo stands instead (awaiting, counted, executed, …)")

    submit = with_aggregator(add("submit", command_submit, "encrypt, sign and submit an intendo"))
    submit.add_argument("--identity", required=True, help="participant identity file")
    submit.add_argument("--stag", required=True, help="stag id (hex)")
    submit.add_argument("--others", type=int, help="count stag: I will if at least N others do")
    submit.add_argument("--amount", type=int, help="capital stag: units I commit")
    submit.add_argument("--total", type=int, help="capital stag: if the total reaches this")
    submit.add_argument("--tag", help="capital stag: your escrow account backing the amount (`stagpack account deposit`)")
    submit.add_argument("--receipt", metavar="FILE", help="save the signed statement here, for `stagpack prove`")

    prove = with_json(add("prove", command_prove,
                          "prove to chosen friends, deniably, that you signed an intendo (a designated-verifier proof)"))
    prove.add_argument("--identity", required=True, help="your identity file (the intendo's signer)")
    prove.add_argument("--receipt", required=True, help="the intendo's receipt, saved by `stagpack submit --receipt`")
    prove.add_argument("--verifier", action="append", required=True, metavar="CARD",
                       help="a friend's verifier card (`stagpack identity card`: the key signed by itself, so that it "
                            "could forge the proof); repeat for several (each is convinced unless all collude)")
    prove.add_argument("--claim", metavar="TEXT", help="e.g. 'I will if 4 others do': attached and bound, but NOT proven")
    prove.add_argument("--out", required=True, help="where to write the proof")
    check = with_aggregator(add("check-proof", command_check_proof,
                                "check a designated-verifier proof you were sent (and, unless --offline, that the intendo "
                                "is in the stag)"))
    check.add_argument("file")
    check.add_argument("--identity", required=True, help="your identity file (a designated verifier)")
    check.add_argument("--offline", action="store_true", help="do not ask the aggregator whether the intendo exists")
    forge = with_json(add("forge-proof", command_forge_proof,
                          "as the designated verifier(s), make a proof like one you were shown, without the signer: "
                          "the deniability its signer relies on"))
    forge.add_argument("file", help="a proof designated to you")
    forge.add_argument("--identity", action="append", required=True,
                       help="a designated verifier's identity file; repeat until every verifier of the proof is given")
    forge.add_argument("--signer", metavar="PUBLIC_KEY", help="claim this key signed instead (any key; in an anonymous "
                       "stag any eligible member is as plausible)")
    forge.add_argument("--out", required=True)

    account = commands.add_parser(
        "account", help="escrow accounts that back capital intendos",
        description="Escrow accounts: money an owner holds under a capital tag. A capital intendo names the tag "
        "that backs it and may enter a stag only while the account holds its weight; when its hunt executes, "
        "the weight is paid to the stag's beneficiary.",
    ).add_subparsers(dest="action", required=True)
    for action, help_text in (("deposit", "put money into your account (signed by your identity)"),
                              ("release", "take money out of your account; what a live intendo holds stays")):
        transfer = with_aggregator(add(action, command_account_transfer, help_text, account))
        transfer.add_argument("--identity", required=True, help="the owner's identity file")
        transfer.add_argument("--tag", required=True, help="the capital tag (1-64 characters of A-Z a-z 0-9 . _ -)")
        transfer.add_argument("--amount", type=int, required=True, help="units (1 .. 2^53)")
    balance = with_aggregator(add("balance", command_account_balance, "an account's balance and what live intendos hold", account))
    balance.add_argument("--identity", help="the owner's identity file")
    balance.add_argument("--owner", metavar="PUBLIC_KEY", help="or the owner's public key (hex)")
    balance.add_argument("--tag", required=True)

    withdraw = with_aggregator(add("withdraw", command_withdraw, "withdraw your intendo"))
    withdraw.add_argument("--identity", required=True)
    withdraw.add_argument("--stag", required=True)
    withdraw.add_argument("--intendo", required=True, help="intendo id (hex) printed by submit")

    watch = with_aggregator(add("watch", command_watch, "stream a stag's hunts, verifying each certificate"))
    watch.add_argument("--stag", required=True)
    watch.add_argument("--after", type=int, default=0, help="only hunts after this epoch")
    watch.add_argument("--count", type=int, default=0, help="stop after this many hunts")
    watch.add_argument("--timeout", type=float, help="stop after this many seconds")
    watch.add_argument("--out-dir", help="save each hunt's certificate bundle here (for `stagpack verify`)")

    verify = with_json(add("verify", command_verify, "verify a hunt certificate bundle independently"))
    verify.add_argument("file")
    return parser


def debugging() -> bool:
    """STAGPACK_DEBUG=1: print the traceback of an internal error."""
    return os.environ.get("STAGPACK_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


def describe_os_error(error: OSError) -> str:
    if error.strerror and error.filename is not None:
        return f"{error.filename}: {error.strerror}"
    return str(error) or type(error).__name__


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    options = parser.parse_args(argv)  # bad arguments: argparse prints the usage and exits 2
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(options.handler(options))
    except KeyboardInterrupt:
        return 130
    except StagpackError as error:
        where = getattr(options, "aggregator_source", None)
        print(f"error: {error}" + (f" ({where})" if where and isinstance(error, CommitteeUnavailable) else ""), file=sys.stderr)
        return 2
    except OSError as error:
        print(f"error: {describe_os_error(error)}", file=sys.stderr)
        return 2
    except Exception as error:  # noqa: BLE001 - a bug: say so, never blame the input
        if debugging():
            traceback.print_exc()
        print(f"error: internal error: {type(error).__name__}: {error}", file=sys.stderr)
        if not debugging():
            print("(a bug in stagpack; STAGPACK_DEBUG=1 prints the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
