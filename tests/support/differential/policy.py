"""The differential test's policy: tests/data/policy.toml's text, unchanged, plus what #17's credentials need.

Built from policy.toml at every run (never a copy kept by hand, which would drift from it silently):
``[sts]`` and one role per account (temporary credentials are minted directly with the gateway's own
token code, `gateway.sts.token`, for a role and the key that assumed it: no AssumeRole round trip per
case), and ``LTAIrsa``, a key holding only ``public_keys`` (the test key pair of
tests/data/signing_vectors_v3_algorithms.json), for ``ACS3-RSA-SHA256``. Every other test keeps
policy.toml as it is.
"""

from __future__ import annotations

import json
from pathlib import Path

from gateway.policy import Policy, load_policy
from gateway.sts import token as tokens
from tests.conftest import DATA

SIGNING_KEY_ENV = "GATEWAY_DIFF_STS_KEY"
SIGNING_KEY = "6d" * 32
ENVIRON = {SIGNING_KEY_ENV: SIGNING_KEY}
TOKEN_KEYS = tokens.TokenKeys(bytes.fromhex(SIGNING_KEY))

_VECTORS = json.loads((DATA / "signing_vectors_v3_algorithms.json").read_text())
RSA_KEY_ID = "LTAIrsa"
RSA_PRIVATE_KEY: str = _VECTORS["rsa_private_key"]
_RSA_PUBLIC_KEY: str = _VECTORS["rsa_public_key"]

#: The role each account's keys act as with temporary credentials: (account, role name).
ROLES = {1111: "Reader", 2222: "bob-reader"}

EXTRA = f'''

# --- the differential test's additions (tests/support/differential/policy.py) ---

[sts]
signing_key_env = "{SIGNING_KEY_ENV}"

# Reads what the "ops" sub-user reads: everything of the account but the secret instance.
[[roles]]
account = 1111
name = "{ROLES[1111]}"
trusted = ["root", "ops"]
statements = [
  {{ effect = "Allow", actions = ["Describe*"], resources = ["*"] }},
  {{ effect = "Deny", actions = ["Describe*"], resources = ["instance/i-secret-*"] }},
]

[[roles]]
account = 2222
name = "{ROLES[2222]}"
trusted = ["root"]
statements = [{{ effect = "Allow", actions = ["Describe*"] }}]

# Signs ACS3-RSA-SHA256 with the private key; the gateway holds only the public one.
[[access_keys]]
id = "{RSA_KEY_ID}"
account = 1111
public_keys = ["""{_RSA_PUBLIC_KEY.strip()}"""]
'''


def policy_text() -> str:
    return (DATA / "policy.toml").read_text() + EXTRA


def write_policy(directory: Path) -> Path:
    """The policy file in ``directory`` (what ``GATEWAY_CONFIG`` would name), for `load`."""
    path = directory / "differential_policy.toml"
    path.write_text(policy_text())
    return path


def load(path: Path) -> Policy:
    return load_policy(path, environ=ENVIRON)
