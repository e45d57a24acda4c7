// A gRPC load generator on node:http2 with pre-framed request bodies: for what h2load cannot do (a
// different body per stream slot, e.g. one job per slot) and as the fallback when h2load is not installed.
// argv[2] is a JSON LoadSpec; prints one JSON LoadResult line when done.
import { connect } from "node:http2";
import type { ClientHttp2Session } from "node:http2";
import { performance } from "node:perf_hooks";

/** What to send. */
export interface LoadSpec {
  address: string;
  path: string;
  /** Extra request headers, e.g. authorization. */
  headers: Record<string, string>;
  /** gRPC-framed request bodies (base64); stream slot i always sends body i % bodies.length. */
  bodies: string[];
  connections: number;
  /** Streams in flight per connection. */
  streams: number;
  warmupMs: number;
  durationMs: number;
}

/** What happened in the measured period (after the warm-up). */
export interface LoadResult {
  seconds: number;
  /** Calls that ended with grpc-status 0. */
  ok: number;
  /** Calls that ended with grpc-status 0, warm-up included. */
  okTotal: number;
  /** Calls that ended otherwise, by grpc-status. */
  failed: Record<string, number>;
  p50Ms: number;
  p99Ms: number;
}

const spec = JSON.parse(process.argv[2]!) as LoadSpec;
const bodies = spec.bodies.map((b) => Buffer.from(b, "base64"));
const sessions: ClientHttp2Session[] = [];
for (let i = 0; i < spec.connections; i++) {
  const session = connect(`http://${spec.address}`);
  session.on("error", () => undefined);
  sessions.push(session);
}
await Promise.all(sessions.map((s) => new Promise((resolve) => s.once("connect", resolve))));

const started = performance.now();
const measureFrom = started + spec.warmupMs;
const stopAt = measureFrom + spec.durationMs;
let ok = 0;
let okTotal = 0;
const failed: Record<string, number> = {};
const latencies: number[] = [];

/** One call; resolves with its grpc-status. */
function call(session: ClientHttp2Session, body: Buffer): Promise<string> {
  return new Promise((resolve) => {
    const stream = session.request({
      ":method": "POST",
      ":path": spec.path,
      "content-type": "application/grpc",
      te: "trailers",
      ...spec.headers,
    });
    let status = "";
    stream.on("response", (headers) => {
      if (headers["grpc-status"] !== undefined) status = String(headers["grpc-status"]);
    });
    stream.on("trailers", (trailers) => {
      if (trailers["grpc-status"] !== undefined) status = String(trailers["grpc-status"]);
    });
    stream.on("data", () => undefined);
    stream.on("error", () => undefined);
    stream.on("close", () => resolve(status === "" ? "no-status" : status));
    stream.end(body);
  });
}

async function slot(session: ClientHttp2Session, body: Buffer): Promise<void> {
  for (;;) {
    const t = performance.now();
    if (t >= stopAt) return;
    const status = await call(session, body);
    if (status === "0") okTotal++;
    if (t < measureFrom) continue;
    if (status === "0") {
      ok++;
      latencies.push(performance.now() - t);
    } else failed[status] = (failed[status] ?? 0) + 1;
  }
}

const slots: Promise<void>[] = [];
let n = 0;
for (const session of sessions)
  for (let s = 0; s < spec.streams; s++) slots.push(slot(session, bodies[n++ % bodies.length]!));
await Promise.all(slots);
const seconds = (performance.now() - measureFrom) / 1000;
for (const s of sessions) s.close();
latencies.sort((a, b) => a - b);
const at = (p: number): number => latencies[Math.max(0, Math.ceil(p * latencies.length) - 1)] ?? Number.NaN;
const result: LoadResult = { seconds, ok, okTotal, failed, p50Ms: at(0.5), p99Ms: at(0.99) };
console.log(JSON.stringify(result));
