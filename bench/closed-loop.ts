// The closed loop of the load generators (bench/h2-client.ts, bench/bullmq-load.ts): each slot makes one
// call after the other until the time is up; what ended after the warm-up is counted, with its latency.
import { performance } from "node:perf_hooks";

/** What happened in the measured period (after the warm-up). */
export interface LoadResult {
  seconds: number;
  /** Calls that ended OK (grpc-status 0). */
  ok: number;
  /** Calls that ended OK, warm-up included. */
  okTotal: number;
  /** Calls that ended otherwise, by status (grpc-status, or the error). */
  failed: Record<string, number>;
  p50Ms: number;
  p99Ms: number;
  /** CPU time of the load process from the first call to the last, in ms (its start-up left out). */
  cpuMs: number;
}

/** Runs `slots` loops of `call(slot)`, which resolves with "0" when the call ended OK, else its status. */
export async function closedLoop(
  slots: number,
  call: (slot: number) => Promise<string>,
  warmupMs: number,
  durationMs: number,
): Promise<LoadResult> {
  const cpuStart = process.cpuUsage();
  const measureFrom = performance.now() + warmupMs;
  const stopAt = measureFrom + durationMs;
  let ok = 0;
  let okTotal = 0;
  const failed: Record<string, number> = {};
  const latencies: number[] = [];
  const loop = async (slot: number): Promise<void> => {
    for (;;) {
      const t = performance.now();
      if (t >= stopAt) return;
      const status = await call(slot);
      if (status === "0") okTotal++;
      if (t < measureFrom) continue;
      if (status === "0") {
        ok++;
        latencies.push(performance.now() - t);
      } else failed[status] = (failed[status] ?? 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: slots }, (_, slot) => loop(slot)));
  const seconds = (performance.now() - measureFrom) / 1000;
  const cpu = process.cpuUsage(cpuStart);
  latencies.sort((a, b) => a - b);
  const at = (p: number): number => latencies[Math.max(0, Math.ceil(p * latencies.length) - 1)] ?? Number.NaN;
  return { seconds, ok, okTotal, failed, p50Ms: at(0.5), p99Ms: at(0.99), cpuMs: (cpu.user + cpu.system) / 1000 };
}
