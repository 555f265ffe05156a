"""Well-known providers, so ``"groq/llama-3.3-70b-versatile"`` works without a config.

A preset is the TOML table a user would otherwise write; it decodes through the same
schema. A configured provider of the same name always wins.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PRESETS"]


def _compatible(base_url: str, key_env: str, **extra: Any) -> dict[str, Any]:
    return {"kind": "openai", "base_url": base_url, "api_key_env": key_env, **extra}


PRESETS: dict[str, dict[str, Any]] = {
    "openai": _compatible("https://api.openai.com/v1", "OPENAI_API_KEY"),
    "groq": _compatible("https://api.groq.com/openai/v1", "GROQ_API_KEY"),
    "together": _compatible("https://api.together.xyz/v1", "TOGETHER_API_KEY"),
    "mistral": _compatible("https://api.mistral.ai/v1", "MISTRAL_API_KEY"),
    "deepseek": _compatible("https://api.deepseek.com/v1", "DEEPSEEK_API_KEY"),
    "fireworks": _compatible("https://api.fireworks.ai/inference/v1", "FIREWORKS_API_KEY"),
    "openrouter": _compatible("https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
    "ollama": _compatible("http://127.0.0.1:11434/v1", "OLLAMA_API_KEY"),
    "anthropic": {"kind": "anthropic"},
    "gemini": {"kind": "gemini"},
    "mock": {"kind": "mock"},
}
