// The BullMQ side of a closed-loop load (bench/peer.ts): `inFlight` loops against the Redis server, each
// on one job of `jobIds` (slot i on job i % jobIds.length), for warmupMs + durationMs. argv[2] is a JSON
// BullMqLoadSpec; prints one JSON LoadResult line (as bench/h2-client.ts does) when done.
// "read": Job.fromId + job.getState (a job's state and progress, what GetJobDetails answers: the progress
// is a field of what Job.fromId reads);
// "progress": job.updateProgress (what ReportProgress does: store the progress, publish the event).
import { Job, Queue } from "bullmq";
import { closedLoop } from "./closed-loop.js";

/** What to run. */
export interface BullMqLoadSpec {
  mode: "read" | "progress";
  redis: { host: string; port: number };
  prefix: string;
  queue: string;
  jobIds: string[];
  inFlight: number;
  warmupMs: number;
  durationMs: number;
}

const spec = JSON.parse(process.argv[2]!) as BullMqLoadSpec;
const queue = new Queue(spec.queue, { connection: spec.redis, prefix: spec.prefix });
await queue.waitUntilReady();
const jobs = await Promise.all(spec.jobIds.map((id) => Job.fromId(queue, id)));

/** One call on slot `slot`'s job: "0" when it ended OK, else what went wrong. */
async function call(slot: number, n: number): Promise<string> {
  try {
    if (spec.mode === "progress") {
      await jobs[slot % jobs.length]!.updateProgress(n % 100);
      return "0";
    }
    const job = await Job.fromId(queue, spec.jobIds[slot % spec.jobIds.length]!);
    if (job === undefined) return "no such job";
    return (await job.getState()) === "unknown" ? "unknown state" : "0";
  } catch (error) {
    return error instanceof Error ? error.message.slice(0, 60) : String(error);
  }
}

const calls = new Array<number>(spec.inFlight).fill(0);
const result = await closedLoop(spec.inFlight, (slot) => call(slot, ++calls[slot]!), spec.warmupMs, spec.durationMs);
await queue.close();
console.log(JSON.stringify(result));
