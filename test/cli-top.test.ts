// `jobwatch top` piped: one line per event of WatchJobs (snapshot, synced, changes, removals), only the
// caller's jobs unless --all, and Ctrl-C (SIGINT) leaves with exit code 0.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { cliCommand, start } from "./helpers/cli.js";
import { startTestServer, type TestServer } from "./helpers/server.js";

describe("jobwatch top, piped", () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer({ dialect: "sqlite", pollMs: 20 });
  });
  after(async () => {
    await s?.stop();
  });

  const worker = () => s.as(s.tokens.worker).worker;

  test("a user's top: their jobs as SNAPSHOT, SYNCED, then CHANGED lines; another user's never", async () => {
    const mine = (await worker().createJob({ operationType: "top_test", username: "alice" })).job!;
    const bobs = (await worker().createJob({ operationType: "top_test", username: "bob" })).job!;
    const run = start(["top", "--operation", "top_test"], {
      env: { JOBWATCH_ADDRESS: s.address, JOBWATCH_TOKEN: s.tokens.alice },
    });
    try {
      await run.waitFor(/SYNCED\s+1 jobs/);
      assert.match(run.stdout, new RegExp(`SNAPSHOT ${mine.jobId} PENDING\\s+0% top_test alice`));
      await worker().startJob({ jobId: bobs.jobId });
      await worker().startJob({ jobId: mine.jobId });
      await worker().reportProgress({ jobId: mine.jobId, progress: 42, phase: "semantic", detail: "21/50 files" });
      await run.waitFor(/CHANGED\s+\S+ RUNNING\s+42% top_test alice semantic: 21\/50 files/);
      assert.doesNotMatch(run.stdout, new RegExp(bobs.jobId));
      // The first connection is no news on stderr (only a lost one and its return are).
      assert.equal(run.stderr, "");
    } finally {
      run.child.kill("SIGINT");
    }
    assert.equal(await run.exited, 0);
  });

  test("an admin's top without --all: its own jobs only, as list and stats", async () => {
    const bobs = (await worker().createJob({ operationType: "top_own", username: "bob" })).job!;
    const own = (await worker().createJob({ operationType: "top_own", username: "admin" })).job!;
    const run = start(["top", "--operation", "top_own"], {
      env: { JOBWATCH_ADDRESS: s.address, JOBWATCH_TOKEN: s.tokens.admin },
    });
    try {
      await run.waitFor(/SYNCED\s+1 jobs/);
      assert.match(run.stdout, new RegExp(`SNAPSHOT ${own.jobId}`));
      assert.doesNotMatch(run.stdout, new RegExp(bobs.jobId));
    } finally {
      run.child.kill("SIGINT");
    }
    assert.equal(await run.exited, 0);
  });

  test("--all with a status filter: jobs enter and leave it (REMOVED); a user without manage_jobs is refused", async () => {
    const run = start(["top", "--all", "--status", "running", "--operation", "top_all"], {
      env: { JOBWATCH_ADDRESS: s.address, JOBWATCH_TOKEN: s.tokens.admin },
    });
    try {
      await run.waitFor(/SYNCED\s+0 jobs/);
      const job = (await worker().createJob({ operationType: "top_all", username: "bob" })).job!;
      await worker().startJob({ jobId: job.jobId });
      await run.waitFor(new RegExp(`CHANGED\\s+${job.jobId} RUNNING`));
      await worker().completeJob({ jobId: job.jobId });
      await run.waitFor(new RegExp(`REMOVED\\s+${job.jobId} COMPLETED`));
    } finally {
      run.child.kill("SIGINT");
    }
    assert.equal(await run.exited, 0);

    const refused = start(["top", "--all"], { env: { JOBWATCH_ADDRESS: s.address, JOBWATCH_TOKEN: s.tokens.alice } });
    assert.equal(await refused.exited, 4);
    assert.match(refused.stderr, /every user's jobs \(all_users\) needs permission 'manage_jobs'/);
    assert.doesNotMatch(refused.stderr, /leave username empty/);
  });

  test("a server never reached exits 5 and names the address, as watch does (it kept retrying forever)", async () => {
    const run = start(["top"], { env: { JOBWATCH_ADDRESS: "127.0.0.1:1", JOBWATCH_TOKEN: s.tokens.alice } });
    // Not a speed bound: before the fix top never exited, and a test that hangs must still end.
    const hung = setTimeout(() => run.child.kill("SIGKILL"), 30_000);
    const code = await run.exited;
    clearTimeout(hung);
    assert.equal(code, 5, run.stderr);
    assert.match(run.stderr, /cannot reach the jobwatch server at 127\.0\.0\.1:1/);
  });

  test("on a terminal, an error is printed after leaving the full screen, so it stays visible", async () => {
    // `script` gives the command a pseudo-terminal, as a person's shell would.
    const line = cliCommand(["top", "--all"]);
    const quoted = [line.command, ...line.args].map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(" ");
    const child = spawn("script", ["-qec", quoted, "/dev/null"], {
      env: { ...process.env, JOBWATCH_ADDRESS: s.address, JOBWATCH_TOKEN: s.tokens.alice, NO_COLOR: "1" },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (out += chunk));
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
    assert.equal(code, 4, out);
    const left = out.lastIndexOf("\x1b[?1049l");
    assert.ok(left >= 0, `never left the alternate screen: ${JSON.stringify(out)}`);
    assert.match(out.slice(left), /manage_jobs/, "the error must come after leaving the alternate screen");
  });
});
