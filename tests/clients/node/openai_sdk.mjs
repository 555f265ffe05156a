// The official openai Node SDK at its default retry settings, against llmgate.
import OpenAI from "openai";
import { describeError, main, readInput } from "./common.mjs";

const input = readInput();
const client = new OpenAI({ baseURL: input.baseUrl, apiKey: input.apiKey });
const messages = [{ role: "user", content: input.question }];

// What an HTTP error told the client, or null if the call succeeded.
function httpError(error) {
  if (!(error instanceof OpenAI.APIError)) throw error;
  return {
    ...describeError(error),
    retryAfter: error.headers?.get("retry-after") ?? null,
    shouldRetry: error.headers?.get("x-should-retry") ?? null,
  };
}

async function deltas(route) {
  const stream = await client.chat.completions.create({ model: route, messages, stream: true });
  const out = { content: "", reasoning_content: "", refusal: "" };
  for await (const chunk of stream) {
    const delta = chunk.choices[0]?.delta ?? {};
    for (const key of Object.keys(out)) out[key] += delta[key] ?? "";
  }
  return out;
}

const runs = {
  text: async (route) => ({ text: (await deltas(route)).content }),
  reasoning: (route) => deltas(route),
  refusalStream: (route) => deltas(route),
  async toolCall(route) {
    // The SDK's stream helper accumulates tool-call deltas the SDK's way (by index).
    const stream = client.chat.completions.stream({ model: route, messages, tools: [input.tool] });
    const completion = await stream.finalChatCompletion();
    const calls = completion.choices[0].message.tool_calls ?? [];
    return { toolCalls: calls.map((c) => [c.function.name, c.function.arguments]) };
  },
  async failure(route) {
    try {
      await deltas(route);
      return { error: null };
    } catch (error) {
      return { error: httpError(error) };
    }
  },
  async refusalParse(route) {
    const completion = await client.chat.completions.parse({
      model: route,
      messages,
      response_format: { type: "json_schema", json_schema: input.citySchema },
    });
    const message = completion.choices[0].message;
    return { refusal: message.refusal ?? null, parsed: message.parsed ?? null };
  },
};

await main(input.scenarios, runs);
