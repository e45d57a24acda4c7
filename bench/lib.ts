// Shared pieces of the benchmark harness: child processes pinned to cores, gRPC framing, CPU time, statistics.

import type { ChildProcess } from "node:child_process";
import { spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { createClient } from "../src/client/index.js";
import { GetJobDetailsRequest } from "../src/gen/jobwatch/v1/job_service.js";
import type { LoadResult, LoadSpec } from "./h2-client.js";

/** True when `command` can be run (found on PATH). */
export function installed(command: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${command}`], { stdio: "ignore" }).status === 0;
}

/** Cores the servers and the load run on, so neither steals the other's CPU (needs taskset and 2+ cores). */
export const PINNING = installed("taskset") ? { server: "0", load: "1" } : undefined;

/** `command args` prefixed with taskset pinned to `cores`, when taskset exists. */
export function pinned(cores: string | undefined, command: string, args: string[]): [string, string[]] {
  if (PINNING === undefined || cores === undefined) return [command, args];
  return ["taskset", ["-c", cores, command, ...args]];
}

/** A child process that printed one JSON line on stdout when ready. */
export interface Child<T> {
  process: ChildProcess;
  info: T;
  /** The pid of the node process itself (under taskset it is the same pid: taskset execs). */
  pid: number;
  stop(): Promise<void>;
}

/** The node arguments that run a TypeScript file of this repository. */
export function nodeTs(file: string, extra: string[] = []): string[] {
  return [...extra, "--import", "tsx", file];
}

/**
 * Starts `node <script>` (pinned to `cores`) and waits for the first stdout line, parsed as JSON. Its
 * stderr passes through, so a crash is visible.
 */
export async function startChild<T>(
  cores: string | undefined,
  nodeArgs: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<Child<T>> {
  const [command, args] = pinned(cores, process.execPath, nodeArgs);
  const child = spawn(command, args, { stdio: ["ignore", "pipe", "inherit", "ipc"], env: { ...process.env, ...env } });
  const lines = createInterface({ input: child.stdout! });
  const info = await new Promise<T>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`${nodeArgs.at(-1)} exited with ${code} before it was ready`)));
    lines.once("line", (line) => {
      try {
        resolve(JSON.parse(line) as T);
      } catch {
        reject(new Error(`${nodeArgs.at(-1)} printed '${line}' instead of its JSON ready line`));
      }
    });
  });
  child.removeAllListeners("exit");
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return {
    process: child,
    info,
    pid: child.pid!,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Runs a command to its end and returns its stdout; throws with its stderr when it fails. */
export function run(command: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    child.on("exit", (code) => {
      if (code === 0) resolve(out);
      else reject(new Error(`${command} ${args.join(" ")} exited with ${code}: ${err || out}`));
    });
  });
}

/** A protobuf message as one gRPC length-prefixed frame (uncompressed). */
export function grpcFrame(message: Uint8Array): Buffer {
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt8(0, 0);
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, 5);
  return frame;
}

/** User + system CPU time of a process so far, in ms (Linux /proc). */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name (which is in parentheses and may contain spaces).
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks * 1000) / 100; // USER_HZ is 100 on Linux
}

/** The median of some numbers (NaN for none). */
export function median(values: readonly number[]): number {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** The p-quantile (0-1) of sorted values, nearest rank. */
export function quantile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.max(1, Math.ceil(p * sorted.length));
  return sorted[rank - 1]!;
}

/** Minimum, median and maximum, as "median (min-max)", for how noisy a figure was. */
export function spread(values: readonly number[], digits = 0): string {
  const v = values.filter((x) => Number.isFinite(x));
  if (v.length === 0) return "-";
  const f = (x: number): string => x.toFixed(digits);
  return v.length === 1 ? f(v[0]!) : `${f(median(v))} (${f(Math.min(...v))}-${f(Math.max(...v))})`;
}

/** Runs bench/h2-client.ts with `spec` on the load core and returns what it measured. */
export async function h2Load(spec: LoadSpec): Promise<LoadResult> {
  const [command, args] = pinned(PINNING?.load, process.execPath, [
    ...nodeTs("bench/h2-client.ts"),
    JSON.stringify(spec),
  ]);
  return JSON.parse(await run(command, args)) as LoadResult;
}

/** What getJobDetailsRate runs. */
export interface DetailsRateSpec {
  /** The database URL of the server (a fresh SQLite file). */
  url: string;
  /** The server's environment (beside the bench's own). */
  env: NodeJS.ProcessEnv;
  seconds: number;
  /** The server entry; default bench/jobwatch-server.ts of this tree (another tree's for a baseline build). */
  script?: string;
  /** Names the server in an error. */
  label: string;
}

/**
 * GetJobDetails calls per second of one user reading their own job, 100 streams in flight on 10
 * connections (h2-client on the load core), against a fresh jobwatch server (pinned to the server core).
 */
export async function getJobDetailsRate(spec: DetailsRateSpec): Promise<number> {
  return (await getJobDetailsRun(spec)).rate;
}

/**
 * getJobDetailsRate's run, with the server's CPU time per call (us, warm-up included on both sides): less
 * moved by other work on the machine than calls/s, which counts every time the server had no core.
 */
export async function getJobDetailsRun(spec: DetailsRateSpec): Promise<{ rate: number; cpuUsPerCall: number }> {
  const child = await startChild<{ address: string; user: string; admin: string }>(
    PINNING?.server,
    nodeTs(spec.script ?? "bench/jobwatch-server.ts").concat(spec.url),
    spec.env,
  );
  try {
    const admin = createClient({ address: child.info.address, token: child.info.admin });
    const job = await admin.worker.createJob({ operationType: "bench_details", username: "bench-user" });
    admin.close();
    const load: LoadSpec = {
      address: child.info.address,
      path: "/jobwatch.v1.JobService/GetJobDetails",
      headers: { authorization: `Bearer ${child.info.user}` },
      bodies: [grpcFrame(GetJobDetailsRequest.encode({ jobId: job.jobId }).finish()).toString("base64")],
      connections: 10,
      streams: 10,
      warmupMs: 1000,
      durationMs: spec.seconds * 1000,
    };
    const cpuBefore = cpuMs(child.pid);
    const result = await h2Load(load);
    const cpuUsPerCall = ((cpuMs(child.pid) - cpuBefore) * 1000) / result.okTotal;
    const failed = Object.values(result.failed).reduce((a, b) => a + b, 0);
    if (failed > 0) throw new Error(`${failed} GetJobDetails calls failed (${spec.label})`);
    return { rate: result.ok / result.seconds, cpuUsPerCall };
  } finally {
    await child.stop();
  }
}
