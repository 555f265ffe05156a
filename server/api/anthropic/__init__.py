"""Anthropic Messages: routes, request parsing and translation, wire encoding."""
