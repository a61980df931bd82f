"""Shielded participation (DESIGN.md §10.4, §10.5): pure group cryptography over Ed25519.

* `group`   — scalars and prime-order points with every check the proofs depend on.
* `dvp`     — designated-verifier proofs that a holder signed an intendo, and their forgery.
* `ring`    — linkable ring signatures over an eligibility list, carrying the signer's key
              encrypted to the committee's identity key.
* `elgamal` — the committee's threshold ElGamal identity key: its DKG rounds, proven
              decryption shares and their combination.

No I/O, no randomness other than fresh nonces from the OS.
"""
