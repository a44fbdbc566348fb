"""Cryptography: AES-256-GCM sealing primitives (`aead`) apart from key handling (`keys`)."""
