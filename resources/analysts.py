"""Which analyst the environment asks for: the rules analyst or an OpenAI-compatible model.

Apart from resources/llm.py (the interface and the rules analyst) so that the interface and
the model implementation, which builds on it, never import each other.
"""

from __future__ import annotations

from collections.abc import Mapping

from resources.llm import LLMAnalyst, RulesAnalyst
from resources.llm_openai import OpenAIAnalyst
from trading_assets.core.config import LLMSettings


def analyst_from_env(env: Mapping[str, str]) -> LLMAnalyst:
    """The analyst LLM_PROVIDER names; by default the model when an API key or a base URL is
    set (a local server needs no key), else the rules analyst. A bad value is a ConfigError
    naming the variable; see docs/models.md."""
    model = OpenAIAnalyst.from_env(env)  # every LLM_* setting is checked, used or not
    return RulesAnalyst() if LLMSettings.from_env(env).chosen_provider == "rules" else model
