// Shared by the client scripts: read the scenarios from stdin, run them all at once
// (each has its own route, so they cannot disturb each other), print one JSON object.
import { readFileSync } from "node:fs";

export function readInput() {
  return JSON.parse(readFileSync(0, "utf8"));
}

function withTimeout(promise, ms) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`scenario still running after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// A thrown error as JSON: enough for a test to tell what the client ended up with.
export function describeError(error) {
  const out = { name: error?.constructor?.name ?? typeof error, message: String(error?.message ?? error) };
  for (const key of ["status", "statusCode", "reason", "isRetryable"]) {
    if (error?.[key] !== undefined) out[key] = error[key];
  }
  return out;
}

// Runs `runs[s.run](s.route)` for every scenario `s` and prints {id: result}.
export async function main(scenarios, runs, timeoutMs = 30000) {
  const results = await Promise.all(
    scenarios.map(async (s) => {
      try {
        return [s.id, await withTimeout(runs[s.run](s.route), timeoutMs)];
      } catch (error) {
        return [s.id, { thrown: describeError(error) }];
      }
    }),
  );
  process.stdout.write(JSON.stringify(Object.fromEntries(results)));
}
