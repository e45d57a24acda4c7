// A gRPC load generator on node:http2 with pre-framed request bodies: for what h2load cannot do (a
// different body per stream slot, e.g. one job per slot) and as the fallback when h2load is not installed.
// argv[2] is a JSON LoadSpec; prints one JSON LoadResult line when done.

import type { ClientHttp2Session } from "node:http2";
import { connect } from "node:http2";
import { closedLoop } from "./closed-loop.js";

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

export type { LoadResult } from "./closed-loop.js";

const spec = JSON.parse(process.argv[2]!) as LoadSpec;
const bodies = spec.bodies.map((b) => Buffer.from(b, "base64"));
const sessions: ClientHttp2Session[] = [];
for (let i = 0; i < spec.connections; i++) {
  const session = connect(`http://${spec.address}`);
  session.on("error", () => undefined);
  sessions.push(session);
}
await Promise.all(sessions.map((s) => new Promise((resolve) => s.once("connect", resolve))));

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

const result = await closedLoop(
  spec.connections * spec.streams,
  (slot) => call(sessions[Math.floor(slot / spec.streams)]!, bodies[slot % bodies.length]!),
  spec.warmupMs,
  spec.durationMs,
);
for (const s of sessions) s.close();
console.log(JSON.stringify(result));
