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

// The same client checked against the proxy's stopwatch (docs/metrics.md, "Client overhead"):
// the response's x-bench-proxy-request-id names the proxy's record of this very request.
const c0 = performance.now();
const { data: timed, response } = await client.chat.completions
  .create({ model, messages: [{ role: "user", content: "timed" }], max_tokens: 6, stream: true })
  .withResponse();
let clientTtft = null;
for await (const chunk of timed) {
  if (clientTtft === null && chunk.choices[0]?.delta?.content) clientTtft = performance.now() - c0;
}
const clientE2e = performance.now() - c0;
const rid = Number(response.headers.get("x-bench-proxy-request-id"));
assert.ok(rid > 0, "no x-bench-proxy-request-id on the response");
// The record is handed over once the proxy wrote the last byte, a moment after the client may
// have read it: poll for it (with a deadline).
let rec = null;
for (const deadline = Date.now() + 10000; !rec && Date.now() < deadline; ) {
  const line = (await (await fetch(`${base}/proxy/requests?after=${rid - 1}&limit=1`)).text()).split("\n")[0];
  if (line) rec = JSON.parse(line);
  else await new Promise((r) => setTimeout(r, 20));
}
assert.ok(rec, `no record of request ${rid} at the proxy`);
assert.equal(rec.id, rid);
assert.equal(rec.content_events, 6);
// The client's interval holds the proxy's, so its TTFT can only be longer: the difference is
// the client's own overhead (connection setup, parsing, its event loop), reported, not hidden.
assert.ok(clientTtft >= rec.ttft_ms, `client TTFT ${clientTtft} < proxy TTFT ${rec.ttft_ms}`);
const overhead = {
  client_ttft_ms: clientTtft, proxy_ttft_ms: rec.ttft_ms, ttft_overhead_ms: clientTtft - rec.ttft_ms,
  client_e2e_ms: clientE2e, proxy_e2e_ms: rec.e2e_ms, e2e_overhead_ms: clientE2e - rec.e2e_ms,
};
console.log("openai npm client against the proxy's record: " + JSON.stringify(overhead));

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
console.log(JSON.stringify({ ok: true, model, text, first_ms: arrivals[0], last_ms: arrivals[11], aborted_after: seen,
  client_overhead: overhead }));
