"""The ceremony's rounds as one table: verb (the `DkgParty` handler), RPC, request, response.

The coordinator (`ceremony.run_ceremony`) calls rounds through a `CeremonyPeer`; the in-process
peer (`local.LocalCeremonyPeer`), the gRPC client and the keyholder's gRPC servicer are all
driven from `CEREMONY_ROUNDS`, so a round is declared once.
"""

from __future__ import annotations

from typing import Any

from stagpack.calls import Call
from stagpack.dkg.messages import (
    Acknowledgement,
    BackupRequest,
    BackupResponse,
    CeremonyPlan,
    ChainRequest,
    ChainResponse,
    CompleteRequest,
    DeliverBackupsRequest,
    FinalizeRequest,
    FinalizeResponse,
    RoundOneRequest,
    RoundOneResponse,
    RoundTwoRequest,
    RoundTwoResponse,
    SelfTestCiphertexts,
    SelfTestCommitment,
    SelfTestCommitRequest,
    SelfTestRequest,
    SelfTestResponse,
    SelfTestRevealRequest,
    SignRequest,
)
from stagpack.committee import TranscriptSignature

PLAN = Call("handle_plan", "CeremonyPlan", CeremonyPlan, Acknowledgement)
CHAIN = Call("handle_chain", "CeremonyChain", ChainRequest, ChainResponse)
ROUND_ONE = Call("handle_round_one", "CeremonyRoundOne", RoundOneRequest, RoundOneResponse)
ROUND_TWO = Call("handle_round_two", "CeremonyRoundTwo", RoundTwoRequest, RoundTwoResponse)
FINALIZE = Call("handle_finalize", "CeremonyFinalize", FinalizeRequest, FinalizeResponse)
BACKUP = Call("handle_backup", "CeremonyBackup", BackupRequest, BackupResponse)
DELIVER_BACKUPS = Call("handle_deliver_backups", "CeremonyDeliverBackups", DeliverBackupsRequest, Acknowledgement)
SELF_TEST = Call("handle_self_test", "CeremonySelfTest", SelfTestRequest, SelfTestCiphertexts)
SELF_TEST_COMMIT = Call("handle_self_test_commit", "CeremonySelfTestCommit", SelfTestCommitRequest, SelfTestCommitment)
SELF_TEST_REVEAL = Call("handle_self_test_reveal", "CeremonySelfTestReveal", SelfTestRevealRequest, SelfTestResponse)
SIGN = Call("handle_sign", "CeremonySign", SignRequest, TranscriptSignature)
COMPLETE = Call("handle_complete", "CeremonyComplete", CompleteRequest, Acknowledgement)

CEREMONY_ROUNDS: tuple[Call[Any, Any], ...] = (
    PLAN, CHAIN, ROUND_ONE, ROUND_TWO, FINALIZE, BACKUP, DELIVER_BACKUPS, SELF_TEST, SELF_TEST_COMMIT, SELF_TEST_REVEAL,
    SIGN, COMPLETE,
)
