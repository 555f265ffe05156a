"""A whole answer as one Anthropic ``Message``: thinking, then text, then tool uses."""

from __future__ import annotations

from typing import Any

import msgspec

from router.collect import Answer, ToolCall
from server.api._serve import answered_model
from server.api.anthropic.wire import record_json, stop_reason, usage_json

__all__ = ["message_body"]


def message_body(message_id: str, answer: Answer) -> dict[str, Any]:
    done = answer.done
    content: list[dict[str, Any]] = []
    if answer.reasoning or answer.reasoning_signature:
        thinking = {"type": "thinking", "thinking": answer.reasoning}
        content.append({**thinking, "signature": answer.reasoning_signature or ""})
    # A refusal is the answer's text: Anthropic has no other place for it.
    text = answer.text + answer.refusal
    if text:
        content.append({"type": "text", "text": text})
    for index, call in enumerate(answer.tool_calls):
        content.append(_tool_use(index, call))
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": answered_model(done.model),
        "content": content,
        "stop_reason": stop_reason(done.finish_reason, refused=bool(answer.refusal)),
        "stop_sequence": None,
        "usage": usage_json(done.usage),
        "llmgate": record_json(done.record),
    }


def _tool_use(index: int, call: ToolCall) -> dict[str, Any]:
    block: dict[str, Any] = {
        "type": "tool_use",
        "id": call.id or f"toolu_{index}",
        "name": call.name,
        "input": {},
    }
    try:
        decoded = msgspec.json.decode(call.arguments or "{}")
    except (msgspec.DecodeError, RecursionError):
        decoded = None
    if isinstance(decoded, dict):
        block["input"] = decoded
    else:  # Anthropic's input is always an object: keep what the model sent, visibly
        block["llmgate"] = {"invalid_input_json": call.arguments}
    return block
