// Startup time of the built `jobwatch` command (`--version`, and `get ID` against a real server in this
// process), each printed next to a plain `node -e ''` measured in the same run: the difference is what
// jobwatch adds to a bare Node start (goal: within 150 ms), the ratio how many Node starts it costs. The goal is
// judged on the minimum of the runs, which other load on the machine cannot inflate. Each run's CPU time
// (median, over node's) is printed too: on a loaded machine even the minimum wall time is inflated.
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { pino } from "pino";
import { createClient } from "../src/client/index.js";
import { loadConfig } from "../src/config.js";
import { startService } from "../src/main.js";

const RUNS = Number(process.env.BENCH_STARTUP_RUNS ?? 15);
const GOAL_MS = 150;
const CLI = fileURLToPath(new URL("../dist/cli/main.js", import.meta.url));

/**
 * Preloaded (`-r`) into every run: at exit, writes the process's CPU time (user + system, all threads) to
 * stderr. Wall time is what a person waits; CPU time is what other load on the machine hardly changes.
 */
const CPU_AT_EXIT = `process.on("exit", () => {
  const { user, system } = process.cpuUsage();
  require("node:fs").writeSync(2, "\\njobwatch-bench-cpu " + (user + system) + "\\n");
});
`;

/** Runs node with `args` to completion: its wall time and CPU time in ms; rejects on a non-zero exit. */
function timeRun(args: string[], env: NodeJS.ProcessEnv, preload: string): Promise<{ wall: number; cpu: number }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ["-r", preload, ...args], { env }, (err, _stdout, stderr) => {
      const wall = performance.now() - started;
      const cpu = /jobwatch-bench-cpu (\d+)/.exec(stderr)?.[1];
      if (err || cpu === undefined) reject(new Error(`node ${args.join(" ")} failed: ${stderr || err?.message}`));
      else resolve({ wall, cpu: Number(cpu) / 1000 });
    });
  });
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** "+12" or "-3". */
function signed(ms: number): string {
  return `${ms >= 0 ? "+" : ""}${ms.toFixed(0)}`;
}

/** "median (min)"; other load on the machine only ever adds time, so the minimum is the cost itself. */
function figure(values: number[]): { median: number; min: number; text: string } {
  const m = median(values);
  const min = Math.min(...values);
  return { median: m, min, text: `${m.toFixed(0)} ms (min ${min.toFixed(0)})` };
}

async function main(): Promise<void> {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`);
  const dir = mkdtempSync(join(tmpdir(), "jobwatch-bench-startup-"));
  const config = loadConfig({
    JOBWATCH_DATABASE_URL: `sqlite:${join(dir, "bench.db")}`,
    JOBWATCH_LISTEN: "127.0.0.1:0",
    JOBWATCH_LOG_LEVEL: "silent",
  });
  let token = "";
  const service = await startService(config, pino({ level: "silent" }), (text) => {
    token = /jw_[A-Za-z0-9_-]+/.exec(text)?.[0] ?? token;
  });
  const client = createClient({ address: service.address, token });
  try {
    const job = await client.worker.createJob({ operationType: "bench_startup", username: "admin" });
    const env = { ...process.env, JOBWATCH_ADDRESS: service.address, JOBWATCH_TOKEN: token, NO_COLOR: "1" };
    const cases: [string, string[]][] = [
      ["node -e ''", ["-e", ""]],
      ["jobwatch --version", [CLI, "--version"]],
      ["jobwatch get ID", [CLI, "get", job.jobId]],
    ];
    const preload = join(dir, "cpu-at-exit.cjs");
    writeFileSync(preload, CPU_AT_EXIT);
    const times = new Map<string, number[]>(cases.map(([name]) => [name, []]));
    const cpus = new Map<string, number[]>(cases.map(([name]) => [name, []]));
    // One warm-up round (file cache), then the rounds interleaved so machine load hits every case alike.
    for (let round = -1; round < RUNS; round++) {
      for (const [name, args] of cases) {
        const { wall, cpu } = await timeRun(args, env, preload);
        if (round >= 0) times.get(name)!.push(wall);
        if (round >= 0) cpus.get(name)!.push(cpu);
      }
    }
    const baseline = figure(times.get("node -e ''")!);
    const baselineCpu = median(cpus.get("node -e ''")!);
    console.log(
      `CLI startup (built dist/, median and min of ${RUNS} runs; get against a server on ${service.address}):`,
    );
    console.log(`  baseline node -e '':   ${baseline.text}, CPU ${baselineCpu.toFixed(0)} ms`);
    const overMins = new Map<string, number>();
    for (const [name] of cases.slice(1)) {
      const f = figure(times.get(name)!);
      const over = f.median - baseline.median;
      overMins.set(name, f.min - baseline.min);
      console.log(
        `  ${`${name}:`.padEnd(21)} ${f.text}, ${signed(over)} ms over node (min ${signed(f.min - baseline.min)}), ` +
          `ratio ${(f.median / baseline.median).toFixed(2)}x; CPU ${signed(median(cpus.get(name)!) - baselineCpu)} ms over node`,
      );
    }
    const getOver = overMins.get("jobwatch get ID")!;
    console.log(
      `  goal: get startup ${signed(getOver)} ms over node by min, within +${GOAL_MS} ms: met ${getOver <= GOAL_MS ? "yes" : "NO"}`,
    );
  } finally {
    client.close();
    await service.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
