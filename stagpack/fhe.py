"""The one module that talks to OpenFHE.

Everything else in stagpack sees typed wrappers (`Ciphertext`, `PublicKey`, `SecretKeyShare`,
`KeyMaterial`, `PartialDecryption`, `KeyBackupShare`) and our own errors. This module owns the
BFV parameters (DESIGN.md §5), the serialized forms of every object that crosses a process
boundary, and OpenFHE's quirks:

* list-in/list-out calls (`MultipartyDecryptLead([ct], sk)`), Lead versus Main decryption roles;
* evaluation keys live in a library-wide cache keyed by the secret key's *tag*;
* a ciphertext and a plaintext (or two ciphertexts) with different numbers of RNS towers are
  combined *silently wrongly* by some calls, and a ciphertext does not say how many towers it
  has (`GetLevel` is 0 after `Compress`), so every `Ciphertext` records its tower count and every
  operation checks that its operands agree. There are two levels: the input level (all towers;
  every ciphertext a party supplies) and the evaluation level (after `compress`; the hunt path);
* re-serializing a deserialized object gives different bytes (cereal shares pointers on first
  write only), so ciphertexts that are hashed or compared are first put in canonical form;
* garbage fed to the deserializer can make it allocate without bound, so bytes from outside are
  checked against a template of the exact expected layout before OpenFHE ever parses them;
* the first packed encoding must happen in the thread that built the context (see __init__).
"""

from __future__ import annotations

import ctypes
import enum
import gc
import hashlib
import json
import math
import os
import threading
import weakref
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import numpy.typing as npt

# OpenFHE parallelizes with OpenMP. Several stagpack processes share a machine (a committee on one
# host, the test suite), and OpenMP's busy-waiting threads then slow every call down by an order
# of magnitude (measured: a ciphertext addition 0.1 ms with one thread, 12 ms with two on a busy
# 2-core host). One thread per process is the default; operators may set OMP_NUM_THREADS.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import openfhe  # noqa: E402  (must follow the OpenMP default above)

from stagpack.errors import CryptoFailure, InvalidInput, WrongPhase

SlotVector = npt.NDArray[np.int64]

_BINARY = openfhe.BINARY
_COEFFICIENT_BYTES = 8  # one 64-bit word per coefficient in cereal's binary archive


class NoiseMode(str, enum.Enum):
    """How partial decryptions hide the secret-key-dependent noise (DESIGN.md §5)."""

    FLOODING = "noise-flooding-multiparty"
    FIXED_INSECURE = "fixed-noise-multiparty-INSECURE"


@dataclass(frozen=True)
class FheParameters:
    """BFV parameters. The defaults are the production parameters; change them only knowingly.

    Every ciphertext a party supplies (intendos, masks, throwaways) is a fresh encryption at all
    the towers the depth gives (4): that is where its noise is tested and where the validity
    circuit runs. `evaluation_towers` is the level the hunt path runs at, after `compress` (3 is
    the least that noise-flooding decryption accepts; docs/parameters.md has the measured noise
    at each level). `max_fused_partials` bounds how many partial decryptions one fusion combines
    (own shares plus t-of-n stand-ins); it sizes OpenFHE's flooding and the noise test.
    """

    plaintext_modulus: int = 65537
    multiplicative_depth: int = 2
    noise_mode: NoiseMode = NoiseMode.FLOODING
    evaluation_towers: int = 3
    max_fused_partials: int = 32

    @classmethod
    def insecure_fixed_noise_for_benchmarks(cls) -> FheParameters:
        """FIXED_NOISE_MULTIPARTY: partial decryptions leak plaintext-dependent noise. For
        benchmarks and tests that measure the cost of flooding only; production refuses it."""
        return cls(noise_mode=NoiseMode.FIXED_INSECURE, evaluation_towers=2)

    @property
    def is_secure(self) -> bool:
        return self.noise_mode is NoiseMode.FLOODING

    def to_bytes(self) -> bytes:
        """Canonical JSON, stable across processes; hashed into ceremony transcripts."""
        fields = asdict(self)
        fields["noise_mode"] = self.noise_mode.value
        return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> FheParameters:
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError(f"FHE parameters must be bytes, not {type(data).__name__}")
        try:
            fields = json.loads(bytes(data).decode())
            if not isinstance(fields, dict) or set(fields) != set(cls.__dataclass_fields__):
                raise ValueError("unexpected fields")
            fields["noise_mode"] = NoiseMode(fields["noise_mode"])
            parameters = cls(**fields)
        except RecursionError:  # hostile nesting: json recurses once per level
            raise InvalidInput("malformed FHE parameters: nested too deeply") from None
        except (ValueError, TypeError, UnicodeDecodeError) as error:
            raise InvalidInput(f"malformed FHE parameters: {error}") from None
        for name in ("plaintext_modulus", "multiplicative_depth", "evaluation_towers", "max_fused_partials"):
            value = getattr(parameters, name)
            if type(value) is not int or value <= 0:
                raise InvalidInput(f"FHE parameter {name} must be a positive integer")
        return parameters

    def digest(self) -> bytes:
        return hashlib.sha256(b"stagpack/fhe-parameters/v1\x00" + self.to_bytes()).digest()


# --- opaque wrappers -------------------------------------------------------------------------


class Ciphertext:
    """A BFV ciphertext under the joint key, with `towers` RNS towers: the input level (every
    ciphertext a party supplies) or the evaluation level (the hunt path, after `compress`)."""

    __slots__ = ("_native", "towers")

    def __init__(self, native: openfhe.Ciphertext, towers: int) -> None:
        self._native = native
        self.towers = towers


class PublicKey:
    """A (joint or partial-chain) BFV public key."""

    __slots__ = ("_native", "_bytes")

    def __init__(self, native: openfhe.PublicKey, data: bytes | None = None) -> None:
        self._native = native
        self._bytes = data

    @property
    def key_tag(self) -> str:
        return str(self._native.GetKeyTag())

    def to_bytes(self) -> bytes:
        if self._bytes is None:
            self._bytes = bytes(openfhe.Serialize(self._native, _BINARY))
        return self._bytes

    def digest(self) -> bytes:
        """SHA-256 of the bytes as published; the transcript pins the joint key by this digest."""
        return hashlib.sha256(self.to_bytes()).digest()


class SecretKeyShare:
    """One keyholder's additive share of the BFV secret key (or a t-of-n stand-in key).

    Never serialize this except to seal it at rest (`to_bytes` exists for that alone)."""

    __slots__ = ("_native",)

    def __init__(self, native: openfhe.PrivateKey) -> None:
        self._native = native

    def to_bytes(self) -> bytes:
        return bytes(openfhe.Serialize(self._native, _BINARY))

    def __repr__(self) -> str:
        return "SecretKeyShare(<redacted>)"


class KeyMaterial:
    """A public evaluation-key object from the DKG: a relinearization key (share) or a map of
    rotation keys (share)."""

    __slots__ = ("_native", "kind", "_bytes")

    RELINEARIZATION = "relinearization"
    ROTATION = "rotation"

    def __init__(self, native: object, kind: str, data: bytes | None = None) -> None:
        self._native = native
        self.kind = kind
        self._bytes = data

    def to_bytes(self) -> bytes:
        if self._bytes is None:
            self._bytes = bytes(openfhe.Serialize(self._native, _BINARY))
        return self._bytes

    def digest(self) -> bytes:
        return hashlib.sha256(self.to_bytes()).digest()


class PartialDecryption:
    """One party's partial decryption of one ciphertext (a 1-element ciphertext)."""

    __slots__ = ("_native", "towers")

    def __init__(self, native: openfhe.Ciphertext, towers: int) -> None:
        self._native = native
        self.towers = towers


class KeyBackupShare:
    """A Shamir share of one keyholder's secret key share, held by another keyholder (§6)."""

    __slots__ = ("_native",)

    def __init__(self, native: openfhe.DCRTPoly) -> None:
        self._native = native

    def __repr__(self) -> str:
        return "KeyBackupShare(<redacted>)"


# --- byte-layout templates -------------------------------------------------------------------


@dataclass(frozen=True)
class _Region:
    start: int
    length: int
    tower: int  # index into the tower moduli, or -1 for a key-tag string


class _WireTemplate:
    """The exact byte layout of one kind of serialized object under one key.

    Everything outside the coefficient regions must match the template byte for byte (this pins
    the crypto context, the key tag, the element and tower counts); every coefficient must be
    reduced modulo its tower's modulus. Only then does OpenFHE parse the bytes."""

    def __init__(self, name: str, template: bytes, regions: Sequence[_Region], moduli: Sequence[int]) -> None:
        self.name = name
        self._template = template
        self._regions = tuple(regions)
        self._moduli = tuple(moduli)
        fixed: list[tuple[int, int]] = []
        cursor = 0
        for region in self._regions:
            fixed.append((cursor, region.start))
            cursor = region.start + region.length
        fixed.append((cursor, len(template)))
        self._fixed = tuple(fixed)

    @property
    def size(self) -> int:
        return len(self._template)

    def check(self, data: bytes) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"{self.name} must be bytes, not {type(data).__name__}")
        view = memoryview(data)
        if len(view) != len(self._template):
            raise InvalidInput(
                f"{self.name} has {len(view)} bytes; this committee's {self.name}s have exactly "
                f"{len(self._template)} (truncated, padded or from another crypto context)"
            )
        for start, end in self._fixed:
            if view[start:end] != self._template[start:end]:
                raise InvalidInput(
                    f"{self.name} header does not match this committee's crypto context and key"
                )
        for region in self._regions:
            if region.tower < 0:
                continue
            words = np.frombuffer(view[region.start : region.start + region.length], dtype="<u8")
            if int(words.max(initial=0)) >= self._moduli[region.tower]:
                raise InvalidInput(f"{self.name} has a coefficient outside its modulus")


def _find_regions(samples: Sequence[bytes], ring_dimension: int, towers: int) -> list[_Region]:
    """Locate the coefficient blocks in serialized samples of one kind of object.

    cereal writes each tower as an 8-byte little-endian length (the ring dimension) followed by
    that many 64-bit coefficients. A block is such a length prefix whose payload differs between
    independent samples; every byte that differs between samples must lie inside a block."""
    first = samples[0]
    for other in samples[1:]:
        if len(other) != len(first):
            raise CryptoFailure("serialized layout is not fixed-size; cannot build a wire template")
    reference = np.frombuffer(first, dtype=np.uint8)
    differs = np.zeros(len(reference), dtype=bool)
    for other in samples[1:]:
        differs |= reference != np.frombuffer(other, dtype=np.uint8)
    prefix = int(ring_dimension).to_bytes(_COEFFICIENT_BYTES, "little")
    block = ring_dimension * _COEFFICIENT_BYTES
    regions: list[_Region] = []
    index = 0
    size = len(reference)
    while index < size:
        if not differs[index]:
            index += 1
            continue
        # The block holding this difference starts right after the nearest length prefix before
        # it (a few leading coefficient bytes may coincide in every sample).
        prefix_at = first.rfind(prefix, max(0, index - 2 * len(prefix) - 64), index)
        if prefix_at < 0:
            raise CryptoFailure("unexpected serialized layout; cannot build a wire template")
        start = prefix_at + len(prefix)
        if start + block > size:
            raise CryptoFailure("unexpected serialized layout; cannot build a wire template")
        regions.append(_Region(start, block, len(regions) % towers))
        index = start + block
    if not regions:
        raise CryptoFailure("unexpected serialized layout; cannot build a wire template")
    return regions


def _return_freed_memory() -> None:
    """Ask glibc to give freed heap memory back to the system (a no-op elsewhere)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def release_memory() -> None:
    """Free the OpenFHE objects nothing refers to any more and return the memory to the system.

    A session's ciphertexts are tens of megabytes of C++ memory behind a few small Python
    objects, so Python's collector (which counts objects, not bytes) and glibc's heap keep them
    long after a session ends; a service process calls this after each decryption step
    (keyholder) or session (aggregator)."""
    gc.collect()
    _return_freed_memory()


# --- the context -----------------------------------------------------------------------------


class FheContext:
    """A BFV crypto context with stagpack's parameters, and every operation the system uses.

    Construct one per process per parameter set. Methods that need the committee's joint key
    (parsing ciphertexts and partial decryptions) work after `bind_joint_key`.
    """

    _construction_lock = threading.Lock()
    # OpenFHE's evaluation-key cache is process-wide and keyed by tag, so is this record: each
    # installed tag's keys and the contexts that use them (see release_unused_evaluation_keys).
    _installed: dict[str, tuple[KeyMaterial, KeyMaterial, weakref.WeakSet[FheContext]]] = {}

    def __init__(self, parameters: FheParameters | None = None, *, allow_insecure: bool = False) -> None:
        parameters = parameters or FheParameters()
        if not parameters.is_secure and not allow_insecure:
            raise InvalidInput(
                "refusing FIXED_NOISE_MULTIPARTY parameters: partial decryptions would leak "
                "plaintext-dependent noise; only benchmarks may opt in with allow_insecure=True"
            )
        self.parameters = parameters
        native_parameters = openfhe.CCParamsBFVRNS()
        native_parameters.SetPlaintextModulus(parameters.plaintext_modulus)
        native_parameters.SetMultiplicativeDepth(parameters.multiplicative_depth)
        native_parameters.SetSecurityLevel(openfhe.HEStd_128_classic)
        native_parameters.SetMultiplicationTechnique(openfhe.HPSPOVERQLEVELED)
        native_parameters.SetKeySwitchTechnique(openfhe.HYBRID)
        native_parameters.SetMultipartyMode(
            openfhe.NOISE_FLOODING_MULTIPARTY
            if parameters.noise_mode is NoiseMode.FLOODING
            else openfhe.FIXED_NOISE_MULTIPARTY
        )
        native_parameters.SetThresholdNumOfParties(parameters.max_fused_partials)
        with self._construction_lock:
            context = openfhe.GenCryptoContext(native_parameters)
            for feature in (openfhe.PKE, openfhe.KEYSWITCH, openfhe.LEVELEDSHE, openfhe.ADVANCEDSHE, openfhe.MULTIPARTY):
                context.Enable(feature)
            # Every object we deserialize belongs to a context built here by GenCryptoContext,
            # which already holds its CRT tables; recomputing them on each deserialization made
            # parsing a ciphertext 25x slower (16 ms instead of 0.7 ms, measured).
            openfhe.DisablePrecomputeCRTTablesAfterDeserializaton()
            # The first packed encoding initializes the batching parameters (a primality test
            # drawing on OpenFHE's PRNG). Done first from any thread but the one that built the
            # context, it deadlocks (seen with the pinned wheel: gRPC worker threads hung). Do it
            # here, in the constructing thread.
            context.MakePackedPlaintext([0])
        self._context = context
        self.ring_dimension = int(context.GetRingDimension())
        self.slot_count = self.ring_dimension
        self.row_width = self.slot_count // 2
        self.plaintext_modulus = parameters.plaintext_modulus
        self._tower_moduli = self._read_tower_moduli()
        self.fresh_towers = len(self._tower_moduli)
        # Noise-flooding decryption needs 3 towers; fixed-noise decryption (benchmarks) has only
        # 2 fresh towers at depth 2 and needs no spare one.
        least_towers = 3 if parameters.is_secure else 2
        if not least_towers <= parameters.evaluation_towers <= self.fresh_towers:
            raise InvalidInput(
                f"evaluation_towers must be between {least_towers} and {self.fresh_towers} for these parameters"
            )
        self.input_towers = self.fresh_towers
        self.evaluation_towers = parameters.evaluation_towers
        self._joint_key: PublicKey | None = None
        self._ciphertext_template: _WireTemplate | None = None
        self._partial_templates: dict[int, list[_WireTemplate]] = {}
        self._backup_template: _WireTemplate | None = None
        self._full_zero: openfhe.Ciphertext | None = None
        self._zero_key: openfhe.PrivateKey | None = None
        self._constants: dict[tuple[int, int], openfhe.Plaintext] = {}

    # -- parameters ---------------------------------------------------------------------------

    def _read_tower_moduli(self) -> tuple[int, ...]:
        document = json.loads(openfhe.Serialize(self._context, openfhe.JSON))
        element_parameters = (
            document["value0"]["ptr_wrapper"]["data"]["cc"]["ptr_wrapper"]["data"]["value0"]["value0"]["value0"]["elp"]["ptr_wrapper"]["data"]["p"]
        )
        return tuple(int(tower["ptr_wrapper"]["data"]["value0"]["cm"]["v"]) for tower in element_parameters)

    @property
    def tower_moduli(self) -> tuple[int, ...]:
        """The RNS tower moduli q_0, q_1, … of a fresh ciphertext (compression drops the last)."""
        return self._tower_moduli

    @classmethod
    def installed_key_tags(cls) -> set[str]:
        """The committees (by joint key tag) whose evaluation keys this process holds."""
        with cls._construction_lock:
            return set(cls._installed)

    @property
    def rotation_steps(self) -> tuple[int, ...]:
        """Rotation keys the circuits need: radix-16 steps within a row, and the row swap."""
        steps = []
        step = 1
        while step < self.row_width:
            steps.append(step)
            step *= 16
        steps.append(self.row_width)
        return tuple(steps)

    def describe(self) -> dict[str, object]:
        return {
            "scheme": "BFV",
            "plaintext_modulus": self.plaintext_modulus,
            "ring_dimension": self.ring_dimension,
            "slots": self.slot_count,
            "multiplicative_depth": self.parameters.multiplicative_depth,
            "security": "HEStd_128_classic",
            "noise_mode": self.parameters.noise_mode.value,
            "input_towers": self.input_towers,
            "evaluation_towers": self.evaluation_towers,
            "modulus_bits": sum(modulus.bit_length() for modulus in self._tower_moduli),
        }

    # -- keys ---------------------------------------------------------------------------------

    def generate_key_share(self, previous: PublicKey | None) -> tuple[SecretKeyShare, PublicKey]:
        """DKG public-key chain step: a fresh secret share and the chain's public key so far."""
        key_pair = self._context.KeyGen() if previous is None else self._context.MultipartyKeyGen(previous._native)
        return SecretKeyShare(key_pair.secretKey), PublicKey(key_pair.publicKey)

    def relinearization_round_one(self, secret: SecretKeyShare, lead_share: KeyMaterial | None) -> KeyMaterial:
        """Relinearization key, round one: the lead switches s_1 to s_1; others join its key."""
        if lead_share is None:
            native = self._context.KeySwitchGen(secret._native, secret._native)
        else:
            native = self._context.MultiKeySwitchGen(secret._native, secret._native, lead_share._native)
        return KeyMaterial(native, KeyMaterial.RELINEARIZATION)

    def combine_relinearization_round_one(self, shares: Sequence[KeyMaterial], joint_tag: str) -> KeyMaterial:
        combined = shares[0]._native
        for share in shares[1:]:
            combined = self._context.MultiAddEvalKeys(combined, share._native, joint_tag)
        return KeyMaterial(combined, KeyMaterial.RELINEARIZATION)

    def relinearization_round_two(self, secret: SecretKeyShare, combined_round_one: KeyMaterial, joint_tag: str) -> KeyMaterial:
        """Relinearization key, round two: each party multiplies the combined key by its share."""
        native = self._context.MultiMultEvalKey(secret._native, combined_round_one._native, joint_tag)
        return KeyMaterial(native, KeyMaterial.RELINEARIZATION)

    def combine_relinearization_round_two(self, shares: Sequence[KeyMaterial], joint_tag: str) -> KeyMaterial:
        combined = shares[0]._native
        for share in shares[1:]:
            combined = self._context.MultiAddEvalMultKeys(combined, share._native, joint_tag)
        return KeyMaterial(combined, KeyMaterial.RELINEARIZATION)

    def rotation_key_share(self, secret: SecretKeyShare, lead_share: KeyMaterial | None, joint_tag: str) -> KeyMaterial:
        """Rotation keys for `rotation_steps`: the lead generates its own, others join them."""
        steps = list(self.rotation_steps)
        if lead_share is None:
            self._context.EvalAtIndexKeyGen(secret._native, steps)
            native = self._context.GetEvalAutomorphismKeyMap(secret._native.GetKeyTag())
        else:
            native = self._context.MultiEvalAtIndexKeyGen(secret._native, lead_share._native, steps, joint_tag)
        return KeyMaterial(native, KeyMaterial.ROTATION)

    def combine_rotation_shares(self, shares: Sequence[KeyMaterial], joint_tag: str) -> KeyMaterial:
        combined = shares[0]._native
        for share in shares[1:]:
            combined = self._context.MultiAddEvalAutomorphismKeys(combined, share._native, joint_tag)
        return KeyMaterial(combined, KeyMaterial.ROTATION)

    def install_evaluation_keys(self, relinearization: KeyMaterial, rotation: KeyMaterial, joint_tag: str) -> None:
        """Put the joint evaluation keys into OpenFHE's process-wide key cache. Idempotent: when
        several parties share a process (tests, the in-process demo) the first one installs."""
        with self._construction_lock:
            installed = self._installed.get(joint_tag)
            if installed is None:
                self._context.InsertEvalMultKey([relinearization._native], joint_tag)
                self._context.InsertEvalAutomorphismKey(rotation._native, joint_tag)
                installed = self._installed[joint_tag] = (relinearization, rotation, weakref.WeakSet())
            installed[2].add(self)

    @classmethod
    def release_unused_evaluation_keys(cls) -> int:
        """Free the evaluation keys that no living context uses. OpenFHE keeps them in static
        maps for the life of the process (hundreds of MB per committee), which matters to a
        process that creates many contexts, such as a test run. There is no per-tag removal in
        the Python API, so the maps are cleared and the keys still in use are inserted again:
        call this only while no key ceremony or evaluation runs in the process. Freed memory
        is then handed back to the system (glibc keeps it otherwise: measured 1.3 GB → 0.15 GB
        after four 2-of-3 committees). Returns how many committees' keys were freed."""
        gc.collect()
        with cls._construction_lock:
            unused = [tag for tag, (_, _, users) in cls._installed.items() if not users]
            if unused:
                for tag in unused:
                    del cls._installed[tag]
                openfhe.ClearEvalMultKeys()
                openfhe.CryptoContext.ClearEvalAutomorphismKeys()
                for tag, (relinearization, rotation, users) in cls._installed.items():
                    for context in list(users)[:1]:
                        context._context.InsertEvalMultKey([relinearization._native], tag)
                        context._context.InsertEvalAutomorphismKey(rotation._native, tag)
        _return_freed_memory()
        return len(unused)

    def public_key_from_bytes(self, data: bytes) -> PublicKey:
        native = self._deserialize(openfhe.DeserializePublicKeyString, data, "public key")
        return PublicKey(native, bytes(data))

    def secret_key_from_bytes(self, data: bytes) -> SecretKeyShare:
        return SecretKeyShare(self._deserialize(openfhe.DeserializePrivateKeyString, data, "secret key share"))

    def key_material_from_bytes(self, data: bytes, kind: str) -> KeyMaterial:
        if kind == KeyMaterial.RELINEARIZATION:
            native = self._deserialize(openfhe.DeserializeEvalKeyString, data, "relinearization key")
        elif kind == KeyMaterial.ROTATION:
            native = self._deserialize(openfhe.DeserializeEvalKeyMapString, data, "rotation keys")
        else:
            raise InvalidInput(f"unknown key material kind {kind!r}")
        return KeyMaterial(native, kind, bytes(data))

    def _deserialize(self, function: Callable[[bytes, object], Any], data: bytes, what: str) -> Any:
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError(f"{what} must be bytes, not {type(data).__name__}")
        if len(data) < 64:
            raise InvalidInput(f"{what} is truncated ({len(data)} bytes)")
        try:
            return function(bytes(data), _BINARY)
        except (RuntimeError, ValueError, MemoryError, TypeError) as error:
            raise InvalidInput(f"{what} does not deserialize: {str(error)[:120]}") from None

    # -- binding to the committee key ---------------------------------------------------------

    def bind_joint_key(self, public_key: PublicKey) -> None:
        """Fix the committee's joint public key: ciphertexts and partial decryptions parsed by
        this context must be under it. Builds the byte-layout templates."""
        if self._joint_key is not None:
            if self._joint_key.key_tag != public_key.key_tag:
                raise WrongPhase("this context is already bound to another committee key")
            return
        self._joint_key = public_key
        samples = [self._encrypt_native(public_key, self._random_slots(seed)) for seed in (1, 2, 3)]
        ciphertext_bytes = [self._canonical(sample) for sample in samples]
        self._ciphertext_template = _WireTemplate(
            "ciphertext",
            ciphertext_bytes[0],
            _find_regions(ciphertext_bytes, self.ring_dimension, self.input_towers),
            self._tower_moduli,
        )
        # A partial decryption records its ciphertext's noise-scale degree (1 when fresh, +1 per
        # ciphertext multiplication); accept each degree the multiplicative depth allows, at
        # both levels.
        throwaway = self._context.KeyGen()
        self._partial_templates = {}
        for towers in sorted({self.input_towers, self.evaluation_towers}):
            leveled = [self._context.Compress(sample, towers) for sample in samples]
            self._partial_templates[towers] = []
            for degree in range(1, self.parameters.multiplicative_depth + 2):
                partial_bytes = []
                for sample in leveled:
                    shaped = sample.Clone()
                    shaped.SetNoiseScaleDeg(degree)
                    partial_bytes.append(self._canonical(self._context.MultipartyDecryptMain([shaped], throwaway.secretKey)[0]))
                self._partial_templates[towers].append(
                    _WireTemplate(
                        "partial decryption",
                        partial_bytes[0],
                        _find_regions(partial_bytes, self.ring_dimension, towers),
                        self._tower_moduli,
                    )
                )
        self._full_zero = self._context.Encrypt(public_key._native, self._context.MakePackedPlaintext([0]))
        # Backup shares (DESIGN.md §6) come from other keyholders: template them too. A share is
        # a full-tower polynomial; Shamir shares of throwaway keys give independent samples.
        backup_bytes = [
            self._backup_bytes(self._context.ShareKeys(self._context.KeyGen().secretKey, 3, 2, 1, "shamir")[2])
            for _ in range(3)
        ]
        # ShareKeys does not fully reduce its shares when t >= 3 (coefficients up to about
        # (t-1)·q were measured), and RecoverSharedKey accepts them: pin the layout only.
        self._backup_template = _WireTemplate(
            "key backup share",
            backup_bytes[0],
            _find_regions(backup_bytes, self.ring_dimension, self.fresh_towers),
            [1 << 64] * self.fresh_towers,
        )

    @property
    def joint_key(self) -> PublicKey:
        if self._joint_key is None:
            raise WrongPhase("no committee key is bound yet (has the key ceremony completed?)")
        return self._joint_key

    @property
    def ciphertext_size(self) -> int:
        """Bytes of one serialized input-level ciphertext (an intendo, a mask) under the bound key."""
        if self._ciphertext_template is None:
            raise WrongPhase("no committee key is bound yet")
        return self._ciphertext_template.size

    # -- encryption and evaluation ------------------------------------------------------------

    def _random_slots(self, seed: int) -> SlotVector:
        generator = np.random.default_rng(seed)
        return generator.integers(0, self.plaintext_modulus, self.slot_count, dtype=np.int64)

    def _check_slots(self, slots: npt.ArrayLike) -> SlotVector:
        vector = np.asarray(slots, dtype=np.int64)
        if vector.ndim != 1 or vector.shape[0] != self.slot_count:
            raise InvalidInput(f"a slot vector must have exactly {self.slot_count} entries")
        if vector.size and (int(vector.min()) < 0 or int(vector.max()) >= self.plaintext_modulus):
            raise InvalidInput(f"slot values must be in [0, {self.plaintext_modulus})")
        return vector

    def _plaintext(self, slots: npt.ArrayLike, towers: int) -> openfhe.Plaintext:
        vector = self._check_slots(slots)
        return self._context.MakePackedPlaintext(vector, 1, self.fresh_towers - towers)

    def _encrypt_native(self, public_key: PublicKey, slots: npt.ArrayLike) -> openfhe.Ciphertext:
        return self._context.Encrypt(public_key._native, self._plaintext(slots, self.fresh_towers))

    @staticmethod
    def _same_level(left: Ciphertext, right: Ciphertext) -> int:
        if left.towers != right.towers:
            raise InvalidInput(f"cannot combine a ciphertext at {left.towers} towers with one at {right.towers}")
        return left.towers

    def encrypt(self, public_key: PublicKey, slots: npt.ArrayLike) -> Ciphertext:
        """Encrypt a slot vector (values in [0, p)) at the input level (every tower)."""
        return Ciphertext(self._encrypt_native(public_key, slots), self.input_towers)

    def compress(self, ciphertext: Ciphertext) -> Ciphertext:
        """The same plaintext at the evaluation level: a modulus switch, deterministic (every
        party gets the same bytes), dividing the noise by the dropped towers' modulus."""
        if ciphertext.towers == self.evaluation_towers:
            return ciphertext
        if ciphertext.towers < self.evaluation_towers:
            raise InvalidInput(f"a ciphertext at {ciphertext.towers} towers cannot go up to {self.evaluation_towers}")
        return Ciphertext(self._context.Compress(ciphertext._native, self.evaluation_towers), self.evaluation_towers)

    def add(self, left: Ciphertext, right: Ciphertext) -> Ciphertext:
        level = self._same_level(left, right)  # before OpenFHE sees them: it mixes levels wrongly
        return Ciphertext(self._context.EvalAdd(left._native, right._native), level)

    def subtract(self, left: Ciphertext, right: Ciphertext) -> Ciphertext:
        level = self._same_level(left, right)
        return Ciphertext(self._context.EvalSub(left._native, right._native), level)

    def add_many(self, ciphertexts: Iterable[Ciphertext]) -> Ciphertext:
        items = list(ciphertexts)
        if not items:
            raise InvalidInput("cannot sum an empty list of ciphertexts")
        total = items[0]
        for item in items[1:]:
            total = self.add(total, item)
        return total

    def add_plain(self, ciphertext: Ciphertext, slots: npt.ArrayLike) -> Ciphertext:
        plaintext = self._plaintext(slots, ciphertext.towers)
        return Ciphertext(self._context.EvalAdd(ciphertext._native, plaintext), ciphertext.towers)

    def subtract_plain(self, ciphertext: Ciphertext, slots: npt.ArrayLike) -> Ciphertext:
        plaintext = self._plaintext(slots, ciphertext.towers)
        return Ciphertext(self._context.EvalSub(ciphertext._native, plaintext), ciphertext.towers)

    def multiply(self, left: Ciphertext, right: Ciphertext) -> Ciphertext:
        """Slot-wise product, relinearized (one multiplicative level)."""
        level = self._same_level(left, right)
        return Ciphertext(self._context.EvalMult(left._native, right._native), level)

    def multiply_plain(self, ciphertext: Ciphertext, slots: npt.ArrayLike) -> Ciphertext:
        plaintext = self._plaintext(slots, ciphertext.towers)
        return Ciphertext(self._context.EvalMult(ciphertext._native, plaintext), ciphertext.towers)

    def _constant(self, factor: int, towers: int) -> openfhe.Plaintext:
        """The constant plaintext `factor` (cached: encoding a plaintext costs about 2 ms)."""
        if type(factor) is not int or not 1 <= factor < self.plaintext_modulus:
            raise InvalidInput(f"a scale factor is an integer in 1..{self.plaintext_modulus - 1}")
        key = (factor, towers)
        plaintext = self._constants.get(key)
        if plaintext is None:
            plaintext = self._plaintext(np.full(self.slot_count, factor, dtype=np.int64), towers)
            with self._construction_lock:
                if len(self._constants) >= 4096:
                    self._constants.clear()
                self._constants[key] = plaintext
        return plaintext

    def scale(self, ciphertext: Ciphertext, factors: Sequence[int]) -> Ciphertext:
        """(Π factors) · ciphertext, as an integer: multiplying by the constant plaintext c is
        multiplying both elements by the integer c, so the plaintext becomes Π·m mod p and the
        noise grows by exactly Π, which may be far above p (each factor is below p)."""
        native = ciphertext._native
        for factor in factors:
            native = self._context.EvalMult(native, self._constant(factor, ciphertext.towers))
        return Ciphertext(native, ciphertext.towers)

    def rotate(self, ciphertext: Ciphertext, step: int) -> Ciphertext:
        """Rotate each row left by `step` (one of `rotation_steps`; `row_width` swaps the rows)."""
        if step not in self.rotation_steps:
            raise InvalidInput(f"no rotation key for step {step}")
        return Ciphertext(self._context.EvalAtIndex(ciphertext._native, step), ciphertext.towers)

    # -- serialization ------------------------------------------------------------------------

    def _canonical(self, native: openfhe.Ciphertext) -> bytes:
        first = openfhe.Serialize(native, _BINARY)
        return bytes(openfhe.Serialize(openfhe.DeserializeCiphertextString(first, _BINARY), _BINARY))

    def ciphertext_to_bytes(self, ciphertext: Ciphertext) -> bytes:
        """Canonical bytes: equal ciphertexts give equal bytes in every process."""
        return self._canonical(ciphertext._native)

    def ciphertext_from_bytes(self, data: bytes) -> Ciphertext:
        """Parse a ciphertext a party supplied (an intendo, a mask), refusing anything that is not
        exactly an input-level ciphertext under the bound joint key (checked before OpenFHE
        parses a byte)."""
        if self._ciphertext_template is None:
            raise WrongPhase("no committee key is bound yet")
        self._ciphertext_template.check(data)
        return Ciphertext(self._deserialize(openfhe.DeserializeCiphertextString, data, "ciphertext"), self.input_towers)

    def ciphertext_digest(self, ciphertext: Ciphertext) -> bytes:
        return hashlib.sha256(self.ciphertext_to_bytes(ciphertext)).digest()

    # -- threshold decryption -----------------------------------------------------------------

    def partial_decrypt(self, ciphertext: Ciphertext, secret: SecretKeyShare, *, lead: bool) -> PartialDecryption:
        """One party's partial decryption; exactly one partial per fusion is a `lead` partial."""
        call = self._context.MultipartyDecryptLead if lead else self._context.MultipartyDecryptMain
        try:
            return PartialDecryption(call([ciphertext._native], secret._native)[0], ciphertext.towers)
        except RuntimeError as error:
            raise CryptoFailure(f"partial decryption failed: {str(error)[:120]}") from None

    def public_lead_partial(self, ciphertext: Ciphertext) -> PartialDecryption:
        """The lead term of a threshold decryption (c0 plus flooding noise) needs no secret: it
        is a lead partial under the zero key. Whoever fuses computes it, so keyholders only ever
        produce main partials and one partial per ciphertext serves every quorum."""
        if self._zero_key is None:
            zero = self._context.EvalSub(self._require_full_zero(), self._require_full_zero()).GetElements()[0]
            key = self._context.KeyGen().secretKey
            self._context.RecoverSharedKey(key, {1: zero, 2: zero}, 2, 2, "shamir")
            self._zero_key = key
        return PartialDecryption(self._context.MultipartyDecryptLead([ciphertext._native], self._zero_key)[0], ciphertext.towers)

    def partial_to_bytes(self, partial: PartialDecryption) -> bytes:
        return self._canonical(partial._native)

    def _partial_template(self, data: bytes) -> tuple[_WireTemplate, int]:
        """The template a partial's bytes match, and the tower count of its level."""
        if not self._partial_templates:
            raise WrongPhase("no committee key is bound yet")
        mismatch: InvalidInput | None = None
        for towers, templates in self._partial_templates.items():
            for template in templates:
                try:
                    template.check(data)
                except InvalidInput as error:
                    mismatch = error
                    continue
                return template, towers
        assert mismatch is not None
        raise mismatch

    def partial_from_bytes(self, data: bytes) -> PartialDecryption:
        _, towers = self._partial_template(data)
        return PartialDecryption(self._deserialize(openfhe.DeserializeCiphertextString, data, "partial decryption"), towers)

    def _fuse_native(self, partials: Sequence[PartialDecryption], encoding: object) -> openfhe.Plaintext:
        if not partials:
            raise InvalidInput("nothing to fuse")
        if len({partial.towers for partial in partials}) != 1:
            raise InvalidInput("partial decryptions of different levels cannot be fused together")
        natives = []
        for partial in partials:
            native = partial._native.Clone()
            native.SetEncodingType(encoding)
            natives.append(native)
        try:
            plaintext = self._context.MultipartyDecryptFusion(natives)
        except RuntimeError as error:
            raise CryptoFailure(f"fusion failed: {str(error)[:120]}") from None
        plaintext.SetLength(self.slot_count)
        return plaintext

    def fuse(self, partials: Sequence[PartialDecryption]) -> SlotVector:
        """Combine partial decryptions into the plaintext slot vector (values in [0, p)).

        Only `stagpack.decrypt` calls this: it turns slot vectors into the facts DESIGN.md §3
        allows to be revealed, and nothing else leaves it."""
        plaintext = self._fuse_native(partials, openfhe.PACKED_ENCODING)
        return np.mod(np.asarray(plaintext.GetPackedValueArray(), dtype=np.int64), self.plaintext_modulus)

    def _fuse_coefficients(self, partials: Sequence[PartialDecryption]) -> npt.NDArray[np.int64]:
        plaintext = self._fuse_native(partials, openfhe.COEF_PACKED_ENCODING)
        return np.mod(np.asarray(plaintext.GetCoefPackedValue(), dtype=np.int64), self.plaintext_modulus)

    def _doubled(self, partial: PartialDecryption, bits: int) -> PartialDecryption:
        """2^bits · partial, as an integer (by constant plaintexts of at most 2^16)."""
        native = partial._native
        for chunk in [16] * (bits // 16) + ([bits % 16] if bits % 16 else []):
            native = self._context.EvalMult(native, self._constant(1 << chunk, partial.towers))
        return PartialDecryption(native, partial.towers)

    def noise_reading(self, partials: Sequence[PartialDecryption], bits: int) -> int:
        """How far the fused decryption's noise e (flooding included) reaches, read `bits` below
        the plaintext: max over the coefficients of |round(2^bits·e/Δ)|. It is 0 exactly when
        every coefficient's noise is below about Δ/2^(bits+1).

        Fusing partials that were each doubled `bits` times gives 2^bits·m + round(2^bits·e/Δ)
        in every coefficient of the plaintext polynomial (read coefficient-packed, before batch
        decoding); subtracting 2^bits times the ordinary fusion leaves the rounded noise. It
        uses only the partials the fuser holds anyway, and reveals about the plaintext nothing
        the ordinary fusion does not."""
        plain = self._fuse_coefficients(partials)
        raised = self._fuse_coefficients([self._doubled(partial, bits) for partial in partials])
        p = self.plaintext_modulus
        reading = np.mod(raised - (pow(2, bits, p) * plain) % p, p)
        reading = np.where(reading > p // 2, reading - p, reading)
        return int(np.abs(reading).max())

    @property
    def noise_reading_bits(self) -> int:
        """The reading depth of the noise test: the largest k such that Δ/2^(k+1) exceeds twice
        the flooding of the largest fusion (max_fused_partials + the lead term, each partial's
        flooding below Q/(2·q0)): 2^(k+1)·(F + 1)·p ≤ q0. An honest fusion then always reads
        0, whatever the flooding drew; at the production parameters k = 37."""
        fused = self.parameters.max_fused_partials + 1
        return int(math.floor(math.log2(self._tower_moduli[0] / (fused * self.plaintext_modulus)))) - 1

    def flooding_bits(self, towers: int) -> float:
        """log2 of one partial decryption's largest flooding noise at `towers` towers: OpenFHE
        floods with noise uniform modulo the product of every tower but the first."""
        return math.log2(math.prod(self._tower_moduli[1:towers]) / 2)

    def delta_bits(self, towers: int) -> float:
        """log2 Δ = log2(Q/p) at `towers` towers."""
        return math.log2(math.prod(self._tower_moduli[:towers]) / self.plaintext_modulus)

    def measure_noise_bits(self, ciphertext: Ciphertext, secret: SecretKeyShare, message: npt.ArrayLike | None = None) -> float:
        """log2 of the largest noise coefficient of `ciphertext`, decrypted with a whole secret
        key (a one-keyholder committee's): a measuring instrument for tests and
        docs/parameters.md — production never holds a whole key. Exact to about 2^-13.

        Decrypting 2^k·ct coefficient-packed gives 2^k·m + round(2^k·e/Δ) per coefficient; k
        grows by as many doublings as keep the reading unwrapped until it is at least p/8.
        `message` pins the plaintext polynomial (pass zeros for an output that must be zero)
        when the noise may reach Δ/4."""
        p = self.plaintext_modulus

        def coefficients(native: openfhe.Ciphertext) -> npt.NDArray[np.int64]:
            clone = native.Clone()
            clone.SetEncodingType(openfhe.COEF_PACKED_ENCODING)
            plaintext = self._context.Decrypt(secret._native, clone)
            plaintext.SetLength(self.slot_count)
            return np.mod(np.asarray(plaintext.GetCoefPackedValue(), dtype=np.int64), p)

        base = coefficients(ciphertext._native)
        plain = base if message is None else np.mod(np.asarray(message, dtype=np.int64), p)
        native, bits = ciphertext._native, 0
        while True:
            reading = np.mod((coefficients(native) if bits else base) - (pow(2, bits, p) * plain) % p, p)
            reading = np.where(reading > p // 2, reading - p, reading)
            largest = int(np.abs(reading).max())
            if largest >= p // 8 or bits > 4 * 64 * ciphertext.towers:
                return math.log2(largest) + self.delta_bits(ciphertext.towers) - bits if largest else float("-inf")
            for _ in range(max(1, int(math.log2((p // 4 - 1) / (largest + 1.0))))):
                native = self._context.EvalAdd(native, native)
                bits += 1

    # -- what a dishonest party can do (tests and the security benchmark) ----------------------
    # Each uses public information only: a keyholder or participant needs no secret to do this.
    # Production code never calls them; they exist so that attacks run through the real protocol.

    def shifted_partial(self, partial: bytes, ciphertext: Ciphertext, shift: npt.ArrayLike) -> bytes:
        """`partial` plus the lead term of Δ·shift: any fusion that includes it reveals the
        plaintext plus `shift`, and the bytes stay a well-formed partial."""
        template, _ = self._partial_template(partial)
        difference = self.subtract(self.add_plain(ciphertext, shift), ciphertext)
        bump = self.public_lead_partial(difference)
        shifted = self._context.EvalAdd(self.partial_from_bytes(partial)._native, bump._native)
        data = self._canonical(shifted)
        template.check(data)
        return data

    def garbled_partial(self, partial: bytes, seed: int) -> bytes:
        """`partial` with one tower's coefficients replaced by random values below its modulus:
        structurally valid (header, sizes, reduced coefficients), wrong to any fusion."""
        template, _ = self._partial_template(partial)
        region = next(region for region in template._regions if region.tower >= 0)
        words = np.random.default_rng(seed).integers(0, self._tower_moduli[region.tower], region.length // 8, dtype=np.uint64)
        garbled = bytearray(partial)
        garbled[region.start : region.start + region.length] = words.astype("<u8").tobytes()
        template.check(bytes(garbled))
        return bytes(garbled)

    def fuse_scaled(self, partials: Sequence[PartialDecryption], bits: int) -> SlotVector:
        """The slots of a fusion of partials each scaled by 2^bits: 2^bits·m plus the batch
        decoding of round(2^bits·e/Δ) — the noise, read `bits` below the plaintext. What
        whoever fuses can compute from partials it holds (the attack a crafted noise enables)."""
        plaintext = self._fuse_native([self._doubled(partial, bits) for partial in partials], openfhe.PACKED_ENCODING)
        return np.mod(np.asarray(plaintext.GetPackedValueArray(), dtype=np.int64), self.plaintext_modulus)

    def with_added_noise(self, ciphertext: bytes, noise: int) -> bytes:
        """An input-level ciphertext with the constant `noise` added to c0 (in every tower): it
        decrypts to the same plaintext while |noise| stays below Δ/2, and any product with it
        carries noise·(the other operand's plaintext). What a party that crafts the noise of
        its own mask or intendo sends."""
        template = self._require_ciphertext_template()
        template.check(ciphertext)
        crafted = bytearray(ciphertext)
        for region in template._regions[: self.input_towers]:  # c0's towers come first
            modulus = self._tower_moduli[region.tower]
            words = np.frombuffer(ciphertext[region.start : region.start + region.length], dtype="<u8").astype(object)
            bumped = np.array([(int(word) + noise) % modulus for word in words], dtype=np.uint64)
            crafted[region.start : region.start + region.length] = bumped.astype("<u8").tobytes()
        template.check(bytes(crafted))
        return bytes(crafted)

    def with_flipped_bit(self, ciphertext: bytes, coefficient: int, bit: int = 0) -> bytes:
        """An input-level ciphertext with one bit of one coefficient flipped, still below its
        tower's modulus: it passes every byte-layout check and decrypts to garbage noise."""
        template = self._require_ciphertext_template()
        template.check(ciphertext)
        region = template._regions[coefficient * 8 // template._regions[0].length % len(template._regions)]
        offset = region.start + (coefficient * 8) % region.length
        word = int.from_bytes(ciphertext[offset : offset + 8], "little") ^ (1 << bit)
        if word >= self._tower_moduli[region.tower]:
            raise InvalidInput("flipping that bit leaves the modulus; pick another")
        flipped = bytearray(ciphertext)
        flipped[offset : offset + 8] = word.to_bytes(8, "little")
        return bytes(flipped)

    def _require_ciphertext_template(self) -> _WireTemplate:
        if self._ciphertext_template is None:
            raise WrongPhase("no committee key is bound yet")
        return self._ciphertext_template

    # -- t-of-n backups (DESIGN.md §6) --------------------------------------------------------

    def share_secret_key(self, secret: SecretKeyShare, parties: int, threshold: int, index: int) -> dict[int, KeyBackupShare]:
        """Shamir-share one party's key share: {holder index: share} for every other party."""
        shares = self._context.ShareKeys(secret._native, parties, threshold, index, "shamir")
        return {int(holder): KeyBackupShare(poly) for holder, poly in shares.items()}

    def _backup_bytes(self, share: openfhe.DCRTPoly) -> bytes:
        container = self._require_full_zero().Clone()
        container.SetElements([share])
        return self._canonical(container)  # canonical: a share parsed and re-sealed gives the same bytes

    def backup_share_to_bytes(self, share: KeyBackupShare) -> bytes:
        return self._backup_bytes(share._native)

    def backup_share_from_bytes(self, data: bytes) -> KeyBackupShare:
        """Parse a backup share, refusing anything but exactly a share under the bound joint key
        (checked before OpenFHE parses a byte: a flipped length field makes it allocate without
        bound)."""
        if self._backup_template is None:
            raise WrongPhase("no committee key is bound yet")
        self._backup_template.check(data)
        native = self._deserialize(openfhe.DeserializeCiphertextString, data, "key backup share")
        elements = native.GetElements()
        if len(elements) != 1:
            raise InvalidInput("a key backup share has exactly one element")
        return KeyBackupShare(elements[0])

    def stand_in_key(
        self, backup: KeyBackupShare, holder: int, quorum: Sequence[int], parties: int, threshold: int
    ) -> SecretKeyShare:
        """The weighted key λ_holder^quorum · share with which `holder` stands in for an offline
        party: interpolating (its share, zero for the rest of the quorum) at 0."""
        if holder not in quorum:
            raise InvalidInput("the holder must be in the quorum")
        zero = self._context.EvalSub(self._require_full_zero(), self._require_full_zero()).GetElements()[0]
        points = {member: (backup._native if member == holder else zero) for member in quorum}
        weighted = self._context.KeyGen().secretKey
        try:
            self._context.RecoverSharedKey(weighted, points, parties, threshold, "shamir")
        except RuntimeError as error:
            raise CryptoFailure(f"stand-in key derivation failed: {str(error)[:120]}") from None
        return SecretKeyShare(weighted)

    def check_threshold_support(self) -> None:
        """Self-check of the t-of-n method on this installation (DESIGN.md §6): a throwaway
        3-party key, Shamir backups, and a decryption by 2 parties standing in for the third,
        with the public lead term. It relies on the pinned OpenFHE's share format; a different
        build that behaves otherwise must not serve keys. Raises CryptoFailure."""
        context = self._context
        try:
            secrets = []
            public = None
            for _ in range(3):
                pair = context.KeyGen() if public is None else context.MultipartyKeyGen(public)
                secrets.append(pair.secretKey)
                public = pair.publicKey
            values = self._random_slots(7)
            fresh = context.Encrypt(public, self._plaintext(values, self.fresh_towers))
            ciphertext = context.Compress(fresh, self.evaluation_towers)
            zero = context.EvalSub(fresh, fresh).GetElements()[0]
            shares = {index: context.ShareKeys(secrets[index - 1], 3, 2, index, "shamir") for index in (1, 2, 3)}
            quorum, absent = (1, 2), 3
            partials = [context.MultipartyDecryptMain([ciphertext], secrets[member - 1])[0] for member in quorum]
            for member in quorum:
                weighted = context.KeyGen().secretKey
                points = {holder: (shares[absent][member] if holder == member else zero) for holder in quorum}
                context.RecoverSharedKey(weighted, points, 3, 2, "shamir")
                partials.append(context.MultipartyDecryptMain([ciphertext], weighted)[0])
            lead_key = context.KeyGen().secretKey
            context.RecoverSharedKey(lead_key, {1: zero, 2: zero}, 2, 2, "shamir")
            lead = context.MultipartyDecryptLead([ciphertext], lead_key)[0]
            plaintext = context.MultipartyDecryptFusion([lead, *partials])
            plaintext.SetLength(self.slot_count)
            decrypted = np.mod(np.asarray(plaintext.GetPackedValueArray(), dtype=np.int64), self.plaintext_modulus)
        except (RuntimeError, ValueError, TypeError) as error:
            raise CryptoFailure(f"t-of-n self-check failed: OpenFHE raised {str(error)[:160]}") from None
        if not np.array_equal(decrypted, values):
            raise CryptoFailure(
                "t-of-n self-check failed: stand-in decryption does not reproduce the plaintext with this OpenFHE "
                "build (the method needs openfhe==1.6.1.0.22.4's Shamir share format)"
            )

    def _require_full_zero(self) -> openfhe.Ciphertext:
        if self._full_zero is None:
            raise WrongPhase("no committee key is bound yet")
        return self._full_zero
