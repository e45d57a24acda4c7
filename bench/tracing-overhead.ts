// `npm run bench` (a step of its own): what tracing costs GetJobDetails. Three servers, alternating runs,
// each figure the median: "base", the build of the commit before tracing existed (BENCH_TRACING_BASE, by
// default the parent of the commit that added src/server/tracing.ts: as main moves on, its later changes
// count in the ratio too); "off", this build with no OTEL_* endpoint (the shipped default); "on", every call
// sampled and exported over OTLP/HTTP to a sink in this process. Prints off/base (goal >= 0.98) and on/off, in
// calls/s and in the server's CPU time per call (which other work on a shared machine moves less).
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { getJobDetailsRun, median, spread } from "./lib.js";

const quick = process.argv.includes("--quick") || process.env.BENCH_QUICK === "1";
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? (quick ? 2 : 3));
const DURATION_S = Number(process.env.BENCH_SECONDS ?? (quick ? 3 : 5));

type Mode = "base" | "off" | "on";

/** `git args` in this repository; undefined when it fails (no git, not a clone). */
function git(args: string[]): string | undefined {
  const out = spawnSync("git", args, { encoding: "utf8" });
  return out.status === 0 ? out.stdout.trim() : undefined;
}

/** The base's bench/jobwatch-server.ts, built from git into `dir`; undefined (and why) when it cannot be. */
function buildBase(dir: string): { script?: string; note: string } {
  const added = git(["log", "--diff-filter=A", "--format=%H", "--", "src/server/tracing.ts"])?.split("\n").at(-1);
  const ref = process.env.BENCH_TRACING_BASE ?? (added ? `${added}^` : undefined);
  const commit = ref === undefined ? undefined : git(["rev-parse", "--short", ref]);
  if (commit === undefined) return { note: "no base: not a git clone with tracing's history" };
  const base = join(dir, "base");
  mkdirSync(base);
  const archive = spawnSync("sh", ["-c", `git archive ${commit} | tar -x -C ${base}`]);
  if (archive.status !== 0) return { note: `no base: git archive ${commit} failed` };
  symlinkSync(resolve("node_modules"), join(base, "node_modules"));
  const build = spawnSync(process.execPath, [resolve("node_modules/typescript/bin/tsc"), "-p", "tsconfig.build.json"], {
    cwd: base,
    encoding: "utf8",
  });
  if (build.status !== 0) return { note: `no base: the build of ${commit} failed: ${build.stdout}${build.stderr}` };
  return { script: join(base, "bench/jobwatch-server.ts"), note: `base = ${commit}` };
}

/** An OTLP/HTTP endpoint that accepts every export and counts the requests. */
async function startSink(): Promise<{ url: string; exports: () => number; close(): void }> {
  let exports = 0;
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      exports++;
      res.writeHead(200, { "content-type": "application/x-protobuf" }).end();
    });
  });
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, exports: () => exports, close: () => server.close() };
}

const dir = mkdtempSync(join(tmpdir(), "jobwatch-bench-tracing-"));
const sink = await startSink();
try {
  const base = buildBase(dir);
  const modes: Mode[] = base.script === undefined ? ["off", "on"] : ["base", "off", "on"];
  const env: Record<Mode, NodeJS.ProcessEnv> = {
    base: { JOBWATCH_ACCESS_LOG: "off" },
    off: { JOBWATCH_ACCESS_LOG: "off" },
    on: {
      JOBWATCH_ACCESS_LOG: "off",
      OTEL_EXPORTER_OTLP_ENDPOINT: sink.url,
      OTEL_TRACES_SAMPLER: "always_on",
      // Every span exported, none dropped from a full queue: the whole cost of tracing every call.
      OTEL_BSP_MAX_QUEUE_SIZE: "200000",
      OTEL_BSP_MAX_EXPORT_BATCH_SIZE: "4096",
      OTEL_BSP_SCHEDULE_DELAY: "200",
    },
  };
  const figures: Record<Mode, number[]> = { base: [], off: [], on: [] };
  const cpu: Record<Mode, number[]> = { base: [], off: [], on: [] };
  for (let round = 0; round < ROUNDS; round++) {
    // Rotate which goes first, so a machine warming up or slowing down favours none.
    const order = modes.map((_, i) => modes[(i + round) % modes.length]!);
    for (const mode of order) {
      const measured = await getJobDetailsRun({
        url: `sqlite:${join(dir, `${mode}-${round}.db`)}`,
        env: env[mode],
        seconds: DURATION_S,
        label: `tracing ${mode}`,
        ...(mode === "base" && base.script !== undefined ? { script: base.script } : {}),
      });
      figures[mode].push(measured.rate);
      cpu[mode].push(measured.cpuUsPerCall);
    }
  }
  const off = median(figures.off);
  const offCpu = median(cpu.off);
  const met = (ok: boolean): string => (ok ? "yes" : "NO");
  console.log(
    `Tracing overhead: GetJobDetails on SQLite, ${ROUNDS} runs each of ${DURATION_S} s, 100 streams in flight (${base.note})`,
  );
  const row = (label: string, mode: Mode, extra = ""): void =>
    console.log(`  ${label} ${spread(figures[mode])} calls/s, ${spread(cpu[mode], 1)} us CPU per call${extra}`);
  if (base.script !== undefined) row("before tracing:", "base");
  row("tracing off:   ", "off");
  row("tracing on:    ", "on", ` (always_on, ${sink.exports()} OTLP exports received)`);
  if (base.script !== undefined) {
    const ratio = off / median(figures.base);
    const cpuRatio = offCpu / median(cpu.base);
    console.log(`  ratio off/base: ${ratio.toFixed(3)} calls/s (goal >= 0.98, met: ${met(ratio >= 0.98)})`);
    console.log(`  CPU per call off/base: ${cpuRatio.toFixed(3)} (goal <= 1.02, met: ${met(cpuRatio <= 1.02)})`);
  }
  console.log(
    `  ratio on/off:   ${(median(figures.on) / off).toFixed(3)} calls/s, CPU per call ${(median(cpu.on) / offCpu).toFixed(3)}x (the cost of tracing every call)`,
  );
} finally {
  sink.close();
  rmSync(dir, { recursive: true, force: true });
}
