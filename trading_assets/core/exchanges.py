"""Recorded model exchanges: what a request is (its digest), what each LLM_CACHE mode does,
and why a request found no recorded answer.

Pure: resources/exchanges.py keeps the answers (object store + an index in the application
database); resources/llm_openai.py asks it before calling a model. The digest covers
everything that shapes the model's answer and nothing that does not (the endpoint, timeouts,
retries, the API key): the model, the prompt version, the rendered messages with each chart
image replaced by a placeholder, the images' SHA-256 digests, the parameters (sampling temperature,
instructor mode) and the response schema. Changing any of them is a different request, so a
different key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from typing import Any

# LLM_CACHE: what each mode does (docs/models.md, "Recorded answers"; shown by the replay command).
MODE_MEANING = {
    "off": "the store is not used: every request calls the model, nothing is recorded",
    "record": "a recorded answer is used when the request matches; otherwise the model is "
              "called and its answer recorded",
    "replay": "a recorded answer is used when the request matches; otherwise the model is "
              "called and nothing is recorded",
    "strict": "only recorded answers: a miss is an error naming what differed, the model is "
              "never called",
}
CACHE_MODES = tuple(MODE_MEANING)
# A live signal is a fresh judgement unless LLM_CACHE says otherwise; a replay records.
LIVE_CACHE_DEFAULT = "off"
REPLAY_CACHE_DEFAULT = "record"
# Bumped when the composition below changes: every earlier key then misses.
DIGEST_VERSION = 1
# The parts of a request, in the order a miss names them, with the words it uses.
PARTS = {
    "model": "model",
    "prompt_version": "prompt version",
    "images": "chart images",
    "params": "parameters",
    "schema": "response schema",
    "messages": "rendered messages (bars, indicators, position)",
}


def reads_store(mode: str) -> bool:
    """Whether `mode` looks for a recorded answer before calling the model."""
    return mode in ("record", "replay", "strict")


def writes_store(mode: str) -> bool:
    """Whether `mode` records the model's new answers."""
    return mode == "record"


def may_call_model(mode: str) -> bool:
    """Whether `mode` calls the model when no recorded answer matches."""
    return mode != "strict"


def canonical_json(value: Any) -> bytes:
    """One byte string per value: sorted keys, no whitespace, UTF-8 (the digest's input)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str).encode()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class ExchangeRequest:
    """One model request as the digest sees it.

    `messages` are the chat messages as sent, except that each image is a placeholder
    ("image 1", ...); `images` holds the SHA-256 of each image's bytes, in the same order.
    """

    symbol: str
    bar_date: date
    model: str
    prompt_version: str
    messages: Sequence[Mapping[str, Any]]
    images: tuple[str, ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)
    schema: Mapping[str, Any] = field(default_factory=dict)

    @cached_property
    def parts(self) -> dict[str, str]:
        """Each part of the request: the model and prompt version as they are, the rest as
        SHA-256 digests (what the index keeps to say which part a near miss changed)."""
        return {
            "model": self.model,
            "prompt_version": self.prompt_version,
            "images": sha256_hex(canonical_json(list(self.images))),
            "params": sha256_hex(canonical_json(dict(self.params))),
            "schema": sha256_hex(canonical_json(dict(self.schema))),
            "messages": sha256_hex(canonical_json(list(self.messages))),
        }

    @cached_property
    def key(self) -> str:
        """The request digest: SHA-256 of the digest version and every part."""
        return sha256_hex(canonical_json({"v": DIGEST_VERSION, **self.parts}))


def differing_parts(wanted: Mapping[str, str], recorded: Mapping[str, str]) -> list[str]:
    """The names of the parts in which `recorded` differs from `wanted`, in PARTS order.

    The rendered messages hold the prompt's text, so with a new prompt version they differ
    too; they are named only when the prompt version is the same.
    """
    names = [name for name in PARTS if wanted.get(name) != recorded.get(name)]
    if "prompt_version" in names and "messages" in names:
        names.remove("messages")
    return names


def _describe(name: str, wanted: Mapping[str, str], recorded: Mapping[str, str]) -> str:
    if name in ("model", "prompt_version"):
        return f"{PARTS[name]} ({recorded.get(name) or '?'} recorded, {wanted[name]} now)"
    return PARTS[name]


def strict_miss_error(symbol: str, bar_date: date, wanted: Mapping[str, str],
                      recorded: Sequence[Mapping[str, str]]) -> str:
    """The error of a strict-mode miss: what differed from the nearest recorded request of
    the same symbol and bar date (`recorded`: their parts), and what to do."""
    what = f"{symbol} {bar_date.isoformat()}"
    todo = ("Record it first (LLM_CACHE=record), or set LLM_CACHE=replay to call the model "
            "on a miss.")
    if not recorded:
        return (f"LLM_CACHE=strict: no answer is recorded for {what}, so the model was not "
                f"called. {todo}")
    nearest = min(recorded, key=lambda parts: len(differing_parts(wanted, parts)))
    names = differing_parts(wanted, nearest)
    changed = ", ".join(_describe(name, wanted, nearest) for name in names) or "nothing"
    return (f"LLM_CACHE=strict: no recorded answer matches this request for {what}, so the "
            f"model was not called. The nearest of the {len(recorded)} recorded request(s) "
            f"for {what} differs in: {changed}. {todo}")
