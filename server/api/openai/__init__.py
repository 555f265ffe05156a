"""OpenAI chat completions: routes, request parsing, wire encoding."""
