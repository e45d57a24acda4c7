// The server side of the `jobwatch` command as a new user runs it: configuration, `serve` on a fresh
// folder (the bootstrap admin token, SIGTERM), `token create|list|revoke`, `migrate`, and bad settings.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { createServer as createNetServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { createClient, JobNotFoundError, UnauthenticatedError } from "../src/client/index.js";
import { ConfigError, type ConfigFlags, DEFAULT_DATABASE_URL, loadConfig } from "../src/config.js";
import { cli, type Run, start } from "./helpers/cli.js";
import { DIALECTS, freshDatabase, type TestDatabase } from "./helpers/databases.js";

const UNKNOWN_JOB = "3f0e2c1a-9b7d-4c2e-8f1a-2b3c4d5e6f70";

describe("configuration", () => {
  test("defaults: embedded SQLite under data/, port 50051, 200 ms polls, the seed system's 30-day retention", () => {
    const config = loadConfig({});
    assert.equal(config.databaseUrl, DEFAULT_DATABASE_URL);
    assert.equal(config.databaseUrl, "sqlite:data/jobwatch.db");
    assert.equal(config.listen, "0.0.0.0:50051");
    assert.equal(config.watchPollMs, 200);
    assert.equal(config.cancelGraceMs, 5 * 60_000);
    assert.equal(config.staleAfterMs, 10 * 60_000);
    assert.equal(config.retentionMs, 720 * 3_600_000);
    assert.equal(config.sweepIntervalMs, 3_600_000);
  });

  test("flags override the environment; durations take units or milliseconds", () => {
    const env = {
      JOBWATCH_DATABASE_URL: "mysql://u:p@db:3306/jobs",
      JOBWATCH_LISTEN: "127.0.0.1:6000",
      JOBWATCH_WATCH_POLL_MS: "500",
      JOBWATCH_RETENTION: "48h",
      JOBWATCH_STALE_AFTER: "90s",
    };
    const config = loadConfig(env, { listen: "[::]:7000", watchPollMs: "50" });
    assert.equal(config.databaseUrl, "mysql://u:p@db:3306/jobs");
    assert.equal(config.listen, "[::]:7000");
    assert.equal(config.watchPollMs, 50);
    assert.equal(config.retentionMs, 48 * 3_600_000);
    assert.equal(config.staleAfterMs, 90_000);
  });

  test("a database URL with an unknown scheme is refused without echoing its password", () => {
    assert.throws(
      () => loadConfig({ JOBWATCH_DATABASE_URL: "MYSQL://u:hunter2@db.example/jobs" }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.match(error.message, /scheme 'MYSQL:'\) has an unknown scheme: use/);
        assert.doesNotMatch(error.message, /hunter2/);
        return true;
      },
    );
  });

  test("bad settings are one ConfigError line naming the setting and what to use", () => {
    const cases: [Record<string, string>, RegExp][] = [
      [{ JOBWATCH_DATABASE_URL: "postgres://x/y" }, /JOBWATCH_DATABASE_URL .* unknown scheme: use sqlite:<path>/],
      [{ JOBWATCH_LISTEN: "50051" }, /JOBWATCH_LISTEN '50051' is not host:port/],
      [{ JOBWATCH_LISTEN: "localhost:70000" }, /is not host:port/],
      [{ JOBWATCH_WATCH_POLL_MS: "soon" }, /JOBWATCH_WATCH_POLL_MS 'soon' is not a duration/],
      [{ JOBWATCH_WATCH_POLL_MS: "1" }, /too small: the minimum is 10 ms/],
      [{ JOBWATCH_WATCH_POLL_MS: "30d" }, /too large/],
      [{ JOBWATCH_LOG_LEVEL: "loud" }, /JOBWATCH_LOG_LEVEL 'loud' is not one of/],
    ];
    for (const [env, message] of cases) {
      assert.throws(
        () => loadConfig(env),
        (error: unknown) => {
          assert.ok(error instanceof ConfigError, `${JSON.stringify(env)} throws a ConfigError`);
          assert.match(error.message, message);
          assert.ok(!error.message.includes("\n"), "one line");
          return true;
        },
      );
    }
  });
});

describe("settings given as flags are named as flags", () => {
  test("each bad flag's error names the flag the user typed; the same value from the environment names the variable", () => {
    const cases: [ConfigFlags, RegExp][] = [
      [{ listen: "nonsense" }, /^--listen 'nonsense' is not host:port/],
      [{ databaseUrl: "postgres://x/y" }, /^--database-url \(scheme 'postgres:'\) has an unknown scheme/],
      [{ logLevel: "loud" }, /^--log-level 'loud' is not one of/],
      [{ watchPollMs: "soon" }, /^--watch-poll-ms 'soon' is not a duration/],
      [{ tlsCert: "server.pem" }, /^--tls-cert needs its key: set --tls-key or JOBWATCH_TLS_KEY/],
      [{ tlsKey: "server.key" }, /^--tls-key needs its certificate: set --tls-cert or JOBWATCH_TLS_CERT/],
      [{ tlsClientCa: "ca.pem" }, /^--tls-client-ca needs TLS: set --tls-cert and --tls-key/],
    ];
    for (const [flags, message] of cases) {
      assert.throws(
        () => loadConfig({}, flags),
        (error: unknown) => error instanceof ConfigError && message.test(error.message),
      );
    }
    assert.throws(
      () => loadConfig({ JOBWATCH_LISTEN: "nonsense" }),
      (error: unknown) => error instanceof ConfigError && /^JOBWATCH_LISTEN 'nonsense'/.test(error.message),
    );
    assert.throws(
      () => loadConfig({ JOBWATCH_TLS_CERT: "server.pem" }),
      (error: unknown) => error instanceof ConfigError && /^JOBWATCH_TLS_CERT needs its key/.test(error.message),
    );
  });
});

/** Every process below `pid` (Linux: /proc/<pid>/task/<tid>/children), children first. */
function descendants(pid: number): number[] {
  let children: number[] = [];
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8")
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
  return children.flatMap((child) => [child, ...descendants(child)]);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("npm start under a supervisor", () => {
  test("SIGTERM to npm's pid stops the server too (gracefully), leaving no process behind", async () => {
    const dir = await mkdtemp(join(tmpdir(), "jobwatch-npm-start-"));
    const root = fileURLToPath(new URL("..", import.meta.url));
    const npm = spawn("npm", ["start"], {
      cwd: root,
      env: {
        ...process.env,
        JOBWATCH_DATABASE_URL: `sqlite:${join(dir, "start.db")}`,
        JOBWATCH_LISTEN: "127.0.0.1:0",
        JOBWATCH_LOG_FORMAT: "json",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    npm.stdout.setEncoding("utf8").on("data", (chunk: string) => (out += chunk));
    npm.stderr.resume();
    const exited = new Promise<void>((resolve) => npm.once("exit", () => resolve()));
    let below: number[] = [];
    try {
      const deadline = Date.now() + 30_000;
      while (!out.includes("jobwatch is serving")) {
        assert.ok(Date.now() < deadline, `npm start did not come up: ${out}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      below = descendants(npm.pid!);
      assert.ok(below.length > 0, "the server runs below npm");
      npm.kill("SIGTERM");
      await exited;
      const gone = Date.now() + 10_000;
      while (below.some(alive) && Date.now() < gone) await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(below.filter(alive), [], "no process of npm start outlives it");
      assert.match(out, /"msg":"stopped"/, "the server shut down gracefully");
    } finally {
      for (const pid of [...below, ...descendants(npm.pid!)]) if (alive(pid)) process.kill(pid, "SIGKILL");
      await rm(dir, { recursive: true, force: true });
    }
  });
});

/** A free local port (listened on, then released). */
async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** The CLI failed the way a user should see: exit 1, one `jobwatch: ...` line, no stack trace. */
function assertOneLineFailure(run: { code: number | null; stderr: string }, message: RegExp): void {
  assert.equal(run.code, 1, run.stderr);
  const lines = run.stderr.trim().split("\n");
  assert.equal(lines.length, 1, `one line, got:\n${run.stderr}`);
  assert.match(lines[0]!, /^jobwatch: /);
  assert.match(lines[0]!, message);
  assert.doesNotMatch(run.stderr, /\n\s+at /, "no stack trace");
}

describe("jobwatch serve on a fresh folder (embedded SQLite)", () => {
  let dir: string;
  let address: string;
  let server: Run;
  let adminToken: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "jobwatch-serve-"));
    address = `127.0.0.1:${await freePort()}`;
    server = start(["serve", "--listen", address, "--log-level", "warn"], {
      cwd: dir,
      env: { JOBWATCH_DATABASE_URL: undefined },
    });
    await server.waitFor(/^\s+(jw_\S+)$/m);
    adminToken = /^\s+(jw_\S+)$/m.exec(server.stderr)![1]!;
  });

  after(async () => {
    if (server.child.exitCode === null) server.child.kill("SIGKILL");
    await rm(dir, { recursive: true, force: true });
  });

  test("creates data/jobwatch.db and prints an admin token once, with how to use it", async () => {
    assert.ok((await stat(join(dir, "data", "jobwatch.db"))).isFile());
    assert.match(server.stderr, /an admin token was created for user 'admin'/);
    assert.ok(!server.stdout.includes(adminToken), "the token is never in the JSON log on stdout");
    // Reflection is public: the grpcurl line needs (and shows) no token.
    assert.match(server.stderr, /^ {2}grpcurl -plaintext 127\.0\.0\.1:\d+ list$/m);
    assert.equal(server.stderr.split(adminToken).length - 1, 1, "the token is printed once, on its own line");
    // Outside a checkout, with no jobwatch on PATH, the commands name the built CLI: they run as printed.
    const root = fileURLToPath(new URL("..", import.meta.url));
    const command = `node ${join(root, "dist", "cli", "main.js")}`;
    assert.ok(server.stderr.includes(`  ${command} token create --user alice --role normal_user`), server.stderr);
    assert.ok(server.stderr.includes(`  ${command} demo`), server.stderr);
    const client = createClient({ address, token: adminToken });
    try {
      await assert.rejects(client.getJob(UNKNOWN_JOB), JobNotFoundError);
    } finally {
      client.close();
    }
  });

  test("token create prints a working token; list shows it without the secret; revoke stops it", async () => {
    const created = await cli(["token", "create", "--user", "alice", "--role", "normal_user"], { cwd: dir });
    assert.equal(created.code, 0, created.stderr);
    const token = created.stdout.trim();
    assert.match(token, /^jw_[0-9a-f]{12}_[A-Za-z0-9_-]+$/);
    const tokenId = token.split("_")[1]!;

    const listed = await cli(["token", "list"], { cwd: dir });
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, new RegExp(`${tokenId}\\s+alice\\s+normal_user\\s+\\S+\\s+active`));
    assert.ok(!listed.stdout.includes(token), "the secret is never listed");

    const client = createClient({ address, token, retry: { maxAttempts: 1 } });
    try {
      await assert.rejects(client.getJob(UNKNOWN_JOB), JobNotFoundError, "the new token works at once");
      const revoked = await cli(["token", "revoke", tokenId], { cwd: dir });
      assert.equal(revoked.code, 0, revoked.stderr);
      assert.match(revoked.stdout, new RegExp(`revoked token ${tokenId} of user 'alice'`));
      // Revocation reaches the running server within 5 seconds.
      const deadline = Date.now() + 5000;
      let rejected = false;
      while (!rejected && Date.now() < deadline) {
        rejected = await client.getJob(UNKNOWN_JOB).then(
          () => false,
          (error: unknown) => error instanceof UnauthenticatedError,
        );
        if (!rejected) await new Promise((r) => setTimeout(r, 200));
      }
      assert.ok(rejected, "a revoked token is UNAUTHENTICATED within 5 s");
    } finally {
      client.close();
    }

    const bad = await cli(["token", "create", "--user", "bob", "--role", "superuser"], { cwd: dir });
    assertOneLineFailure(bad, /--role: unknown role 'superuser'; use one of normal_user, power_user, admin, service/);
  });

  test("SIGTERM stops it with exit 0 well within 10 seconds; a restart prints no new token", async () => {
    const began = Date.now();
    server.child.kill("SIGTERM");
    assert.equal(await server.exited, 0);
    assert.ok(Date.now() - began < 10_000, `stopped in ${Date.now() - began} ms`);

    const again = start(["serve", "--listen", address, "--log-level", "info"], {
      cwd: dir,
      env: { JOBWATCH_DATABASE_URL: undefined },
    });
    try {
      await again.waitFor(/jobwatch is serving/);
      assert.doesNotMatch(again.stdout + again.stderr, /admin token was created/);
    } finally {
      again.child.kill("SIGINT");
      assert.equal(await again.exited, 0);
    }
  });
});

describe("bad settings stop serve with one line and exit 1", () => {
  test("unknown database URL scheme", async () => {
    const run = await cli(["serve", "--database-url", "postgres://localhost/jobs"]);
    assertOneLineFailure(run, /unknown scheme: use sqlite:<path>, sqlite::memory: or mysql:\/\//);
  });

  test("unreachable database", async () => {
    const run = await cli(["serve", "--database-url", "mysql://root@127.0.0.1:1/jobs", "--listen", "127.0.0.1:0"]);
    assertOneLineFailure(run, /cannot reach the database at mysql:\/\/root@127\.0\.0\.1:1\/jobs/);
  });

  test("port in use", async () => {
    const blocker = createNetServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    const { port } = blocker.address() as { port: number };
    try {
      const run = await cli(["serve", "--database-url", "sqlite::memory:", "--listen", `127.0.0.1:${port}`]);
      assertOneLineFailure(run, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: address already in use`));
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });

  test("a malformed listen address", async () => {
    const run = await cli(["serve", "--database-url", "sqlite::memory:", "--listen", "nowhere"]);
    // Named as typed: the flag, not the variable it overrides.
    assertOneLineFailure(run, /--listen 'nowhere' is not host:port/);
  });
});

for (const dialect of DIALECTS) {
  describe(`jobwatch migrate and serve on ${dialect}`, () => {
    let database: TestDatabase;
    before(async () => {
      database = await freshDatabase(dialect);
    });
    after(async () => {
      await database.drop();
    });

    test("migrate creates the schema, twice is fine, and serve then starts on it", async () => {
      const env = { JOBWATCH_DATABASE_URL: database.url };
      for (let i = 0; i < 2; i++) {
        const run = await cli(["migrate"], { env });
        assert.equal(run.code, 0, run.stderr);
        assert.match(run.stdout, /database is up to date/);
      }
      const server = start(["serve", "--listen", "127.0.0.1:0", "--log-level", "info"], { env });
      try {
        await server.waitFor(/jobwatch is serving/);
        // The banner goes to stderr, the log to stdout: two pipes, so either may be read first.
        await server.waitFor(/an admin token was created/);
        assert.match(server.stderr, /an admin token was created/);
      } finally {
        server.child.kill("SIGTERM");
        assert.equal(await server.exited, 0);
      }
    });

    if (dialect === "mysql") {
      test("a MySQL database that does not exist is named as missing, with how to create it", async () => {
        const url = new URL(database.url);
        url.pathname = `/${url.pathname.slice(1)}_absent`;
        const run = await cli(["serve", "--listen", "127.0.0.1:0", "--database-url", url.toString()]);
        const name = `${database.url.slice(database.url.lastIndexOf("/") + 1)}_absent`;
        assertOneLineFailure(
          run,
          new RegExp(
            `the database '${name}' does not exist on the MySQL server at ${url.host}: create it .*CREATE DATABASE \`${name}\``,
          ),
        );
        assert.doesNotMatch(run.stderr, /cannot reach/);
      });
    }
  });
}
