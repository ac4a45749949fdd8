// The official openai client against llama.cpp's llama-server behind bench-proxy.
// usage: node llama_client.mjs http://127.0.0.1:PORT
import OpenAI from "openai";
import assert from "node:assert/strict";

const client = new OpenAI({ baseURL: `${process.argv[2]}/v1`, apiKey: "unused", maxRetries: 0, timeout: 60000 });
const plain = await client.chat.completions.create({
  model: "tiny",
  messages: [{ role: "user", content: "I lost my card" }],
  max_tokens: 16,
  temperature: 0,
});
assert.equal(plain.choices[0].message.role, "assistant");
assert.ok(plain.usage.completion_tokens > 0 && plain.usage.completion_tokens <= 16);

const stream = await client.chat.completions.create({
  model: "tiny",
  messages: [{ role: "user", content: "stream please" }],
  max_tokens: 24,
  temperature: 0,
  stream: true,
  stream_options: { include_usage: true },
});
let events = 0, usage = null, finish = null;
for await (const chunk of stream) {
  if (chunk.usage) usage = chunk.usage;
  if (chunk.choices[0]?.delta?.content) events++;
  if (chunk.choices[0]?.finish_reason) finish = chunk.choices[0].finish_reason;
}
assert.ok(events > 0, "no content events");
assert.ok(usage && usage.completion_tokens > 0, "no usage from the server");
assert.ok(finish === "length" || finish === "stop", `finish_reason ${finish}`);
console.log(JSON.stringify({ ok: true, events, usage, finish }));
