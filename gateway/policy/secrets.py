"""What an access key verifies with: its secrets (HMAC) or its PEM public keys (ACS3-RSA-SHA256).

Both are given inline or named by environment variable (so that a secret need not sit in the file), one
or two of them (two while one is rotated).
"""

from __future__ import annotations

from typing import Any

from gateway.policy.checks import Checks
from gateway.signing.algorithms import PublicKey


class KeyMaterial(Checks):
    def secrets(self, entry: dict[str, Any], line: int, name: str) -> tuple[str, ...]:
        inline, refs = self._listed(entry, "secrets", "secret_env", line, name)
        values = self._resolved(inline, refs, "secret_env", line, name)
        if not _one_or_two(values):
            raise self.fail(line, name, "needs one or two non-empty secrets (secrets or secret_env)")
        return tuple(values)

    def public_keys(self, entry: dict[str, Any], line: int, name: str) -> tuple[PublicKey, ...]:
        """ACS3-RSA-SHA256 keys: PEM public keys inline or named by environment variable, like secrets;
        such a key has no secret (it verifies RSA signatures only)."""
        inline, refs = self._listed(entry, "public_keys", "public_keys_env", line, name)
        if not inline and not refs:
            return ()
        if "secrets" in entry or "secret_env" in entry:
            raise self.fail(line, name, "has both secrets and public_keys: a key signs either with a secret "
                                        "(HMAC) or with a private key (ACS3-RSA-SHA256)")
        values = self._resolved(inline, refs, "public_keys_env", line, name)
        if not _one_or_two(values):
            raise self.fail(line, name, "needs one or two PEM public keys (public_keys or public_keys_env)")
        from gateway.signing.rsa import load_public_key  # cryptography, only where RSA is used

        keys: list[PublicKey] = []
        for index, pem in enumerate(values):
            try:
                keys.append(load_public_key(pem))
            except ValueError as exc:
                raise self.fail(line, name, f"public key {index + 1} {exc}") from None
        return tuple(keys)

    def _listed(self, entry: dict[str, Any], field: str, env_field: str, line: int,
                name: str) -> tuple[list[Any], list[Any]]:
        """The inline values and the environment variables naming more (one name may stand alone)."""
        inline = entry.get(field, [])
        refs = entry.get(env_field, [])
        refs = [refs] if isinstance(refs, str) else refs
        if not isinstance(inline, list) or not isinstance(refs, list):
            raise self.fail(line, name, f"{field} and {env_field} must be lists of strings")
        return inline, refs

    def _resolved(self, inline: list[Any], refs: list[Any], env_field: str, line: int, name: str) -> list[Any]:
        values = list(inline)
        for ref in refs:
            if not isinstance(ref, str) or ref not in self.environ:
                raise self.fail(line, name, f"{env_field} {ref!r} is not set in the environment")
            values.append(self.environ[ref])
        return values


def _one_or_two(values: list[Any]) -> bool:
    return 1 <= len(values) <= 2 and all(isinstance(v, str) and v for v in values)
