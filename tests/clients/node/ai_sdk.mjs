// The Vercel AI SDK at its default retry settings, against llmgate. `provider` chooses
// the model: "openai-compatible" (createOpenAICompatible, what the AI SDK documents for
// OpenAI-compatible endpoints), "openai-chat" (@ai-sdk/openai's chat-completions model)
// or "openai-responses" (@ai-sdk/openai's default model, `openai(id)`: the Responses API).
import { createOpenAI } from "@ai-sdk/openai";
import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import { jsonSchema, streamText, tool } from "ai";
import { describeError, main, readInput } from "./common.mjs";

const input = readInput();
const options = { baseURL: input.baseUrl, apiKey: input.apiKey };
const models = {
  "openai-chat": () => ((openai) => (route) => openai.chat(route))(createOpenAI(options)),
  "openai-responses": () => ((openai) => (route) => openai(route))(createOpenAI(options)),
  "openai-compatible": () =>
    ((compat) => (route) => compat.chatModel(route))(
      createOpenAICompatible({ name: "llmgate", includeUsage: true, ...options }),
    ),
};
const model = models[input.provider ?? "openai-compatible"]();

// An error part as JSON; a RetryError says how many calls the SDK made.
function describe(error) {
  const last = error?.lastError ?? error;
  return {
    ...describeError(error),
    attempts: error?.errors?.length ?? 1,
    statusCode: last?.statusCode ?? null,
    retryAfter: last?.responseHeaders?.["retry-after"] ?? null,
    shouldRetry: last?.responseHeaders?.["x-should-retry"] ?? null,
  };
}

// Everything a streamText consumer sees, by kind of part.
async function run(route, extra = {}) {
  const result = streamText({ model: model(route), prompt: input.question, onError: () => {}, ...extra });
  const out = { text: "", reasoning: "", toolCalls: [], toolResults: [], errors: [], finishReason: null };
  for await (const part of result.fullStream) {
    switch (part.type) {
      case "text-delta":
        out.text += part.text;
        break;
      case "reasoning-delta":
        out.reasoning += part.text;
        break;
      case "tool-call":
        out.toolCalls.push([part.toolName, part.input]);
        break;
      case "tool-result":
        out.toolResults.push([part.toolName, part.output]);
        break;
      case "error":
        out.errors.push(describe(part.error));
        break;
      case "finish":
        out.finishReason = part.finishReason;
        break;
    }
  }
  return out;
}

async function toolCall(route) {
  const executions = [];
  const getWeather = tool({
    description: input.tool.function.description,
    inputSchema: jsonSchema(input.tool.function.parameters),
    execute: async (args) => {
      executions.push(args);
      return "sunny";
    },
  });
  return { ...(await run(route, { tools: { get_weather: getWeather } })), executions };
}

const runs = { text: run, reasoning: run, refusalStream: run, failure: run, toolCall };

await main(input.scenarios, runs);
