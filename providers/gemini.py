"""Google's Gemini API: ``POST {base_url}/{api_version}/models/{model}:streamGenerateContent``
with ``alt=sse``; embeddings through ``:batchEmbedContents``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import httpx
import msgspec

from providers._adapter import Call, HTTPAdapter, HTTPConfig
from providers._client import Upstream
from providers._convert import Image, content_parts, stop_sequences, text_of, tool_arguments
from providers._http import in_band_error
from providers._stream import Reader
from router.errors import (
    AuthenticationFailed,
    ContentFiltered,
    ContextLengthExceeded,
    InvalidRequest,
    ModelNotFound,
    ProviderError,
    RateLimited,
    StreamErrorEvent,
    UpstreamUnavailable,
)
from router.events import Chunk, Finish, ReasoningDelta, TextDelta, ToolCallDelta, Usage
from router.provider import EmbedRequest, ProviderRequest

__all__ = ["GeminiConfig", "GeminiProvider"]


class GeminiConfig(HTTPConfig, tag="gemini", frozen=True):
    """``[providers.NAME]`` with ``kind = "gemini"``."""

    base_url: str = "https://generativelanguage.googleapis.com"
    api_key_env: str | None = "GEMINI_API_KEY"
    api_version: str = "v1beta"


# Finish reasons that mean the answer was withheld: `ContentFiltered`, never a success.
_FILTERED = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
    }
)
# The model produced an unusable function call: worth another try.
_BAD_CALL = frozenset({"MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS"})
# ``google.rpc.Code`` names in an error body, where the HTTP status says less.
_STATUS: dict[str, type[ProviderError]] = {
    "RESOURCE_EXHAUSTED": RateLimited,
    "UNAUTHENTICATED": AuthenticationFailed,
    "PERMISSION_DENIED": AuthenticationFailed,
    "NOT_FOUND": ModelNotFound,
    "UNAVAILABLE": UpstreamUnavailable,
}


def _details(err: dict[str, object]) -> list[dict[str, Any]]:
    details = err.get("details")
    return [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []


def _classify(status: int, err: dict[str, object]) -> type[ProviderError] | None:
    message = str(err.get("message") or "").lower()
    if "token count" in message and "exceeds the maximum" in message:
        return ContextLengthExceeded
    # A bad key is a 400 INVALID_ARGUMENT whose ErrorInfo says API_KEY_INVALID.
    if any(d.get("reason") == "API_KEY_INVALID" for d in _details(err)):
        return AuthenticationFailed
    return _STATUS.get(str(err.get("status") or ""))


def _retry_delay(body: bytes) -> float | None:
    """A 429's ``RetryInfo.retryDelay`` (``"37s"``): Gemini sends no Retry-After."""
    try:
        data = msgspec.json.decode(body)
        err = data.get("error") if isinstance(data, dict) else None
        for detail in _details(err if isinstance(err, dict) else {}):
            delay = detail.get("retryDelay")
            if isinstance(delay, str) and delay.endswith("s"):
                return max(float(delay[:-1]), 0.0)
    except (msgspec.DecodeError, ValueError):
        pass
    return None


# --- the request -----------------------------------------------------------------------


def _text_part(part: dict[str, Any]) -> dict[str, Any] | None:
    return {"text": str(part["text"])} if part.get("text") else None


def _image_part(image: Image) -> dict[str, Any]:
    if image.inline is None:
        return {"fileData": {"fileUri": image.url}}
    media_type, data = image.inline
    return {"inlineData": {"mimeType": media_type, "data": data}}


def _parts(content: Any, provider: str) -> list[dict[str, Any]]:
    return content_parts(content, provider, "Gemini", text=_text_part, image=_image_part)


def _function_response(content: Any) -> dict[str, Any]:
    """A tool result as the JSON object Gemini wants; other values go under ``result``."""
    text = text_of(content)
    try:
        value = msgspec.json.decode(text)
    except msgspec.DecodeError:
        value = text
    return value if isinstance(value, dict) else {"result": value}


def _contents(
    messages: list[dict[str, Any]], provider: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(system instruction parts, contents)``; consecutive turns of one role merge."""
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool call id -> function name, for the results
    for m in messages:
        role = m.get("role")
        if role in ("system", "developer"):
            system += _parts(m.get("content"), provider)
            continue
        if role == "user":
            turn = _parts(m.get("content"), provider)
        elif role == "assistant":
            role = "model"
            turn = _parts(m.get("content"), provider)
            for call in m.get("tool_calls") or ():
                fn = call.get("function") or {}
                names[str(call.get("id"))] = fn.get("name", "")
                args = tool_arguments(fn.get("arguments"), provider)
                turn.append({"functionCall": {"name": fn.get("name"), "args": args}})
        elif role == "tool":
            role = "user"
            name = names.get(str(m.get("tool_call_id")), m.get("name") or "")
            response = _function_response(m.get("content"))
            turn = [{"functionResponse": {"name": name, "response": response}}]
        else:
            raise InvalidRequest(
                f"{provider}: unsupported message role {role!r}", provider=provider
            )
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"] += turn
        else:
            contents.append({"role": role, "parts": turn})
    return system, contents


def _tool_config(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}
    mode = {"none": "NONE", "required": "ANY"}.get(str(choice), "AUTO")
    return {"functionCallingConfig": {"mode": mode}}


def _generation_config(params: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    names = {
        "temperature": "temperature",
        "top_p": "topP",
        "top_k": "topK",
        "seed": "seed",
        "presence_penalty": "presencePenalty",
        "frequency_penalty": "frequencyPenalty",
    }
    config.update((ours, params[k]) for k, ours in names.items() if params.get(k) is not None)
    max_tokens = params.get("max_completion_tokens") or params.get("max_tokens")
    if max_tokens:
        config["maxOutputTokens"] = max_tokens
    if stop := stop_sequences(params.get("stop")):
        config["stopSequences"] = stop
    response_format = params.get("response_format") or {}
    if response_format.get("type") in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
        schema = (response_format.get("json_schema") or {}).get("schema")
        if schema:
            config["responseJsonSchema"] = schema
    return config


def _body(request: ProviderRequest, provider: str) -> dict[str, Any]:
    params = request.params
    system, contents = _contents(request.messages, provider)
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    if tools := params.get("tools"):
        declarations = []
        for tool in tools:
            fn = tool.get("function") or {}
            declaration = {"name": fn.get("name")}
            if fn.get("description"):
                declaration["description"] = fn["description"]
            if fn.get("parameters"):
                # Full JSON Schema, which ``parameters`` (an OpenAPI subset) is not.
                declaration["parametersJsonSchema"] = fn["parameters"]
            declarations.append(declaration)
        body["tools"] = [{"functionDeclarations": declarations}]
        if (config := _tool_config(params.get("tool_choice"))) is not None:
            body["toolConfig"] = config
    if generation := _generation_config(params):
        body["generationConfig"] = generation
    return body


# --- the response ----------------------------------------------------------------------


class _FunctionCall(msgspec.Struct, gc=False):
    name: str = ""
    args: Any = None
    id: str | None = None


class _Part(msgspec.Struct, rename="camel", gc=False):
    text: str | None = None
    thought: bool = False
    function_call: _FunctionCall | None = None


class _Content(msgspec.Struct, gc=False):
    parts: list[_Part] = []


class _Candidate(msgspec.Struct, rename="camel", gc=False):
    content: _Content | None = None
    finish_reason: str | None = None
    finish_message: str | None = None


class _PromptFeedback(msgspec.Struct, rename="camel", gc=False):
    block_reason: str | None = None
    block_reason_message: str | None = None


class _UsageMetadata(msgspec.Struct, rename="camel", gc=False):
    prompt_token_count: int = 0
    candidates_token_count: int = 0
    thoughts_token_count: int = 0
    total_token_count: int = 0
    cached_content_token_count: int = 0


class _Response(msgspec.Struct, rename="camel", gc=False):
    candidates: list[_Candidate] = []
    prompt_feedback: _PromptFeedback | None = None
    usage_metadata: _UsageMetadata | None = None
    error: Any = None


class _Values(msgspec.Struct, gc=False):
    values: list[float]


class _BatchEmbeddings(msgspec.Struct, gc=False):
    embeddings: list[_Values]


_encode = msgspec.json.Encoder().encode
_decode_embeddings = msgspec.json.Decoder(_BatchEmbeddings).decode
EMBED_BATCH = 100
"""The most requests one ``batchEmbedContents`` call takes; more inputs take more calls."""


class _Reader(Reader[_Response]):
    """The state of one streamed answer. Gemini has no end marker: an answer is
    complete when a chunk carried a finish reason and the body then ended cleanly."""

    decoder = msgspec.json.Decoder(_Response)
    ending = "a finish reason"
    __slots__ = ("_calls", "_usage")

    def __init__(self, provider: str) -> None:
        super().__init__(provider)
        self._calls = 0
        self._usage: _UsageMetadata | None = None

    def feed(self, event: bytes | None, wire: _Response, out: list[Chunk]) -> None:
        if wire.error is not None:
            raise in_band_error(self.provider, wire.error, _classify)
        if wire.usage_metadata is not None:
            self._usage = wire.usage_metadata
        feedback = wire.prompt_feedback
        if feedback is not None and feedback.block_reason:
            raise ContentFiltered(
                f"{self.provider} blocked the prompt: {feedback.block_reason}"
                + (f": {feedback.block_reason_message}" if feedback.block_reason_message else ""),
                provider=self.provider,
            )
        if not wire.candidates:
            return
        candidate = wire.candidates[0]  # one candidate is asked for
        for part in candidate.content.parts if candidate.content else ():
            if part.function_call is not None:
                call = part.function_call
                call_id = call.id or f"call_{self._calls}"
                args = _encode(call.args if call.args is not None else {}).decode()
                out.append(ToolCallDelta(self._calls, call_id, call.name, args))
                self._calls += 1
            elif part.text:
                out.append(ReasoningDelta(part.text) if part.thought else TextDelta(part.text))
        if candidate.finish_reason and not self.finished:
            self._finish(candidate, out)

    def _finish(self, candidate: _Candidate, out: list[Chunk]) -> None:
        reason = candidate.finish_reason or ""
        detail = f": {candidate.finish_message}" if candidate.finish_message else ""
        if reason in _FILTERED:
            raise ContentFiltered(
                f"{self.provider} withheld the answer: {reason}{detail}", provider=self.provider
            )
        if reason in _BAD_CALL:
            raise StreamErrorEvent(
                f"{self.provider} ended the answer with {reason}{detail}", provider=self.provider
            )
        if reason == "MAX_TOKENS":
            out.append(Finish("length"))
        else:
            out.append(Finish("tool_calls" if self._calls else "stop"))
        if self._usage is not None:
            u = self._usage
            completion = u.candidates_token_count + u.thoughts_token_count
            total = u.total_token_count or u.prompt_token_count + completion
            out.append(Usage(u.prompt_token_count, completion, total, u.cached_content_token_count))
        self.finished = True


class GeminiProvider(HTTPAdapter[GeminiConfig]):
    """Translates OpenAI-shaped requests into ``GenerateContentRequest``s and streams back."""

    kind: ClassVar[str] = "gemini"
    key_header = "x-goog-api-key"
    supports_embeddings: ClassVar[bool] = True

    def __init__(
        self,
        name: str,
        config: GeminiConfig,
        client: Upstream,
        env: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(name, config, client, env)
        self._base = f"{config.base_url.rstrip('/')}/{config.api_version}/models/"
        self._urls: dict[str, httpx.URL] = {}

    def translate(self, model: str, request: ProviderRequest) -> Call:
        body = _encode(_body(request, self.name))
        url = self._urls.get(model)
        if url is None:  # parsed once per model, not per request
            path = f"{model.removeprefix('models/')}:streamGenerateContent?alt=sse"
            url = self._urls[model] = httpx.URL(self._base + path)
        return Call(url, body, _Reader(self.name))

    def classify(self, status: int, err: dict[str, object]) -> type[ProviderError] | None:
        return _classify(status, err)

    def retry_hint(self, body: bytes) -> float | None:
        return _retry_delay(body)

    def embed_calls(self, model: str, request: EmbedRequest) -> list[tuple[httpx.URL, bytes]]:
        if request.tokens:
            raise InvalidRequest(
                f"{self.name} (gemini) embeds texts only, not token arrays: send 'input' "
                "as a string or a list of strings",
                provider=self.name,
            )
        name = model.removeprefix("models/")
        url = httpx.URL(f"{self._base}{name}:batchEmbedContents")
        one: dict[str, Any] = {"model": f"models/{name}"}
        if request.dimensions is not None:
            one["outputDimensionality"] = request.dimensions
        texts: list[str] = request.inputs  # type: ignore[assignment]  # not tokens: texts
        return [
            (
                url,
                _encode(
                    {"requests": [{**one, "content": {"parts": [{"text": t}]}} for t in batch]}
                ),
            )
            for batch in (texts[i : i + EMBED_BATCH] for i in range(0, len(texts), EMBED_BATCH))
        ]

    def embed_answer(self, body: bytes) -> tuple[list[list[float]], Usage | None]:
        """Gemini reports no usage for embeddings."""
        return [e.values for e in _decode_embeddings(body).embeddings], None
