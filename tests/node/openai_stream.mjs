// The official openai client, streaming and plain, through a running bench-proxy.
// usage: node openai_stream.mjs http://127.0.0.1:PORT
import OpenAI from "openai";
import assert from "node:assert/strict";

const base = process.argv[2];
const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: "unused", maxRetries: 0, timeout: 30000 });

const models = await client.models.list();
const model = models.data[0].id;

const plain = await client.chat.completions.create({
  model,
  messages: [{ role: "user", content: "I lost my card" }],
  max_tokens: 8,
});
assert.equal(plain.choices[0].message.role, "assistant");
assert.equal(plain.usage.completion_tokens, 8);

const t0 = performance.now();
const stream = await client.chat.completions.create({
  model,
  messages: [{ role: "user", content: "stream please" }],
  max_tokens: 12,
  stream: true,
  stream_options: { include_usage: true },
});
const arrivals = [];
let text = "";
let usage = null;
for await (const chunk of stream) {
  if (chunk.usage) usage = chunk.usage;
  const piece = chunk.choices[0]?.delta?.content;
  if (piece) {
    arrivals.push(performance.now() - t0);
    text += piece;
  }
}
assert.equal(arrivals.length, 12, `expected 12 content events, got ${arrivals.length}`);
assert.equal(usage.completion_tokens, 12);
// Progressive delivery: the first token long before the last (the engine spaces them).
assert.ok(arrivals[11] - arrivals[0] > 100, `events were not progressive: ${arrivals}`);

// Abort mid-stream: the client goes away, bench-proxy must cancel upstream.
const controller = new AbortController();
const long = await client.chat.completions.create(
  { model, messages: [{ role: "user", content: "long" }], max_tokens: 500, stream: true },
  { signal: controller.signal },
);
let seen = 0;
try {
  for await (const chunk of long) {
    if (chunk.choices[0]?.delta?.content && ++seen === 3) controller.abort();
  }
} catch (e) {
  assert.ok(e.name === "APIUserAbortError" || e.name === "AbortError", `unexpected error ${e.name}`);
}
console.log(JSON.stringify({ ok: true, model, text, first_ms: arrivals[0], last_ms: arrivals[11], aborted_after: seen }));
