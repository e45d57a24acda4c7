// The client commands as a user runs them: the real CLI spawned against a real server, output and exit codes.
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer as createNetServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { ExitCode } from "../src/cli/exit-codes.js";
import { createClient, JobStatus, type JobwatchClient, UnavailableError } from "../src/client/index.js";
import { cli as runCli, start as startCli } from "./helpers/cli.js";
import { startTestServer, type TestServer } from "./helpers/server.js";

/** The CLI with these environment variables. */
const start = (args: string[], env: Record<string, string | undefined> = {}) => startCli(args, { env });
const cli = (args: string[], env: Record<string, string | undefined> = {}) => runCli(args, { env });

/** The `#rev STATUS` pairs of watch's line output, checked to be strictly increasing (no duplicate). */
function watchLines(stdout: string): { revision: number; status: string }[] {
  const lines = [...stdout.matchAll(/^\S+Z\s+#(\d+)\s+([A-Z]+)/gm)].map((m) => ({
    revision: Number(m[1]),
    status: m[2]!,
  }));
  for (let i = 1; i < lines.length; i++) {
    assert.ok(
      lines[i]!.revision > lines[i - 1]!.revision,
      `revision ${lines[i]!.revision} printed after ${lines[i - 1]!.revision}`,
    );
  }
  return lines;
}

/** The distinct statuses in the order printed. */
function statuses(stdout: string): string[] {
  return watchLines(stdout)
    .map((l) => l.status)
    .filter((s, i, all) => s !== all[i - 1]);
}

async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe("jobwatch client commands", () => {
  let server: TestServer;
  let worker: JobwatchClient;
  let alice: JobwatchClient;
  let as: (token: string) => Record<string, string>;

  before(async () => {
    server = await startTestServer();
    worker = createClient({ address: server.address, token: server.tokens.worker });
    alice = createClient({ address: server.address, token: server.tokens.alice });
    as = (token) => ({ JOBWATCH_ADDRESS: server.address, JOBWATCH_TOKEN: token });
  });

  after(async () => {
    worker.close();
    alice.close();
    await server.stop();
  });

  test("get prints a readable summary, and --json the protobuf JSON mapping", async () => {
    const job = await worker.worker.createJob({
      operationType: "add_golden_repo",
      username: "alice",
      resource: "repo-get",
    });
    await worker.worker.startJob(job.jobId);
    await worker.worker.reportProgress(job.jobId, 40, { phase: "semantic", detail: "200/500 files indexed" });

    const text = await cli(["get", job.jobId], as(server.tokens.alice));
    assert.equal(text.code, ExitCode.OK, text.stderr);
    assert.match(text.stdout, new RegExp(`Job ${job.jobId}`));
    assert.match(text.stdout, /Status\s+RUNNING/);
    assert.match(text.stdout, /Progress\s+40%\s+semantic: 200\/500 files indexed/);
    assert.match(text.stdout, /Operation\s+add_golden_repo\s+on repo-get/);
    assert.match(text.stdout, /Owner\s+alice/);
    // The server's estimate with its basis (40% at once: its rate alone).
    assert.match(text.stdout, /Estimate\s+ETA \d\d:\d\d:\d\d \(in [^,)]+, from progress rate\)/);

    const json = await cli(["get", job.jobId, "--json"], as(server.tokens.alice));
    assert.equal(json.code, ExitCode.OK, json.stderr);
    const parsed = JSON.parse(json.stdout) as Record<string, unknown>;
    assert.equal(parsed["jobId"], job.jobId);
    assert.equal(parsed["status"], "JOB_STATUS_RUNNING");
    assert.equal(parsed["progress"], 40);
    assert.equal(parsed["phase"], "semantic");
    assert.equal(parsed["revision"], "3", "int64 is a string in the proto3 JSON mapping");
    assert.match(String(parsed["createdAt"]), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
    assert.equal(parsed["estimateBasis"], "ESTIMATE_BASIS_PROGRESS_RATE");
    assert.match(String(parsed["estimatedCompletionAt"]), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
    await worker.worker.completeJob(job.jobId, { files: 500 });
    const done = await cli(["get", job.jobId], as(server.tokens.alice));
    assert.doesNotMatch(done.stdout, /Estimate|ETA/, "a finished job has no estimate");
  });

  for (const outcome of ["COMPLETED", "FAILED", "CANCELLED"] as const) {
    test(`watch follows a job to ${outcome}, one line per change, and exits with its code`, async () => {
      const job = await worker.worker.createJob({ operationType: "refresh_golden_repo", username: "alice" });
      const watch = start(["watch", job.jobId], as(server.tokens.alice));
      await watch.waitFor(/#1\s+PENDING/);
      await worker.worker.startJob(job.jobId);
      await worker.worker.reportProgress(job.jobId, 50, { phase: "fts", detail: "250/500 files indexed" });
      // A progress-only change may be coalesced into the next one for a slow reader: let it arrive first.
      await watch.waitFor(/50%\s+fts: 250\/500 files indexed/);
      if (outcome === "COMPLETED") await worker.worker.completeJob(job.jobId, { files: 500 });
      if (outcome === "FAILED") await worker.worker.failJob(job.jobId, "disk full on /var/lib/index");
      if (outcome === "CANCELLED") {
        await alice.cancelJob(job.jobId, { reason: "superseded" });
        await worker.worker.markCancelled(job.jobId);
      }
      const code = await watch.exited;
      const expected = { COMPLETED: ExitCode.OK, FAILED: ExitCode.FAILED, CANCELLED: ExitCode.CANCELLED }[outcome];
      assert.equal(code, expected, watch.stderr);
      assert.deepEqual(statuses(watch.stdout), ["PENDING", "RUNNING", outcome]);
      assert.match(watch.stdout, /50%\s+fts: 250\/500 files indexed/);
      assert.match(watch.stdout, new RegExp(`job ${job.jobId} ${outcome}`));
      if (outcome === "COMPLETED") assert.match(watch.stdout, /result: \{"files":500\}/);
      if (outcome === "FAILED") assert.match(watch.stdout, /error: disk full on \/var\/lib\/index/);
      if (outcome === "CANCELLED") assert.match(watch.stdout, /cancel requested: superseded/);
    });
  }

  test("a job that is not found (or another user's) exits 4 and says it may have expired", async () => {
    const bobs = await worker.worker.createJob({ operationType: "op", username: "bob" });
    for (const id of ["6f1c2d3e-0000-4000-8000-000000000000", bobs.jobId]) {
      const run = await cli(["watch", id], as(server.tokens.alice));
      assert.equal(run.code, ExitCode.NOT_FOUND_OR_DENIED);
      assert.match(run.stderr, new RegExp(`job ${id} was not found: it may have expired`));
      assert.doesNotMatch(run.stderr, /\n\s+at /, "no stack trace");
    }
  });

  test("an unreachable server exits 5 and names the address", async () => {
    const run = await cli(["watch", "6f1c2d3e-0000-4000-8000-000000000000"], {
      JOBWATCH_ADDRESS: "127.0.0.1:1",
      JOBWATCH_TOKEN: server.tokens.alice,
    });
    assert.equal(run.code, ExitCode.UNREACHABLE_OR_TIMEOUT);
    assert.match(run.stderr, /cannot reach the jobwatch server at 127\.0\.0\.1:1/);
    assert.doesNotMatch(run.stderr, /\n\s+at /, "no stack trace");
  });

  test("watch --timeout exits 5 and says where the job was", async () => {
    const job = await worker.worker.createJob({ operationType: "op", username: "alice" });
    const run = await cli(["watch", job.jobId, "--timeout", "1s"], as(server.tokens.alice));
    assert.equal(run.code, ExitCode.UNREACHABLE_OR_TIMEOUT);
    assert.match(run.stderr, /gave up after 1\.0s \(--timeout\): job \S+ is still PENDING/);
    await worker.worker.failJob(job.jobId, "cleanup");
  });

  test("a rejected token exits 4 and says how to make one", async () => {
    const malformed = await cli(["get", "6f1c2d3e-0000-4000-8000-000000000000"], as("jw_000000000000_notarealsecret"));
    assert.equal(malformed.code, ExitCode.NOT_FOUND_OR_DENIED);
    assert.match(malformed.stderr, /rejected the token: malformed token: a jobwatch token looks like/);
    assert.doesNotMatch(malformed.stderr, /mistyped/, "the server's reason, not a guess beside it");
    // A well-formed token the server does not know: alice's with its last character changed.
    const alice = server.tokens.alice;
    const unknown = `${alice.slice(0, -1)}${alice.endsWith("A") ? "B" : "A"}`;
    const run = await cli(["get", "6f1c2d3e-0000-4000-8000-000000000000"], as(unknown));
    assert.equal(run.code, ExitCode.NOT_FOUND_OR_DENIED);
    // The reason said once, not "(token rejected: unknown or revoked): it is unknown, revoked or mistyped".
    assert.match(run.stderr, /rejected the token: it is unknown, revoked or mistyped\. Create one/);
    assert.doesNotMatch(run.stderr, /token rejected: unknown or revoked/);
    assert.match(run.stderr, /jobwatch token create --user NAME --role ROLE/);
  });

  test("a shell script can be a worker: job create/start/progress, a cancel request exits 3, job cancelled", async () => {
    const env = as(server.tokens.worker);
    const created = await cli(
      ["job", "create", "--operation", "add_golden_repo", "--user", "alice", "--resource", "sh-repo"],
      env,
    );
    assert.equal(created.code, ExitCode.OK, created.stderr);
    const id = created.stdout.trim();
    assert.match(id, /^[0-9a-f-]{36}$/);
    assert.equal((await cli(["job", "start", id], env)).code, ExitCode.OK);
    const progress = await cli(
      ["job", "progress", id, "30", "--phase", "semantic", "--detail", "150/500 files indexed"],
      env,
    );
    assert.equal(progress.code, ExitCode.OK, progress.stderr);
    assert.match(progress.stdout, /RUNNING 30%\s+semantic: 150\/500 files indexed/);

    const cancel = await cli(["cancel", id, "--reason", "wrong branch"], as(server.tokens.alice));
    assert.equal(cancel.code, ExitCode.OK, cancel.stderr);
    assert.match(cancel.stdout, /cancel requested/);

    const next = await cli(["job", "progress", id, "40"], env);
    assert.equal(next.code, ExitCode.CANCELLED);
    assert.match(next.stderr, /cancel requested \(wrong branch\): stop the work and run `jobwatch job cancelled/);
    assert.equal((await cli(["job", "cancelled", id], env)).code, ExitCode.OK);

    const job = await alice.getJob(id);
    assert.equal(job.status, JobStatus.JOB_STATUS_CANCELLED);
    const late = await cli(["job", "complete", id], env);
    assert.equal(late.code, ExitCode.ERROR);
    assert.match(late.stderr, /CANCELLED/);
  });

  test("help: --status says 'any status' (not '[]'); get --history says its revisions skip", async () => {
    for (const command of ["list", "top"]) {
      const help = await cli(["help", command]);
      assert.equal(help.code, 0, help.stderr);
      assert.match(help.stdout, /\(default: any status\)/);
      assert.doesNotMatch(help.stdout, /default: \[\]/);
    }
    const get = await cli(["help", "get"]);
    assert.match(
      get.stdout.replace(/\s+/g, " "),
      /progress and detail within one phase at most once a second .*revision numbers skip/,
    );
  });

  test("list: a pending cancel shows while the job runs, not once it ended CANCELLED", async () => {
    const job = await worker.worker.createJob({ operationType: "list_cancel_op", username: "alice" });
    await worker.worker.startJob(job.jobId);
    await worker.worker.reportProgress(job.jobId, 23, { phase: "clone" });
    await alice.cancelJob(job.jobId, { reason: "superseded" });
    const running = await cli(["list", "--operation", "list_cancel_op"], as(server.tokens.alice));
    assert.match(running.stdout, new RegExp(`${job.jobId}\\s+RUNNING\\s+23% \\(cancel requested\\)`));
    await worker.worker.markCancelled(job.jobId);
    const ended = await cli(["list", "--operation", "list_cancel_op"], as(server.tokens.alice));
    assert.match(ended.stdout, new RegExp(`${job.jobId}\\s+CANCELLED\\s+23%\\s+list_cancel_op`));
    assert.doesNotMatch(ended.stdout, /cancel requested/);
  });

  test("list and stats print tables, and JSON with --json", async () => {
    const job = await worker.worker.createJob({ operationType: "list_cli_op", username: "alice" });
    const table = await cli(["list", "--operation", "list_cli_op"], as(server.tokens.alice));
    assert.equal(table.code, ExitCode.OK, table.stderr);
    assert.match(table.stdout, /^JOB ID\s+STATUS\s+PROGRESS\s+OPERATION/m);
    assert.match(table.stdout, new RegExp(`${job.jobId}\\s+PENDING\\s+0%\\s+list_cli_op`));
    const json = await cli(["list", "--status", "pending", "--json"], as(server.tokens.alice));
    const listed = JSON.parse(json.stdout) as { jobs: { jobId: string }[] };
    assert.ok(listed.jobs.some((j) => j.jobId === job.jobId));
    // A status named twice (a shell alias plus a typed flag) is the same filter, not a refused request.
    const twice = await cli(
      ["list", "--status", "pending,running", "--status", "pending", "--operation", "list_cli_op"],
      as(server.tokens.alice),
    );
    assert.equal(twice.code, ExitCode.OK, twice.stderr);
    assert.match(twice.stdout, new RegExp(job.jobId));
    const every = await cli(
      ["list", "--status", "running,pending,running,failed,completed,cancelled"],
      as(server.tokens.alice),
    );
    assert.equal(every.code, ExitCode.OK, every.stderr);
    const stats = await cli(["stats", "--json"], as(server.tokens.alice));
    assert.equal(stats.code, ExitCode.OK, stats.stderr);
    assert.ok(Number((JSON.parse(stats.stdout) as { total: number | string }).total) >= 1);
    await worker.worker.failJob(job.jobId, "cleanup");
    // The finished job's type in the per-operation durations of the window.
    const text = await cli(["stats"], as(server.tokens.alice));
    assert.equal(text.code, ExitCode.OK, text.stderr);
    assert.match(text.stdout, /^OPERATION\s+FINISHED\s+P50\s+P95$/m);
    assert.match(text.stdout, /^list_cli_op\s+1\s+\S+\s+\S+$/m);
  });

  test("--all means every user's jobs in list, stats and top alike; without it an admin gets its own", async () => {
    const op = "scope_cli_op";
    const bobs = await worker.worker.createJob({ operationType: op, username: "bob" });
    const admins = await worker.worker.createJob({ operationType: op, username: "admin" });
    const listed = async (args: string[]) => {
      const run = await cli(["list", "--operation", op, "--json", ...args], as(server.tokens.admin));
      assert.equal(run.code, ExitCode.OK, run.stderr);
      return (JSON.parse(run.stdout) as { jobs: { jobId: string }[] }).jobs.map((j) => j.jobId).sort();
    };
    assert.deepEqual(await listed([]), [admins.jobId]);
    assert.deepEqual(await listed(["--all"]), [admins.jobId, bobs.jobId].sort());
    assert.deepEqual(await listed(["--user", "bob"]), [bobs.jobId]);
    // Every page is --all-pages now; --all with --user is a usage error, before any call.
    assert.deepEqual(await listed(["--all-pages", "--all"]), [admins.jobId, bobs.jobId].sort());
    const both = await cli(["list", "--all", "--user", "bob"], as(server.tokens.admin));
    assert.equal(both.code, 1);
    assert.match(both.stderr, /--all.*cannot be used with.*--user/);
    const counted = async (args: string[]) => {
      const run = await cli(["stats", "--json", ...args], as(server.tokens.admin));
      assert.equal(run.code, ExitCode.OK, run.stderr);
      return Number((JSON.parse(run.stdout) as { byOperationType: Record<string, string> }).byOperationType[op] ?? 0);
    };
    assert.equal(await counted([]), 1);
    assert.equal(await counted(["--all"]), 2);
    for (const command of [["list"], ["stats"]]) {
      const refused = await cli([...command, "--all"], as(server.tokens.alice));
      assert.equal(refused.code, ExitCode.NOT_FOUND_OR_DENIED, refused.stderr);
      assert.match(refused.stderr, /every user's jobs \(all_users\) needs permission 'manage_jobs'/);
      assert.match(
        refused.stderr,
        /Only an admin token reads another user's jobs \(--user\) or every user's \(--all\)/,
      );
      assert.doesNotMatch(refused.stderr, /leave username empty/);
    }
    await worker.worker.failJob(bobs.jobId, "cleanup");
    await worker.worker.failJob(admins.jobId, "cleanup");
  });

  test("not found: an admin is not told the job may be another user's; a user is", async () => {
    const missing = "3f0e2c1a-9b7d-4c2e-8f1a-2b3c4d5e6f70";
    for (const command of [
      ["get", missing],
      ["watch", missing],
      ["cancel", missing],
    ]) {
      const admin = await cli(command, as(server.tokens.admin));
      assert.equal(admin.code, ExitCode.NOT_FOUND_OR_DENIED, admin.stderr);
      assert.match(admin.stderr, new RegExp(`job ${missing} was not found: it may have expired`));
      assert.doesNotMatch(admin.stderr, /another user/);
      const user = await cli(command, as(server.tokens.alice));
      assert.equal(user.code, ExitCode.NOT_FOUND_OR_DENIED, user.stderr);
      assert.match(user.stderr, /or it belongs to another user \(your token only sees its own user's jobs\)/);
    }
  });

  test("client commands and --version load no server, store, auth or database code", async () => {
    const job = await worker.worker.createJob({ operationType: "add_golden_repo", username: "alice" });
    await worker.worker.failJob(job.jobId, "disk full");
    const dir = await mkdtemp(join(tmpdir(), "jobwatch-trace-"));
    const hook = new URL("./helpers/trace-imports.mjs", import.meta.url).href;
    // What only the server side needs: our server/store/auth code, the composition root, drivers, the logger.
    const serverSide =
      /\/(src|dist)\/(server|store|auth)\/|\/(src|dist)\/main\.[jt]s$|node_modules\/(kysely|better-sqlite3|mysql2|pino)\//;
    try {
      for (const args of [
        ["--version"],
        ["get", job.jobId],
        ["watch", job.jobId],
        ["list"],
        ["stats"],
        ["mcp", "--help"],
      ]) {
        const trace = join(dir, `${args[0]}.txt`);
        const run = await runCli(args, {
          env: { ...as(server.tokens.alice), JOBWATCH_TRACE_IMPORTS: trace },
          nodeArgs: ["--import", hook],
        });
        assert.ok(run.code === ExitCode.OK || run.code === ExitCode.FAILED, `${args.join(" ")}: ${run.stderr}`);
        const loaded = (await readFile(trace, "utf8")).split("\n").filter((url) => url !== "");
        assert.ok(
          loaded.some((url) => /\/cli\/main\.[jt]s$/.test(url)),
          `the trace of ${args[0]} saw the CLI load`,
        );
        assert.deepEqual(
          loaded.filter((url) => serverSide.test(url)),
          [],
          `jobwatch ${args.join(" ")} loads only client code`,
        );
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("get loads neither protobuf's reflection runtime nor OpenTelemetry unless --json or OTEL_*; --json one copy", async () => {
    const job = await worker.worker.createJob({ operationType: "add_golden_repo", username: "alice" });
    const dir = await mkdtemp(join(tmpdir(), "jobwatch-trace-"));
    const hook = new URL("./helpers/trace-imports.mjs", import.meta.url).href;
    const loads = async (args: string[]): Promise<string[]> => {
      const trace = join(dir, `${args.join("-")}.txt`);
      const run = await runCli(args, {
        env: { ...as(server.tokens.alice), JOBWATCH_TRACE_IMPORTS: trace, OTEL_EXPORTER_OTLP_ENDPOINT: undefined },
        nodeArgs: ["--import", hook],
      });
      assert.equal(run.code, ExitCode.OK, `${args.join(" ")}: ${run.stderr}`);
      return (await readFile(trace, "utf8")).split("\n").filter((url) => url !== "");
    };
    // The reflection runtime (registries, JSON) beside the wire format that the generated code imports.
    const registry = /node_modules\/@bufbuild\/protobuf\/dist\/(esm|cjs)\/registry\.js$/;
    try {
      const plain = await loads(["get", job.jobId]);
      assert.deepEqual(
        plain.filter((url) => registry.test(url) || /@opentelemetry\//.test(url)),
        [],
      );
      const json = await loads(["get", job.jobId, "--json"]);
      assert.deepEqual(
        [
          ...new Set(
            json
              .filter((url) => /node_modules\/@bufbuild\/protobuf\//.test(url))
              .map((url) => /dist\/(esm|cjs)\//.exec(url)?.[1]),
          ),
        ],
        ["esm"],
        "one copy of @bufbuild/protobuf: the ES module build the generated code imports",
      );
      assert.equal(json.filter((url) => registry.test(url)).length > 0, true, "--json reads the contract's registry");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("demo drives a job through its phases while watch follows it to COMPLETED", async () => {
    // --delay 3s: time for the watcher's process to start before the job does, on a loaded machine too (at load
    // average 25, 1 s was not always enough and the watcher saw only the end).
    const demo = start(["demo", "--duration", "3s", "--delay", "3s", "--user", "alice"], as(server.tokens.admin));
    // Run in the checkout (no jobwatch on PATH): the command it prints is one that works there.
    await demo.waitFor(/ {2}npx jobwatch watch [0-9a-f-]{36}/);
    const id = /jobwatch watch ([0-9a-f-]{36})/.exec(demo.stdout)![1]!;
    const watch = start(["watch", id], as(server.tokens.alice));
    const [demoCode, watchCode] = await Promise.all([demo.exited, watch.exited]);
    assert.equal(demoCode, ExitCode.OK, demo.stderr);
    assert.equal(watchCode, ExitCode.OK, watch.stderr);
    assert.equal(statuses(watch.stdout).at(-1), "COMPLETED");
    assert.match(watch.stdout, /fts: \d+\/500 files indexed|finalize/);
    assert.match(demo.stdout, new RegExp(`job ${id} COMPLETED`));
  });

  test("watch survives the server being killed and restarted: right end, no duplicate or missing change", async () => {
    const port = await freePort();
    const address = `127.0.0.1:${port}`;
    const serveEnv = {
      JOBWATCH_DATABASE_URL: server.database.url,
      JOBWATCH_LISTEN: address,
      JOBWATCH_WATCH_POLL_MS: "50",
      JOBWATCH_LOG_LEVEL: "warn",
    };
    const probe = createClient({ address, token: server.tokens.alice, retry: { maxAttempts: 1 } });
    const ready = async (): Promise<void> => {
      for (;;) {
        try {
          await probe.listJobs({ pageSize: 1 });
          return;
        } catch (err) {
          if (!(err instanceof UnavailableError)) throw err;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    };
    let serve = start(["serve"], serveEnv);
    try {
      await ready();
      const job = await worker.worker.createJob({ operationType: "add_golden_repo", username: "alice" });
      const watch = start(["watch", job.jobId], { JOBWATCH_ADDRESS: address, JOBWATCH_TOKEN: server.tokens.alice });
      await watch.waitFor(/#1\s+PENDING/);

      serve.child.kill("SIGKILL");
      await serve.exited;
      // While the server the watch talks to is dead, the job moves on through another server on the
      // same database: a status transition and progress the watch must not miss.
      await worker.worker.startJob(job.jobId);
      await worker.worker.reportProgress(job.jobId, 30, { phase: "semantic" });
      await worker.worker.reportProgress(job.jobId, 60, { phase: "fts" });

      serve = start(["serve"], serveEnv);
      await watch.waitFor(/60%\s+fts/);
      await worker.worker.completeJob(job.jobId, { files: 500 });
      const code = await watch.exited;

      assert.equal(code, ExitCode.OK, watch.stderr);
      assert.match(watch.stderr, new RegExp(`connection to ${address} lost .*retrying`));
      assert.deepEqual(statuses(watch.stdout), ["PENDING", "RUNNING", "COMPLETED"]);
      const revisions = watchLines(watch.stdout).map((l) => l.revision);
      assert.ok(revisions.includes(2), `the RUNNING transition (revision 2) is printed: ${revisions.join(",")}`);
      assert.equal(revisions.at(-1), (await alice.getJob(job.jobId)).revision);
      assert.match(watch.stdout, new RegExp(`job ${job.jobId} COMPLETED`));
    } finally {
      probe.close();
      serve.child.kill("SIGTERM");
      await serve.exited;
    }
  });
});
