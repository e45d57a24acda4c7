// Logs an operator can use and no one can steal from: one access-log line per call, the bootstrap token on
// stderr only, and no token, JWT or authorization value in any log line at debug level with grpc-js traces on.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { createClient, JobNotFoundError, PermissionDeniedError, UnauthenticatedError } from "../src/client/index.js";
import { GetJobDetailsRequest } from "../src/gen/jobwatch/v1/job_service.js";
import { cli, type Run, start } from "./helpers/cli.js";
import { rawGrpcCall } from "./helpers/raw-h2.js";

const UNKNOWN_JOB = "3f0e2c1a-9b7d-4c2e-8f1a-2b3c4d5e6f70";
const GET = "/jobwatch.v1.JobService/GetJobDetails";
// Shaped like a JWT (header.payload.signature); the server knows no JWT settings and refuses it.
const FAKE_JWT =
  "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJtYWxsb3J5IiwicHJlZmVycmVkX3VzZXJuYW1lIjoibWFsbG9yeSJ9.c2lnbmF0dXJlLXNlY3JldC14eXo";

interface LogLine {
  msg?: string;
  rpc?: string;
  code?: string;
  username?: string;
  peer?: string;
  durationMs?: number;
  bytesSent?: number;
  bytesReceived?: number;
  messagesSent?: number;
}

function logLines(run: Run): LogLine[] {
  return run.stdout
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as LogLine);
}

describe("logs of a full run at debug level, grpc-js traces on", () => {
  let dir: string;
  let server: Run;
  let address: string;
  let admin: string;
  let alice: string;
  let revoked: string;
  let jobId: string;
  const env = (): Record<string, string> => ({ JOBWATCH_DATABASE_URL: `sqlite:${join(dir, "logs.db")}` });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "jobwatch-logs-"));
    server = start(["serve", "--listen", "127.0.0.1:0", "--log-level", "debug"], {
      env: { ...env(), GRPC_TRACE: "all", GRPC_VERBOSITY: "DEBUG", JOBWATCH_LOG_FORMAT: "json" },
    });
    await server.waitFor(/jobwatch is serving/);
    await server.waitFor(/^\s+(jw_\S+)$/m);
    admin = /^\s+(jw_\S+)$/m.exec(server.stderr)![1]!;
    address = (
      JSON.parse(server.stdout.split("\n").find((l) => l.includes("jobwatch is serving"))!) as {
        address: string;
      }
    ).address;
    const made = await cli(["token", "create", "--user", "alice", "--role", "normal_user"], { env: env() });
    alice = made.stdout.trim();
    const other = await cli(["token", "create", "--user", "eve", "--role", "normal_user"], { env: env() });
    revoked = other.stdout.trim();
    assert.equal((await cli(["token", "revoke", revoked], { env: env() })).code, 0);
  });

  after(async () => {
    if (server.child.exitCode === null) server.child.kill("SIGKILL");
    await rm(dir, { recursive: true, force: true });
  });

  test("calls with good, bad, revoked, tab-separated, JWT-shaped and repeated tokens", async () => {
    const adminClient = createClient({ address, token: admin, retry: { maxAttempts: 1 } });
    const aliceClient = createClient({ address, token: alice, retry: { maxAttempts: 1 } });
    try {
      const job = await adminClient.worker.createJob({ operationType: "log_test", username: "alice" });
      jobId = job.jobId;
      await assert.rejects(aliceClient.getJob(UNKNOWN_JOB), JobNotFoundError);
      assert.equal((await aliceClient.getJob(jobId)).username, "alice");
      // A valid token whose role lacks the permission: refused by the interceptor, the user still known.
      await assert.rejects(
        aliceClient.worker.createJob({ operationType: "log_test", username: "alice" }),
        PermissionDeniedError,
      );

      const watched: number[] = [];
      const watching = (async () => {
        for await (const seen of aliceClient.watchJob(jobId)) watched.push(seen.revision);
      })();
      while (watched.length === 0) await new Promise((r) => setTimeout(r, 20));
      await adminClient.worker.startJob(jobId);
      await adminClient.worker.completeJob(jobId, { ok: true });
      await watching;

      // A revocation applies within seconds (the token cache's bound): ask until it does.
      const eve = createClient({ address, token: revoked, retry: { maxAttempts: 1 } });
      try {
        for (let i = 0; ; i++) {
          const error = await eve.getJob(jobId).catch((e: unknown) => e);
          if (error instanceof UnauthenticatedError) break;
          assert.ok(error instanceof JobNotFoundError && i < 80, `revoked token still works: ${error}`);
          await new Promise((r) => setTimeout(r, 100));
        }
      } finally {
        eve.close();
      }
      for (const token of [FAKE_JWT, `jw_000000000000_${"S".repeat(43)}`]) {
        const client = createClient({ address, token, retry: { maxAttempts: 1 } });
        try {
          await assert.rejects(client.getJob(jobId), UnauthenticatedError);
        } finally {
          client.close();
        }
      }
      const request = GetJobDetailsRequest.encode({ jobId }).finish();
      // A tab after "Bearer": grpc-js cannot take the value into metadata and logs the whole header.
      const tab = await rawGrpcCall(address, GET, [["authorization", `Bearer\t${alice}`]], request);
      assert.equal(tab.dataBytes, 0, "refused (no token reached the interceptor)");
      // Two authorization headers: HTTP/2 would keep only the first (alice's, which can read the job).
      const one = await rawGrpcCall(address, GET, [["authorization", `Bearer ${alice}`]], request);
      assert.ok(one.ended && one.dataBytes > 0, "one header: the job is returned");
      const two = await rawGrpcCall(
        address,
        GET,
        [
          ["authorization", `Bearer ${alice}`],
          ["authorization", `Bearer ${revoked}`],
        ],
        request,
      );
      assert.ok(two.ended, "answered");
      assert.equal(two.dataBytes, 0, "two headers: refused, no job sent");
    } finally {
      adminClient.close();
      aliceClient.close();
    }
    server.child.kill("SIGTERM");
    assert.equal(await server.exited, 0);

    const lines = logLines(server);
    const calls = lines.filter((l) => l.msg === "call finished");
    const found = calls.find((l) => l.rpc === GET.slice(1) && l.code === "NOT_FOUND");
    assert.ok(found, "an access-log line for the NOT_FOUND GetJobDetails");
    assert.equal(found.username, "alice");
    assert.match(found.peer ?? "", /^127\.0\.0\.1:\d+$/);
    assert.ok(typeof found.durationMs === "number" && found.durationMs >= 0);
    assert.ok((found.bytesReceived ?? 0) > 0 && (found.bytesSent ?? 0) === 0);
    const ok = calls.find((l) => l.rpc === GET.slice(1) && l.code === "OK" && l.username === "alice");
    assert.ok(ok && (ok.bytesSent ?? 0) > 0, "the OK call's reply size");
    const denied = calls.find(
      (l) => l.rpc === "jobwatch.v1.JobWorkerService/CreateJob" && l.code === "PERMISSION_DENIED",
    );
    assert.ok(denied, "an access-log line for the PERMISSION_DENIED CreateJob");
    assert.equal(denied.username, "alice", "the interceptor's refusal still names the user the token belongs to");
    const watch = calls.find((l) => l.rpc === "jobwatch.v1.JobService/WatchJob");
    assert.ok(watch, "the watch's line, when it ended");
    assert.equal(watch.code, "OK");
    assert.ok((watch.messagesSent ?? 0) >= 3, `messages sent: ${watch.messagesSent}`);
    const refused = calls.filter((l) => l.rpc === GET.slice(1) && l.code === "UNAUTHENTICATED");
    assert.equal(refused.length, 5, "revoked, JWT-shaped, unknown, tab and repeated: each refused and logged");
    assert.ok(
      lines.some((l) => l.msg === "grpc-js"),
      "grpc-js lines reached the log (so the redaction was exercised)",
    );

    const secrets = { alice, revoked, FAKE_JWT, jwtSignature: FAKE_JWT.split(".")[2]!, adminSecret: admin.slice(16) };
    for (const [name, secret] of Object.entries(secrets)) {
      assert.ok(!server.stdout.includes(secret), `${name} is not in the log (stdout)`);
    }
    // stderr holds only the bootstrap banner: the admin token, shown once, and nothing else secret.
    for (const [name, secret] of Object.entries({ alice, revoked, FAKE_JWT })) {
      assert.ok(!server.stderr.includes(secret), `${name} is not on stderr`);
    }
    assert.ok(server.stderr.includes(admin), "the bootstrap banner on stderr");
  });
});
