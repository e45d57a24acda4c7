// `npm run bench` (its last step): what Prometheus metrics cost the hot path. GetJobDetails throughput with
// JOBWATCH_METRICS_LISTEN set against the same server without it (the access log off in both, so "off" has
// no call observer at all), alternating runs, each figure the median; prints the ratio (goal >= 0.97).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getJobDetailsRate, median, spread } from "./lib.js";

const quick = process.argv.includes("--quick") || process.env.BENCH_QUICK === "1";
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? (quick ? 2 : 3));
const DURATION_S = Number(process.env.BENCH_SECONDS ?? (quick ? 3 : 5));

type Mode = "off" | "on";

/** GetJobDetails calls per second against a fresh server with metrics `mode`. */
function measure(mode: Mode, dir: string, round: number): Promise<number> {
  return getJobDetailsRate({
    url: `sqlite:${join(dir, `${mode}-${round}.db`)}`,
    env: { JOBWATCH_ACCESS_LOG: "off", ...(mode === "on" ? { JOBWATCH_METRICS_LISTEN: "127.0.0.1:0" } : {}) },
    seconds: DURATION_S,
    label: `metrics ${mode}`,
  });
}

const dir = mkdtempSync(join(tmpdir(), "jobwatch-bench-metrics-"));
try {
  const figures: Record<Mode, number[]> = { off: [], on: [] };
  for (let round = 0; round < ROUNDS; round++) {
    // Alternate which goes first, so a machine warming up or slowing down favours neither.
    const order: Mode[] = round % 2 === 0 ? ["off", "on"] : ["on", "off"];
    for (const mode of order) figures[mode].push(await measure(mode, dir, round));
  }
  const off = median(figures.off);
  const on = median(figures.on);
  console.log(
    `Metrics overhead: GetJobDetails on SQLite, ${ROUNDS} runs each of ${DURATION_S} s, 100 streams in flight`,
  );
  console.log(`  metrics off: ${spread(figures.off)} calls/s`);
  console.log(`  metrics on:  ${spread(figures.on)} calls/s`);
  console.log(`  ratio on/off: ${(on / off).toFixed(3)} (goal >= 0.97)`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
