// `npm run bench`: jobwatch against a bare grpc-js server started in this same run, on SQLite and (when
// JOBWATCH_TEST_MYSQL_URL is set) MySQL. Servers run in child processes pinned to one core, the load
// (h2load, or node:http2 clients) on the other; targets alternate run by run (bare, SQLite, MySQL, bare,
// ...) and each figure is the median of its runs. Prints one table with each goal of issue 10 beside it.
// Beside each closed-loop rate, the CPU per call of the server (and of a local database server, included).
// `--quick` (or BENCH_QUICK=1, which `npm run bench` passes on) for a short run (fewer and shorter runs, fewer watchers and jobs).
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import * as grpc from "@grpc/grpc-js";
import type { JobwatchClient } from "../src/client/index.js";
import { createClient } from "../src/client/index.js";
import { GetJobDetailsRequest } from "../src/gen/jobwatch/v1/job_service.js";
import { ReportProgressRequest } from "../src/gen/jobwatch/v1/job_worker_service.js";
import type { TestDatabase } from "../test/helpers/databases.js";
import { freshDatabase, TEST_MYSQL_URL } from "../test/helpers/databases.js";
import type { LoadResult, LoadSpec } from "./h2-client.js";
import type { Child } from "./lib.js";
import { cpuMs, grpcFrame, installed, median, nodeTs, PINNING, quantile, run, spread, startChild } from "./lib.js";
import type { QueryFigures } from "./list-jobs.js";
import { queryBench } from "./list-jobs.js";
import { peerBench } from "./peer.js";

const quick = process.argv.includes("--quick") || process.env.BENCH_QUICK === "1";
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? (quick ? 2 : 3));
const DURATION_S = Number(process.env.BENCH_SECONDS ?? (quick ? 2 : 5));
const WARMUP_S = 1;
const CONNECTIONS = 10;
const STREAMS = 10;
const DISTINCT_JOBS = CONNECTIONS * STREAMS;
const WATCHERS = Number(process.env.BENCH_WATCHERS ?? (quick ? 2000 : 10_000));
const CHANGES = quick ? 10 : 20;
const CHANGE_INTERVAL_MS = 300;
/** Seconds of the 10-updates-per-second fan-out (a cancel request half way, completion at the end). */
const RATE_SECONDS = quick ? 3 : 5;
const JOBS = Number(process.env.BENCH_JOBS ?? (quick ? 100_000 : 1_000_000));
const PROFILE_DIR = process.env.BENCH_PROFILE_DIR;
const ONLY = process.env.BENCH_ONLY?.split(",");
const H2LOAD = installed("h2load") && process.env.BENCH_NO_H2LOAD === undefined;
/**
 * The MySQL/MariaDB server's process when it runs on this machine (its CPU per call is reported too): the
 * one listening on the URL's port (a Galera test's mariadbd may run beside it), else the only one running.
 */
const DATABASE_PID = ((): number | undefined => {
  const local = TEST_MYSQL_URL ? /@(127\.0\.0\.1|localhost)(?::(\d+))?[/]?/.exec(TEST_MYSQL_URL) : null;
  if (!local) return undefined;
  const listening = spawnSync("ss", ["-ltnpH", `sport = :${local[2] ?? "3306"}`], { encoding: "utf8" }).stdout ?? "";
  const pids =
    /pid=(\d+)/.exec(listening)?.[1] ?? spawnSync("pidof", ["mariadbd", "mysqld"], { encoding: "utf8" }).stdout;
  const pid = Number(pids.trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
})();

type TargetName = "bare" | "sqlite" | "mysql";

/** A server under test, with what the load needs to call it. */
interface Target {
  name: TargetName;
  child: Child<{ address: string; user?: string; worker?: string; admin?: string }>;
  address: string;
  userToken: string;
  workerToken: string;
  client?: JobwatchClient;
  /** The job GetJobDetails reads (the caller's own). */
  getJobId: string;
  /** Running jobs, one per stream slot of the distinct-jobs load. */
  distinctJobIds: string[];
  /** The running job every call of the hot-job load reports on. */
  hotJobId: string;
  database?: TestDatabase;
}

// The orchestrator only sets up and paces: it shares the load core, never the servers'.
if (PINNING) await run("taskset", ["-p", "-c", PINNING.load, String(process.pid)]);
const work = mkdtempSync(join(tmpdir(), "jobwatch-bench-"));

async function startJobwatch(name: "sqlite" | "mysql"): Promise<Target> {
  const database = name === "sqlite" ? undefined : await freshDatabase("mysql");
  const url = database?.url ?? `sqlite:${join(work, "bench.db")}`;
  const profile = PROFILE_DIR ? ["--cpu-prof", "--cpu-prof-dir", join(PROFILE_DIR, name)] : [];
  const child = await startChild<{ address: string; user: string; worker: string; admin: string }>(
    PINNING?.server,
    nodeTs("bench/jobwatch-server.ts", profile).concat(url),
  );
  const { address, user, worker, admin } = child.info;
  const client = createClient({ address, token: admin });
  const make = async (): Promise<string> =>
    (await client.worker.createJob({ operationType: "bench", username: "bench-user" })).jobId;
  const getJobId = await make();
  const distinctJobIds: string[] = [];
  for (let i = 0; i < DISTINCT_JOBS; i++) distinctJobIds.push(await make());
  const hotJobId = await make();
  for (const id of [...distinctJobIds, hotJobId]) await client.worker.startJob(id);
  const target: Target = {
    name,
    child,
    address,
    userToken: user,
    workerToken: worker,
    client,
    getJobId,
    distinctJobIds,
    hotJobId,
  };
  if (database) target.database = database;
  return target;
}

/** One unary call with raw bytes in and out (to capture jobwatch's real responses for the bare server). */
function rawCall(address: string, path: string, token: string, request: Uint8Array): Promise<Buffer> {
  const channel = new grpc.Client(address, grpc.credentials.createInsecure());
  const metadata = new grpc.Metadata();
  metadata.set("authorization", `Bearer ${token}`);
  return new Promise<Buffer>((resolve, reject) => {
    channel.makeUnaryRequest(
      path,
      (b: Buffer) => b,
      (b: Buffer) => b,
      Buffer.from(request),
      metadata,
      (error, value) => (error || !value ? reject(error) : resolve(value)),
    );
  }).finally(() => channel.close());
}

const GET_PATH = "/jobwatch.v1.JobService/GetJobDetails";
const REPORT_PATH = "/jobwatch.v1.JobWorkerService/ReportProgress";
const getBody = (id: string): Buffer => grpcFrame(GetJobDetailsRequest.encode({ jobId: id }).finish());
const reportBody = (id: string): Buffer =>
  grpcFrame(ReportProgressRequest.encode({ jobId: id, progress: 50 }).finish());

/** What one load run measured. */
interface Load {
  perSecond: number;
  /** CPU time per call of the server process, and of the database server when it runs here (MySQL), in us. */
  serverCpuUs?: number;
  databaseCpuUs?: number;
  /** Calls that ended OK, warm-up included (node:http2 clients only: h2load cannot read grpc-status). */
  okTotal?: number;
  p99Ms: number;
  failed: number;
}

/** Drives `path` with a closed loop of CONNECTIONS x STREAMS calls in flight (or `rps` calls/s when set). */
async function load(
  target: Target,
  path: string,
  token: string,
  bodies: Buffer[],
  options: { rps?: number; node?: boolean } = {},
): Promise<Load> {
  const { rps } = options;
  const headers = { authorization: `Bearer ${token}` };
  // CPU per call over the whole run (warm-up included, as are its calls): where a call's time goes.
  const dbPid = target.database === undefined ? undefined : DATABASE_PID;
  const cpuBefore = { server: cpuMs(target.child.pid), database: dbPid === undefined ? 0 : cpuMs(dbPid) };
  const perCall = (calls: number): Pick<Load, "serverCpuUs" | "databaseCpuUs"> => ({
    serverCpuUs: ((cpuMs(target.child.pid) - cpuBefore.server) * 1000) / calls,
    ...(dbPid === undefined ? {} : { databaseCpuUs: ((cpuMs(dbPid) - cpuBefore.database) * 1000) / calls }),
  });
  if (H2LOAD && bodies.length === 1 && !options.node) {
    const data = join(work, "body.bin");
    const log = join(work, "h2load.log");
    writeFileSync(data, bodies[0]!);
    rmSync(log, { force: true });
    const args = [
      ...(PINNING ? ["-c", PINNING.load, "h2load"] : []),
      "-c",
      String(CONNECTIONS),
      "-m",
      String(STREAMS),
      "-t",
      "1",
      "-D",
      String(DURATION_S),
      "--warm-up-time",
      String(WARMUP_S),
      "-d",
      data,
      "-H",
      "content-type: application/grpc",
      "-H",
      "te: trailers",
      "-H",
      `authorization: ${headers.authorization}`,
      ...(rps === undefined ? [] : ["--rps", String(Math.max(1, Math.round(rps / CONNECTIONS))), "--log-file", log]),
      `http://${target.address}${path}`,
    ];
    const out = await run(PINNING ? "taskset" : "h2load", args);
    const perSecond = Number(/finished in [\d.]+\w*, ([\d.]+) req\/s/.exec(out)?.[1] ?? Number.NaN);
    const counts =
      /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored/.exec(out);
    let p99Ms = Number.NaN;
    if (rps !== undefined) {
      const durations = readFileSync(log, "utf8")
        .trim()
        .split("\n")
        .map((line) => Number(line.split("\t")[2]) / 1000)
        .sort((a, b) => a - b);
      p99Ms = quantile(durations, 0.99);
    }
    const calls = perSecond * (DURATION_S + WARMUP_S);
    return {
      perSecond,
      p99Ms,
      failed: Number(counts?.[5] ?? 0) + Number(counts?.[6] ?? 0),
      ...(rps === undefined ? perCall(calls) : {}),
    };
  }
  const spec: LoadSpec = {
    address: target.address,
    path,
    headers,
    bodies: bodies.map((b) => b.toString("base64")),
    connections: CONNECTIONS,
    streams: STREAMS,
    warmupMs: WARMUP_S * 1000,
    durationMs: DURATION_S * 1000,
  };
  const [command, args] = PINNING
    ? ["taskset", ["-c", PINNING.load, process.execPath, ...nodeTs("bench/h2-client.ts"), JSON.stringify(spec)]]
    : [process.execPath, [...nodeTs("bench/h2-client.ts"), JSON.stringify(spec)]];
  const result = JSON.parse(await run(command, args)) as LoadResult;
  const failed = Object.values(result.failed).reduce((a, b) => a + b, 0);
  return {
    perSecond: result.ok / result.seconds,
    p99Ms: result.p99Ms,
    failed,
    okTotal: result.okTotal,
    ...perCall(result.okTotal + failed),
  };
}

/** The current revision of a job, read through jobwatch. */
async function revisionOf(target: Target, jobId: string): Promise<number> {
  return (await target.client!.getJob(jobId)).revision;
}

/** What one fan-out run measured. */
interface FanOut {
  cpuUsPerDelivery: number;
  p99Ms: number;
  lost: number;
  received: number;
  /** Server CPU time over the run's wall time (from the first change until every delivery arrived): cores used. */
  cores: number;
  /** Streams that missed a status change (with statusChanges; jobwatch only: the bare server has none). */
  statusLost: number;
}

/** How a fan-out run changes its job. */
interface FanOutPlan {
  changes: number;
  intervalMs: number;
  /**
   * Half way through, a cancel request instead of a progress report, and CompleteJob after the last: each
   * stream must see running > running+cancel > completed+cancel and end OK (jobwatch targets).
   */
  statusChanges?: boolean;
}

/** WATCHERS streams on one job changed as `plan` says; server CPU per delivered change. */
async function fanOut(
  target: Target,
  plan: FanOutPlan = { changes: CHANGES, intervalMs: CHANGE_INTERVAL_MS },
): Promise<FanOut> {
  const jobId =
    target.name === "bare"
      ? "00000000-0000-4000-8000-000000000000"
      : (await target.client!.worker.createJob({ operationType: "bench_fan_out", username: "bench-user" })).jobId;
  if (target.client) await target.client.worker.startJob(jobId);
  const spec = { address: target.address, token: target.userToken, jobId, count: WATCHERS, connections: 20 };
  const watchers = await startChild<{ streams: number }>(
    PINNING?.load,
    nodeTs("bench/watchers.ts").concat(JSON.stringify(spec)),
  );
  type Report = { received: number; missed: number; p99Ms: number; sequences: Record<string, number>; endedOk: number };
  const ask = (): Promise<Report> =>
    new Promise((resolve) => {
      watchers.process.once("message", (m) => resolve(m as Report));
      watchers.process.send({ type: "report" });
    });
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${target.name}: ${WATCHERS} watches not open after 120 s`)),
        120_000,
      );
      watchers.process.once("message", (m: { type: string; message?: string }) => {
        clearTimeout(timer);
        if (m.type === "failed") reject(new Error(`${target.name}: ${m.message}`));
        else resolve();
      });
    });
    await sleep(500);
    const statuses = plan.statusChanges === true && target.client !== undefined;
    const cpuBefore = cpuMs(target.child.pid);
    const started = performance.now();
    for (let i = 1; i <= plan.changes; i++) {
      const next = started + i * plan.intervalMs;
      if (statuses && i === Math.ceil(plan.changes / 2)) await target.client!.cancelJob(jobId, { reason: "bench" });
      else if (statuses && i === plan.changes) await target.client!.worker.completeJob(jobId);
      else {
        await rawCall(
          target.address,
          REPORT_PATH,
          target.workerToken,
          ReportProgressRequest.encode({ jobId, progress: i % 100 }).finish(),
        );
      }
      // On a schedule, not a pause after each call: the rate stays what the plan says.
      await sleep(Math.max(0, next - performance.now()));
    }
    const expected = WATCHERS * plan.changes;
    let report = await ask();
    const done = (r: Report): boolean => (statuses ? r.endedOk >= WATCHERS : r.received + r.missed >= expected);
    for (let waited = 0; !done(report) && waited < 15_000; waited += 100) {
      await sleep(100);
      report = await ask();
    }
    const wallMs = performance.now() - started;
    const cpu = cpuMs(target.child.pid) - cpuBefore;
    return {
      cpuUsPerDelivery: (cpu * 1000) / Math.max(1, report.received),
      p99Ms: report.p99Ms,
      lost: expected - report.received,
      received: report.received,
      cores: cpu / wallMs,
      statusLost: statuses ? WATCHERS - (report.sequences["running > running+cancel > completed+cancel"] ?? 0) : 0,
    };
  } finally {
    await watchers.stop();
  }
}

/** Runs `measure` on each target in turn, ROUNDS times (bare, SQLite, MySQL, bare, ...). */
async function alternate<T>(targets: Target[], measure: (t: Target) => Promise<T>): Promise<Map<TargetName, T[]>> {
  const results = new Map<TargetName, T[]>(targets.map((t) => [t.name, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const t of targets) results.get(t.name)!.push(await measure(t));
  }
  return results;
}

const wanted = (what: string): boolean => ONLY === undefined || ONLY.includes(what);

// --- set up ---------------------------------------------------------------------------------------

console.error(
  `jobwatch bench${quick ? " --quick" : ""}: ${ROUNDS} alternated runs of ${DURATION_S} s per figure; load: ${H2LOAD ? "h2load" : "node:http2 clients"}; ` +
    (PINNING ? `servers on core ${PINNING.server}, load on core ${PINNING.load}` : "no taskset: nothing pinned"),
);
const jobwatch: Target[] = [await startJobwatch("sqlite")];
if (TEST_MYSQL_URL) jobwatch.push(await startJobwatch("mysql"));
const first = jobwatch[0]!;
const responsesFile = join(work, "responses.json");
writeFileSync(
  responsesFile,
  JSON.stringify({
    getJobDetails: (
      await rawCall(
        first.address,
        GET_PATH,
        first.userToken,
        GetJobDetailsRequest.encode({ jobId: first.getJobId }).finish(),
      )
    ).toString("base64"),
    reportProgress: (
      await rawCall(
        first.address,
        REPORT_PATH,
        first.workerToken,
        ReportProgressRequest.encode({ jobId: first.hotJobId, progress: 50 }).finish(),
      )
    ).toString("base64"),
  }),
);
const bareChild = await startChild<{ address: string }>(
  PINNING?.server,
  nodeTs("bench/bare-server.ts", PROFILE_DIR ? ["--cpu-prof", "--cpu-prof-dir", join(PROFILE_DIR, "bare")] : []).concat(
    responsesFile,
  ),
);
const bare: Target = {
  ...first,
  name: "bare",
  child: bareChild,
  address: bareChild.info.address,
};
delete bare.client;
delete bare.database;
const targets = [bare, ...jobwatch];

/** One row of the table: a figure per target and the goal beside it. */
interface Row {
  figure: string;
  values: Partial<Record<TargetName, string>>;
  goal: string;
  met: string;
}
const rows: Row[] = [];
/** Adds a row, and prints it at once on stderr: a long run that fails later still shows what it measured. */
const addRow = (row: Row): void => {
  rows.push(row);
  console.error(
    `${row.figure}: ${Object.entries(row.values)
      .map(([t, v]) => `${t} ${v}`)
      .join(", ")} (goal ${row.goal}: ${row.met})`,
  );
};
const notes: string[] = [];
const ratio = (value: number, base: number): string => `${(value / base).toFixed(2)}x`;
const k = (n: number): string => (n >= 10_000 ? `${(n / 1000).toFixed(1)}k` : n.toFixed(0));
const verdict = (ok: boolean[]): string => (ok.length === 0 ? "-" : ok.every(Boolean) ? "yes" : "NO");
/** verdict() of one result per jobwatch target, in their order; a split result names each database. */
const verdictByTarget = (ok: boolean[]): string => {
  if (ok.length !== jobwatch.length || ok.every(Boolean) || !ok.some(Boolean)) return verdict(ok);
  return jobwatch.map((t, i) => `${t.name === "sqlite" ? "SQLite" : "MySQL"} ${ok[i] ? "yes" : "NO"}`).join(", ");
};
/** CPU time per call of the server and (MySQL here) of the database server together, in us. */
const callCpuUs = (r: Load): number => (r.serverCpuUs ?? Number.NaN) + (r.databaseCpuUs ?? 0);
/** "; CPU per call: server X us, database server Y us" (medians of the runs), where measured. */
const cpuNote = (runs: Load[]): string => {
  const server = median(runs.map((r) => r.serverCpuUs ?? Number.NaN));
  const database = median(runs.map((r) => r.databaseCpuUs ?? Number.NaN));
  if (!Number.isFinite(server)) return "";
  return `; CPU per call: server ${server.toFixed(0)} us${Number.isFinite(database) ? `, database server ${database.toFixed(0)} us` : ""}`;
};

try {
  let bareGet = Number.NaN;
  if (wanted("get")) {
    const runs = await alternate(targets, (t) => load(t, GET_PATH, t.userToken, [getBody(t.getJobId)]));
    const rate = (n: TargetName): number => median((runs.get(n) ?? []).map((r) => r.perSecond));
    bareGet = rate("bare");
    const cpuOf = (n: TargetName): number => median((runs.get(n) ?? []).map(callCpuUs));
    const values: Row["values"] = { bare: `${k(bareGet)}/s, ${cpuOf("bare").toFixed(0)} us/call` };
    const ok: boolean[] = [];
    for (const t of jobwatch) {
      const r = rate(t.name);
      values[t.name] = `${k(r)}/s (${ratio(r, bareGet)}), ${cpuOf(t.name).toFixed(0)} us/call`;
      ok.push(r / bareGet >= (t.name === "sqlite" ? 0.85 : 0.6));
    }
    addRow({
      figure: "GetJobDetails, own job, 100 in flight",
      values,
      goal: ">= 0.85x SQLite, >= 0.6x MySQL",
      met: verdictByTarget(ok),
    });
    for (const [name, r] of runs)
      notes.push(`GetJobDetails ${name}: calls/s of each run ${spread(r.map((x) => x.perSecond))}${cpuNote(r)}`);
    const failed = [...runs.values()].flat().reduce((a, r) => a + r.failed, 0);
    if (failed > 0) notes.push(`GetJobDetails: ${failed} calls failed at the HTTP/2 level`);
  }

  if (wanted("getdistinct")) {
    // A body per stream slot, so node:http2 clients for every target (bare too): the figure is CPU per
    // call, which does not depend on how fast the load can go, and is steadier than a rate on a shared machine.
    const runs = await alternate(targets, (t) => load(t, GET_PATH, t.userToken, t.distinctJobIds.map(getBody)));
    const cpu = (n: TargetName): number => median((runs.get(n) ?? []).map(callCpuUs));
    const rate = (n: TargetName): number => median((runs.get(n) ?? []).map((r) => r.perSecond));
    const base = cpu("bare");
    const values: Row["values"] = { bare: `${base.toFixed(0)} us (${k(rate("bare"))}/s)` };
    const ok: boolean[] = [];
    for (const t of jobwatch) {
      values[t.name] = `${cpu(t.name).toFixed(0)} us (${k(rate(t.name))}/s): ${ratio(base, cpu(t.name))}`;
      ok.push(base / cpu(t.name) >= (t.name === "sqlite" ? 0.8 : 0.6));
    }
    addRow({
      figure: `GetJobDetails, ${DISTINCT_JOBS} distinct jobs, 100 in flight: CPU per call (bare's / jobwatch's, database's included)`,
      values,
      goal: ">= 0.8x SQLite, >= 0.6x MySQL",
      met: verdictByTarget(ok),
    });
    for (const [name, r] of runs)
      notes.push(
        `GetJobDetails distinct jobs ${name}: calls/s of each run ${spread(r.map((x) => x.perSecond))}${cpuNote(r)}`,
      );
    const failed = [...runs.values()].flat().reduce((a, r) => a + r.failed, 0);
    if (failed > 0) notes.push(`GetJobDetails distinct jobs: ${failed} calls did not end OK`);
  }

  if (wanted("p99") && Number.isFinite(bareGet)) {
    const rps = bareGet / 2;
    const runs = await alternate(targets, (t) => load(t, GET_PATH, t.userToken, [getBody(t.getJobId)], { rps }));
    const p99 = (n: TargetName): number => median((runs.get(n) ?? []).map((r) => r.p99Ms));
    const base = p99("bare");
    const values: Row["values"] = { bare: `${base.toFixed(1)} ms` };
    const ok: boolean[] = [];
    for (const t of jobwatch) {
      values[t.name] = `${p99(t.name).toFixed(1)} ms (${ratio(p99(t.name), base)})`;
      ok.push(p99(t.name) / base <= 1.5);
    }
    addRow({
      figure: `GetJobDetails p99 at ${k(rps)} calls/s (half of bare)`,
      values,
      goal: "<= 1.5x bare's p99",
      met: verdictByTarget(ok),
    });
  }

  if (wanted("distinct")) {
    // A body per stream slot (h2load sends one body), so this load always runs on node:http2 clients.
    const runs = await alternate(targets, (t) => load(t, REPORT_PATH, t.workerToken, t.distinctJobIds.map(reportBody)));
    const rate = (n: TargetName): number => median((runs.get(n) ?? []).map((r) => r.perSecond));
    const base = rate("bare");
    const cpu = (n: TargetName): number => median((runs.get(n) ?? []).map(callCpuUs));
    const values: Row["values"] = { bare: `${k(base)}/s, ${cpu("bare").toFixed(0)} us/call` };
    const ok: boolean[] = [];
    for (const t of jobwatch) {
      values[t.name] = `${k(rate(t.name))}/s (${ratio(rate(t.name), base)}), ${cpu(t.name).toFixed(0)} us/call`;
      ok.push(rate(t.name) / base >= (t.name === "sqlite" ? 0.5 : 0.25));
    }
    addRow({
      figure: `ReportProgress, ${DISTINCT_JOBS} distinct jobs`,
      values,
      goal: ">= 0.5x SQLite, >= 0.25x MySQL",
      met: verdictByTarget(ok),
    });
    const failed = [...runs.values()].flat().reduce((a, r) => a + r.failed, 0);
    if (failed > 0) notes.push(`ReportProgress distinct jobs: ${failed} calls did not end OK`);
    for (const [name, r] of runs) notes.push(`ReportProgress distinct jobs ${name}${cpuNote(r)}`);
  }

  if (wanted("hot")) {
    const distinct: string[] = [];
    let sameRevisions = true;
    const runs = await alternate(targets, async (t) => {
      const before = t.client ? await revisionOf(t, t.hotJobId) : 0;
      // node:http2 clients, which see each call's grpc-status: h2load counts an HTTP 200 as a success.
      const result = await load(t, REPORT_PATH, t.workerToken, [reportBody(t.hotJobId)], { node: true });
      if (t.client) {
        // Every call that ended OK (warm-up included) must have made exactly one new revision.
        const made = (await revisionOf(t, t.hotJobId)) - before;
        distinct.push(`${t.name} ${result.okTotal} OK / ${made} revisions`);
        if (made !== result.okTotal) sameRevisions = false;
      }
      return result;
    });
    const rate = (n: TargetName): number => median((runs.get(n) ?? []).map((r) => r.perSecond));
    const values: Row["values"] = { bare: `${k(rate("bare"))}/s` };
    const ok: boolean[] = [];
    for (const t of jobwatch) {
      values[t.name] = `${k(rate(t.name))}/s`;
      if (t.name === "mysql") ok.push(rate(t.name) >= 1000);
    }
    const failed = [...runs.entries()]
      .filter(([n]) => n !== "bare")
      .flatMap(([, r]) => r)
      .reduce((a, r) => a + r.failed, 0);
    addRow({
      figure: `ReportProgress, one hot job, ${DISTINCT_JOBS} in flight`,
      values,
      goal: ">= 1,000/s MySQL, each OK a new revision",
      met: verdict([...ok, sameRevisions]),
    });
    notes.push(`hot job: ${failed} calls not OK; per run: ${distinct.join(", ")}`);
  }

  if (wanted("fanout")) {
    const runs = await alternate(targets, fanOut);
    const cpu = (n: TargetName): number => median((runs.get(n) ?? []).map((r) => r.cpuUsPerDelivery));
    const p99 = (n: TargetName): number => median((runs.get(n) ?? []).map((r) => r.p99Ms));
    const lost = (n: TargetName): number => Math.max(...(runs.get(n) ?? []).map((r) => r.lost));
    const base = cpu("bare");
    const cpuValues: Row["values"] = { bare: `${base.toFixed(1)} us` };
    const p99Values: Row["values"] = { bare: `${p99("bare").toFixed(0)} ms` };
    const lostValues: Row["values"] = { bare: String(lost("bare")) };
    const okCpu: boolean[] = [];
    const okP99: boolean[] = [];
    const okLost: boolean[] = [];
    for (const t of jobwatch) {
      cpuValues[t.name] = `${cpu(t.name).toFixed(1)} us (${ratio(cpu(t.name), base)})`;
      p99Values[t.name] = `${p99(t.name).toFixed(0)} ms`;
      lostValues[t.name] = String(lost(t.name));
      okCpu.push(cpu(t.name) / base <= 1.3);
      okP99.push(p99(t.name) <= 250);
      okLost.push(lost(t.name) === 0);
    }
    const what = `WatchJob fan-out, ${WATCHERS} watchers, ${CHANGES} changes`;
    addRow({
      figure: `${what}: server CPU per delivery`,
      values: cpuValues,
      goal: "<= 1.3x bare",
      met: verdictByTarget(okCpu),
    });
    addRow({ figure: `${what}: p99 delivery`, values: p99Values, goal: "<= 250 ms", met: verdictByTarget(okP99) });
    addRow({
      figure: `${what}: deliveries lost (worst run)`,
      values: lostValues,
      goal: "0",
      met: verdictByTarget(okLost),
    });
  }

  if (wanted("rate")) {
    // 10 updates/s for RATE_SECONDS to every watcher: one core must keep up, and no status change be lost.
    const plan: FanOutPlan = { changes: 10 * RATE_SECONDS, intervalMs: 100, statusChanges: true };
    const runs = await alternate(targets, (t) => fanOut(t, plan));
    const cores = (n: TargetName): number => median((runs.get(n) ?? []).map((r) => r.cores));
    const p99 = (n: TargetName): number => median((runs.get(n) ?? []).map((r) => r.p99Ms));
    const statusLost = (n: TargetName): number => Math.max(...(runs.get(n) ?? []).map((r) => r.statusLost));
    const coreValues: Row["values"] = { bare: `${cores("bare").toFixed(2)} cores, p99 ${p99("bare").toFixed(0)} ms` };
    const lostValues: Row["values"] = { bare: "(no status changes)" };
    const okCores: boolean[] = [];
    const okLost: boolean[] = [];
    for (const t of jobwatch) {
      coreValues[t.name] = `${cores(t.name).toFixed(2)} cores, p99 ${p99(t.name).toFixed(0)} ms`;
      lostValues[t.name] = String(statusLost(t.name));
      okCores.push(cores(t.name) < 1);
      okLost.push(statusLost(t.name) === 0);
    }
    const what = `WatchJob, 10 updates/s for ${RATE_SECONDS} s to ${WATCHERS} watchers`;
    addRow({
      figure: `${what}: server CPU`,
      values: coreValues,
      goal: "under one core",
      met: verdictByTarget(okCores),
    });
    addRow({
      figure: `${what}: streams that missed a status change (worst run)`,
      values: lostValues,
      goal: "0",
      met: verdictByTarget(okLost),
    });
  }

  if (wanted("peer")) {
    const peer = await peerBench(
      { ...first, pid: first.child.pid, client: first.client! },
      {
        rounds: quick ? 1 : 2,
        durationS: DURATION_S,
        listeners: quick ? [1000, 2000] : [1000, 10_000],
        changes: CHANGES,
        intervalMs: CHANGE_INTERVAL_MS,
      },
    );
    notes.push("", ...peer);
  }
} finally {
  for (const t of targets) {
    t.client?.close();
    await t.child.stop();
  }
  for (const t of jobwatch) await t.database?.drop();
}

if (wanted("queries")) {
  const figures = new Map<TargetName, QueryFigures>();
  for (const t of jobwatch) figures.set(t.name, await queryBench(t.name as "sqlite" | "mysql", JOBS, work));
  const statsValues: Row["values"] = {};
  const listValues: Row["values"] = {};
  const okStats: boolean[] = [];
  const okList: boolean[] = [];
  for (const [name, f] of figures) {
    statsValues[name] = `${f.statisticsMs.toFixed(2)} ms`;
    const worst = Object.entries(f.listMs).sort((a, b) => b[1] - a[1])[0]!;
    listValues[name] = `${worst[1].toFixed(2)} ms`;
    okStats.push(f.statisticsMs <= 10);
    okList.push(worst[1] <= 5);
    notes.push(`ListJobs on ${name}, slowest filter combination: ${worst[0]}`);
    for (const [what, ms] of Object.entries(f.listMs)) notes.push(`  ${name} ListJobs ${what}: ${ms.toFixed(2)} ms`);
    notes.push(`  ${name} GetJobStatistics one user: ${f.statisticsUserMs.toFixed(2)} ms`);
    notes.push(
      `  ${name} GetJobStatistics all, with durations by operation type: ${f.statisticsTypedMs.toFixed(2)} ms`,
    );
  }
  addRow({
    figure: `GetJobStatistics, all jobs, ${k(JOBS)} jobs (median)`,
    values: statsValues,
    goal: "<= 10 ms",
    met: verdictByTarget(okStats),
  });
  addRow({
    figure: `ListJobs, slowest filter combination, ${k(JOBS)} jobs`,
    values: listValues,
    goal: "<= 5 ms",
    met: verdictByTarget(okList),
  });
}
rmSync(work, { recursive: true, force: true });

const columns: TargetName[] = TEST_MYSQL_URL ? ["bare", "sqlite", "mysql"] : ["bare", "sqlite"];
const header = [
  "figure",
  ...columns.map((c) => (c === "bare" ? "bare grpc-js" : `jobwatch ${c === "sqlite" ? "SQLite" : "MySQL"}`)),
  "goal",
  "met",
];
console.log(`| ${header.join(" | ")} |`);
console.log(`|${header.map(() => "---").join("|")}|`);
for (const row of rows) {
  console.log(`| ${[row.figure, ...columns.map((c) => row.values[c] ?? ""), row.goal, row.met].join(" | ")} |`);
}
for (const note of notes) console.log(note);
