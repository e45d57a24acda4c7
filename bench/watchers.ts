// Holds many WatchJob streams of one job open on node:http2 (cheaper per stream than grpc-js, so the
// client is not what limits the fan-out) and measures each delivery: how late (now - the job's
// updated_at) and whether any revision was missed. Driven over IPC by bench/run.ts:
// argv[2] = {address, token, jobId, count, connections}; sends {type:"ready"} once every stream has its
// first message; on {type:"report"} answers {type:"report", received, missed, p50Ms, p99Ms, maxMs, ended,
// sequences, endedOk}: `sequences` counts the streams by the states they went through ("running >
// running+cancel > completed+cancel"), so a status change a stream never saw shows; `endedOk` the
// streams that ended with status OK.

import type { ClientHttp2Session } from "node:http2";
import { connect } from "node:http2";
import { JobStatus } from "../src/gen/jobwatch/v1/job.js";
import { WatchJobRequest, WatchJobResponse } from "../src/gen/jobwatch/v1/job_service.js";
import { grpcFrame } from "./lib.js";

const spec = JSON.parse(process.argv[2]!) as {
  address: string;
  token: string;
  jobId: string;
  count: number;
  connections: number;
};
const body = grpcFrame(WatchJobRequest.encode({ jobId: spec.jobId }).finish());
const sessions: ClientHttp2Session[] = [];
for (let i = 0; i < spec.connections; i++) {
  const session = connect(`http://${spec.address}`, {
    // Large windows: flow control must not be what slows delivery down.
    settings: { initialWindowSize: 1 << 20 },
  });
  session.on("connect", () => session.setLocalWindowSize(64 << 20));
  session.on("error", () => undefined);
  sessions.push(session);
}

let ready = 0;
let received = 0;
let missed = 0;
let ended = 0;
let endedOk = 0;
const latencies: number[] = [];
/** Each stream's states, in order, one entry per run of equal ones. */
const states: string[][] = [];

for (let i = 0; i < spec.count; i++) {
  const stream = sessions[i % sessions.length]!.request({
    ":method": "POST",
    ":path": "/jobwatch.v1.JobService/WatchJob",
    "content-type": "application/grpc",
    te: "trailers",
    authorization: `Bearer ${spec.token}`,
  });
  let buffered: Buffer = Buffer.alloc(0);
  let last: number | undefined;
  const seen: string[] = [];
  states.push(seen);
  stream.on("data", (chunk: Buffer) => {
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
    while (buffered.length >= 5) {
      const length = buffered.readUInt32BE(1);
      if (buffered.length < 5 + length) break;
      const job = WatchJobResponse.decode(buffered.subarray(5, 5 + length)).job;
      buffered = buffered.subarray(5 + length);
      // A bookmark (no job): the stream was quiet for the bookmark interval, as setting up many may take.
      if (job === undefined) continue;
      const state = `${JobStatus[job.status].replace("JOB_STATUS_", "").toLowerCase()}${job.cancelRequested ? "+cancel" : ""}`;
      if (seen.at(-1) !== state) seen.push(state);
      if (last === undefined) {
        last = job.revision;
        if (++ready === spec.count) process.send!({ type: "ready" });
        continue;
      }
      received++;
      missed += job.revision - last - 1;
      last = job.revision;
      latencies.push(Date.now() - (job.updatedAt?.getTime() ?? Date.now()));
    }
  });
  let message = "";
  stream.on("trailers", (trailers) => {
    message = `${trailers["grpc-status"]} ${trailers["grpc-message"] ?? ""}`;
    if (trailers["grpc-status"] === "0") endedOk++;
  });
  stream.on("error", () => undefined);
  stream.on("close", () => {
    ended++;
    // Refused (a cap, a bad token): say so now rather than leave the bench waiting for "ready".
    if (last === undefined)
      process.send!({ type: "failed", message: `a watch ended before its first message: ${message}` });
  });
  stream.end(body);
}

process.on("message", (message: { type: string }) => {
  if (message.type !== "report") return;
  latencies.sort((a, b) => a - b);
  const at = (p: number): number => latencies[Math.max(0, Math.ceil(p * latencies.length) - 1)] ?? Number.NaN;
  process.send!({
    type: "report",
    received,
    missed,
    ended,
    p50Ms: at(0.5),
    p99Ms: at(0.99),
    maxMs: latencies.at(-1) ?? Number.NaN,
    sequences: sequences(),
    endedOk,
  });
});
/** How many streams went through each sequence of states. */
function sequences(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const seen of states) {
    const key = seen.join(" > ");
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}

process.on("SIGTERM", () => {
  for (const s of sessions) s.destroy();
  process.exit(0);
});
console.log(JSON.stringify({ streams: spec.count }));
