"""Secret handling for everything the platform writes: transcripts, errors, logs, MLflow, UI.

The known secrets come from the settings models (core/config.py): the value of every secret
setting (API keys, passwords, tokens), except that a URL value (`scheme://`) of a secret or URL
setting gives only its user:password pair and password; and the base64 forms of all of them
(HTTP Basic auth sends `base64(user:password)`, so a server that echoes its request headers
echoes that). `redact` replaces each with [REDACTED] and also blanks any
Authorization/API-key header value and any `Basic`/`Bearer` credential in free text, known or
not, because an echoed header is a credential whoever issued it.
"""

from __future__ import annotations

import base64
import functools
import logging
import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from trading_assets.core.config import secret_names, url_names

# Precedence (not a list of secrets: which variables are secret is core/config.py's).
API_KEY_VARS = ("LLM_API_KEY", "OPENAI_API_KEY")
# Read by boto3 in the MLflow container, never by our code, so no settings model names it.
OUTSIDE_SECRET_VARS = ("AWS_SECRET_ACCESS_KEY",)
REDACTED = "[REDACTED]"
# Shorter "secrets" would garble ordinary text when scrubbed and are not real keys anyway.
MIN_SECRET_LENGTH = 8
SECRET_HEADERS = frozenset({"authorization", "api-key", "x-api-key", "proxy-authorization"})
# "Authorization: Basic abc", '"authorization": "Bearer abc"', "api-key=abc": the value goes.
_HEADER_VALUE = re.compile(
    r"(?i)\b((?:proxy-)?authorization|x-api-key|api-key)(\s*[\"']?\s*[:=]\s*[\"']?\s*)"
    r"(?:(?:basic|bearer|token|digest)\s+)?[^\s\"',;}]+")
# A credential after its scheme anywhere in text (case-sensitive: "basic" is a common word).
_SCHEME_VALUE = re.compile(r"\b(Basic|Bearer)\s+[A-Za-z0-9._~+/-]{8,}=*")


def api_key(env: Mapping[str, str] | None = None) -> str:
    """The configured API key (LLM_API_KEY, then OPENAI_API_KEY), or "" when none is set."""
    env = os.environ if env is None else env
    return next((env[name] for name in API_KEY_VARS if env.get(name)), "")


def url_credentials(url: str) -> tuple[str, str] | None:
    """(user, password) from a URL's user:password@ part, or None when it has none."""
    netloc = urlsplit(url.strip()).netloc
    if "@" not in netloc:
        return None
    user, _, password = netloc.rpartition("@")[0].partition(":")
    return unquote(user), unquote(password)


def _encodings(value: str) -> set[str]:
    """The value and its base64 forms (standard and URL-safe, with and without padding)."""
    raw = value.encode()
    forms = {value}
    for encoded in (base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()):
        forms |= {encoded, encoded.rstrip("=")}
    return forms


def secret_values(env: Mapping[str, str] | None = None) -> list[str]:
    """Every secret that must never be written anywhere, longest first (see the module doc)."""
    env = os.environ if env is None else env
    return list(_secrets_of(tuple(env.get(name, "") for name in _SECRET_SOURCES)))


# Every variable whose value can hold a secret: the settings' SecretStr and URL fields, and
# the few read only outside our code.
_SECRET_SOURCES = (*OUTSIDE_SECRET_VARS, *secret_names(), *url_names())


@functools.lru_cache(maxsize=16)
def _secrets_of(values: tuple[str, ...]) -> tuple[str, ...]:
    """The secrets of one state of the variables (_SECRET_SOURCES' values, in order): the log
    filter asks for every record, so a state is worked out once, a changed one again."""
    plain = set()
    for name, value in zip(_SECRET_SOURCES, values, strict=True):
        ours = name not in OUTSIDE_SECRET_VARS
        if ours and "://" in value:
            pair = url_credentials(value)  # a URL keeps its host readable, loses its password
            if pair:
                user, password = pair
                plain |= {password, f"{user}:{password}"}
        elif name not in url_names():
            plain.add(value)
    found = set()
    for value in plain:
        if len(value) >= MIN_SECRET_LENGTH:
            found |= _encodings(value)
    return tuple(sorted(found, key=len, reverse=True))


def redact(value: Any, secrets: list[str] | None = None) -> Any:
    """A copy of `value` (str, dict, list, nested) with secrets and auth header values
    replaced by [REDACTED]."""
    secrets = secret_values() if secrets is None else secrets
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, REDACTED)
        value = _HEADER_VALUE.sub(lambda m: f"{m[1]}{m[2]}{REDACTED}", value)
        return _SCHEME_VALUE.sub(lambda m: f"{m[1]} {REDACTED}", value)
    if isinstance(value, Mapping):
        return {
            key: REDACTED if str(key).lower() in SECRET_HEADERS else redact(item, secrets)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(item, secrets) for item in value]
    return value


def public_url(url: str) -> str:
    """A URL safe to show and log: user:password, query and fragment removed."""
    parts = urlsplit(url)
    if "@" in parts.netloc:
        url = url.replace(parts.netloc, parts.netloc.rpartition("@")[2], 1)
    return url.split("?", 1)[0].split("#", 1)[0]


class RedactingFilter(logging.Filter):
    """Scrubs secrets from log records (an error body may echo a key or an auth header)."""

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = secret_values()
        message = record.getMessage()
        cleaned = redact(message, secrets)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        if record.exc_info:
            # The formatted traceback would carry the exception text again.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info),
                                     secrets)
            record.exc_info = None
        return True


_FILTER = RedactingFilter()


def install_log_redaction(prefixes: tuple[str, ...]) -> None:
    """Attach the filter to every existing logger under `prefixes` (filters on a parent logger
    do not see records of its children, so each one gets it)."""
    manager = logging.Logger.manager
    for name in [*prefixes, *list(manager.loggerDict)]:
        if name.split(".")[0] in prefixes:
            logger = logging.getLogger(name)
            if _FILTER not in logger.filters:
                logger.addFilter(_FILTER)
