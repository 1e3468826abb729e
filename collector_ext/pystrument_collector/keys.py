"""Project keys: ``proj_`` + 24 random hex digits, unguessable and safe in headers."""

import secrets

KEY_PREFIX = "proj_"


def new_project_key() -> str:
    return KEY_PREFIX + secrets.token_hex(12)
