"""A participant process for the service tests: submits the intendos it is given, one JSON line
per acknowledged submission on stdout (flushed), and stops at the first failure.

    python submit_worker.py JOB.json

JOB: {"aggregator": "...", "stag_id": hex, "intendos": [{"seed": hex, "level": C, "weight": a}]}
"""

from __future__ import annotations

import json
import sys

from stagpack.accounts import TransferKind
from stagpack.encoding import StagKind, Threshold
from stagpack.errors import StagpackError
from stagpack.identity import SigningIdentity
from stagpack.participant.client import AggregatorClient


def main() -> int:
    job = json.loads(open(sys.argv[1]).read())
    client = AggregatorClient(job["aggregator"], timeout_seconds=30)
    stag_id = bytes.fromhex(job["stag_id"])
    spec = client.spec(stag_id)
    for item in job["intendos"]:
        identity = SigningIdentity(bytes.fromhex(item["seed"]))
        tag = ""
        if spec.kind is StagKind.CAPITAL:  # back the intendo with an escrow deposit of its weight and the stag's fees
            tag = "main"
            fees = spec.fees.submission + spec.fees.member if spec.fees is not None else 0
            try:
                client.transfer(identity, TransferKind.DEPOSIT, tag, item["weight"] + fees)
            except StagpackError as error:
                print(json.dumps({"seed": item["seed"], "error": f"deposit: {error}"}), flush=True)
                return 1
        prepared = client.prepare(spec, identity, Threshold(item["level"], item["weight"]), tag)
        # Announce the intendo before sending it: if this process or the aggregator dies in
        # flight, the test can still find out whether it was committed.
        print(json.dumps({"seed": item["seed"], "sending": prepared.intendo_id.hex()}), flush=True)
        try:
            intendo_id, height = client.submit(prepared)
        except StagpackError as error:
            print(json.dumps({"seed": item["seed"], "error": str(error)}), flush=True)
            return 1
        print(json.dumps({"seed": item["seed"], "intendo_id": intendo_id.hex(), "height": height}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
