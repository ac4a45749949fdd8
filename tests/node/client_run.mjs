// The official openai client as a `bench-proxy run --client` command: N streamed chat completions
// (usage included), each timed by the client itself and written to $BENCH_PROXY_CLIENT_TIMINGS
// joined by x-bench-proxy-request-id; its own counts as one JSON line on stdout.
// usage: node client_run.mjs N MAX_TOKENS   (BENCH_PROXY_URL and BENCH_PROXY_MODEL from bench-proxy)
import OpenAI from "openai";
import { writeFileSync } from "node:fs";

const n = Number(process.argv[2]);
const maxTokens = Number(process.argv[3]);
const client = new OpenAI({ baseURL: `${process.env.BENCH_PROXY_URL}/v1`, apiKey: "unused", maxRetries: 0, timeout: 60000 });
const counts = { requests: 0, completed: 0, output_tokens: 0, prompt_tokens: 0 };
const lines = [];
for (let i = 0; i < n; i++) {
  const t0 = performance.now();
  counts.requests++;
  const { data: stream, response } = await client.chat.completions
    .create({
      model: process.env.BENCH_PROXY_MODEL,
      messages: [{ role: "user", content: `request ${i}` }],
      max_tokens: maxTokens,
      stream: true,
      stream_options: { include_usage: true },
    })
    .withResponse();
  let ttft = null;
  let usage = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    if (chunk.choices[0]?.delta?.content && ttft === null) ttft = performance.now() - t0;
  }
  const e2e = performance.now() - t0;
  if (usage) {
    counts.completed++;
    counts.output_tokens += usage.completion_tokens;
    counts.prompt_tokens += usage.prompt_tokens;
    lines.push(JSON.stringify({ id: Number(response.headers.get("x-bench-proxy-request-id")), ttft_ms: ttft, e2e_ms: e2e }));
  }
}
writeFileSync(process.env.BENCH_PROXY_CLIENT_TIMINGS, lines.map((l) => l + "\n").join(""));
console.log(JSON.stringify(counts));
