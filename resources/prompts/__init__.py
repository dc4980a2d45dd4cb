"""Versioned prompt templates: one Markdown file per prompt, shipped as package data.

A prompt file holds a system part and a user part, each opened by an HTML comment line
(`<!-- role: system -->`, `<!-- role: user -->`), with `$name` placeholders (string.Template,
so JSON braces in a prompt need no escaping). A prompt's version is its name plus a hash of the
file's bytes: every stored signal names exactly the text that produced it, and editing a file
changes the version even when nobody remembers to rename it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from string import Template

_ROLE_LINE = re.compile(r"^<!-- role: (system|user) -->[ \t]*$", re.MULTILINE)
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class PromptError(ValueError):
    """A prompt that does not exist, is malformed, or lacks a value it needs."""


@dataclass(frozen=True)
class Prompt:
    """One prompt template: its name, content hash and the two message templates."""

    name: str
    sha256: str
    system: str
    user: str

    @property
    def version(self) -> str:
        """`name@hash12`, recorded on every signal and as an MLflow param."""
        return f"{self.name}@{self.sha256[:12]}"

    def render_user(self, values: dict[str, str]) -> str:
        """Fill the user template; a missing value is an error, not a literal `$name`."""
        try:
            return Template(self.user).substitute(values)
        except KeyError as exc:
            raise PromptError(f"prompt {self.version} needs a value for ${exc.args[0]}") from None


def available_prompts() -> list[str]:
    """Names of the prompt files shipped in this package."""
    files = resources.files(__package__).iterdir()
    return sorted(f.name.removesuffix(".md") for f in files if f.name.endswith(".md"))


def parse_prompt(name: str, text: str) -> Prompt:
    """Split a prompt file into its system and user parts."""
    parts = _ROLE_LINE.split(text)
    # split() yields [preamble, role, body, role, body, ...]
    bodies = {role: body.strip() for role, body in zip(parts[1::2], parts[2::2], strict=True)}
    if set(bodies) != {"system", "user"} or not all(bodies.values()):
        raise PromptError(
            f"prompt {name!r} must have a non-empty '<!-- role: system -->' part and a "
            "'<!-- role: user -->' part"
        )
    digest = hashlib.sha256(text.encode()).hexdigest()
    return Prompt(name=name, sha256=digest, system=bodies["system"], user=bodies["user"])


@cache
def load_prompt(name: str) -> Prompt:
    """Load `resources/prompts/<name>.md` (cached: the files ship with the code)."""
    if not _NAME.match(name):
        raise PromptError(f"prompt name {name!r} is not a plain file name such as signal_v1")
    resource = resources.files(__package__).joinpath(f"{name}.md")
    if not resource.is_file():
        raise PromptError(
            f"no prompt {name!r}; available: {', '.join(available_prompts())} (set LLM_PROMPT)"
        )
    return parse_prompt(name, resource.read_text(encoding="utf-8"))
