"""Distributed key generation: n keyholders create the joint BFV key without any of them (or
the coordinator) ever holding the secret key. See `party` (one keyholder's state machine),
`ceremony` (the coordinator), `rounds` (the table of rounds every transport reads) and
`messages` (the records and the signed transcript)."""

from stagpack.dkg.ceremony import CeremonyPeer, CommitteeBundle, run_ceremony
from stagpack.dkg.local import LocalCeremonyPeer
from stagpack.dkg.party import CeremonyOutcome, DkgParty, Phase

__all__ = [
    "CeremonyOutcome",
    "CeremonyPeer",
    "CommitteeBundle",
    "DkgParty",
    "LocalCeremonyPeer",
    "Phase",
    "run_ceremony",
]
