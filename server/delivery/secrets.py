"""Secret settings in the delivery YAML: a literal, `{env: NAME}` or `{file: PATH}`.

Resolved once, when the configuration is validated at start-up, into a `SecretStr` (its repr is
`'**********'`, so a logged or printed config never shows it). A missing variable or unreadable file is
a validation error naming the key.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, SecretStr


def resolve_secret(value: Any) -> Any:
    secret = _resolve(value)
    if isinstance(secret, SecretStr) and not secret.get_secret_value():
        raise ValueError("the secret is empty")
    return secret


def _resolve(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value
    if isinstance(value, dict):
        if set(value) == {"env"}:
            name = str(value["env"])
            if name not in os.environ:
                raise ValueError(f"environment variable {name} is not set")
            return SecretStr(os.environ[name])
        if set(value) == {"file"}:
            path = Path(str(value["file"]))
            try:
                return SecretStr(path.read_text(encoding="utf-8").strip())
            except OSError as exc:
                raise ValueError(f"cannot read secret file {path}: {exc.strerror}") from None
        raise ValueError("a secret is a string, {env: NAME} or {file: PATH}")
    if isinstance(value, str):
        return SecretStr(value)
    raise ValueError("a secret is a string, {env: NAME} or {file: PATH}")


Secret = Annotated[SecretStr, BeforeValidator(resolve_secret)]
