// The BullMQ side of the fan-out (bench/peer.ts): `count` QueueEvents, each its own Redis connection
// reading the queue's event stream (as each WatchJob is its own stream), with a 'progress' listener for
// one job. Speaks bench/watchers.ts's IPC: argv[2] = {redis, prefix, queue, jobId, count}; sends
// {type:"ready"} once every QueueEvents is connected (they read from the stream's start, so no event
// published after "ready" can be missed by a late first read); on {type:"report"} answers {type:"report",
// received, missed, p50Ms, p99Ms, maxMs}. Progress i is the i-th change, so a gap is a missed one; the
// delay is now - the event's stream id (the Redis server's clock when it was added).
import { QueueEvents } from "bullmq";
import { quantile } from "./lib.js";

const spec = JSON.parse(process.argv[2]!) as {
  redis: { host: string; port: number };
  prefix: string;
  queue: string;
  jobId: string;
  count: number;
};
let received = 0;
let missed = 0;
const latencies: number[] = [];
const listeners: QueueEvents[] = [];
for (let i = 0; i < spec.count; i++) {
  const events = new QueueEvents(spec.queue, { connection: spec.redis, prefix: spec.prefix, lastEventId: "0-0" });
  let last = 0;
  events.on("progress", ({ jobId, data }, id) => {
    if (jobId !== spec.jobId || typeof data !== "number") return;
    received++;
    missed += Math.max(0, data - last - 1);
    last = data;
    latencies.push(Date.now() - Number(id.split("-")[0]));
  });
  events.on("error", () => undefined);
  listeners.push(events);
}
// The ready line first: startChild listens for IPC messages only once it has read it.
console.log(JSON.stringify({ listeners: spec.count }));
try {
  await Promise.all(listeners.map((l) => l.waitUntilReady()));
  process.send!({ type: "ready" });
} catch (error) {
  process.send!({ type: "failed", message: `a QueueEvents did not connect: ${String(error)}` });
}

process.on("message", (message: { type: string }) => {
  if (message.type !== "report") return;
  latencies.sort((a, b) => a - b);
  process.send!({
    type: "report",
    received,
    missed,
    p50Ms: quantile(latencies, 0.5),
    p99Ms: quantile(latencies, 0.99),
    maxMs: latencies.at(-1) ?? Number.NaN,
  });
});
// Exit at once: the Redis server drops the connections (closing thousands one by one only takes time).
process.on("SIGTERM", () => process.exit(0));
