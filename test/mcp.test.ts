// `jobwatch mcp` as an assistant uses it: the MCP SDK's own Client, over stdio (spawning the command) and over
// Streamable HTTP, against a real jobwatch server; get_job_details checked against the seed file itself.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { createServer as createNetServer } from "node:net";
import { createInterface } from "node:readline";
import { after, before, describe, test } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { CallToolResult, Progress, Tool } from "@modelcontextprotocol/sdk/types.js";
import { AjvJsonSchemaValidator } from "@modelcontextprotocol/sdk/validation/ajv";
import type { JsonSchemaType } from "@modelcontextprotocol/sdk/validation/types.js";
import { createClient, type JobwatchClient } from "../src/client/index.js";
import { cli, cliCommand, start } from "./helpers/cli.js";
import { parseFrontMatter, type Yaml } from "./helpers/front-matter.js";
import { startTestServer, type TestServer } from "./helpers/server.js";

const SEED = parseFrontMatter(readFileSync(new URL("./fixtures/seed-get-job-details.txt", import.meta.url), "utf8"));
const SEED_OUTPUT = SEED.data["outputSchema"] as { [key: string]: Yaml };
const seedValidator = new AjvJsonSchemaValidator().getValidator(SEED_OUTPUT as JsonSchemaType);

/** An SDK client connected to `jobwatch mcp` spawned with this environment. */
async function stdioClient(env: Record<string, string>): Promise<Client> {
  const line = cliCommand(["mcp"]);
  const transport = new StdioClientTransport({ command: line.command, args: line.args, env, stderr: "pipe" });
  const client = new Client({ name: "jobwatch-test", version: "1.0.0" });
  await client.connect(transport);
  return client;
}

/** A tool call's structuredContent (checked to match its text content), with isError. */
async function call(
  client: Client,
  name: string,
  args: Record<string, unknown>,
  onprogress?: (progress: Progress) => void,
): Promise<{ isError: boolean; structured: Record<string, unknown> }> {
  const result = (await client.callTool(
    { name, arguments: args },
    undefined,
    onprogress ? { onprogress } : {},
  )) as CallToolResult;
  const structured = result.structuredContent as Record<string, unknown>;
  const text = result.content.find((c) => c.type === "text");
  assert.ok(text && text.type === "text", "a text rendering comes with the structured content");
  assert.deepEqual(JSON.parse(text.text), structured, "the text rendering says what the structured content says");
  return { isError: result.isError === true, structured };
}

/** A get_job_details (or wait_for_job) answer, validated against the seed's outputSchema as the file has it. */
function assertSeedValid(structured: Record<string, unknown>): void {
  const verdict = seedValidator(structured);
  assert.ok(verdict.valid, `valid against the seed's outputSchema: ${verdict.errorMessage}`);
}

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe("jobwatch mcp", () => {
  let server: TestServer;
  let worker: JobwatchClient;
  let alice: Client;
  let env: (token: string) => Record<string, string>;

  before(async () => {
    server = await startTestServer();
    worker = createClient({ address: server.address, token: server.tokens.worker });
    env = (token) => ({ JOBWATCH_ADDRESS: server.address, JOBWATCH_TOKEN: token });
    alice = await stdioClient(env(server.tokens.alice));
  });

  after(async () => {
    await alice.close();
    worker.close();
    await server.stop();
  });

  const newJob = (username = "alice") =>
    worker.worker.createJob({ operationType: "add_golden_repo", username, resource: `repo-${Math.random()}` });

  test("tools/list gives get_job_details exactly as the seed file defines it", async () => {
    const { tools } = await alice.listTools();
    const tool = tools.find((t) => t.name === SEED.data["name"]);
    assert.ok(tool, `a tool named ${SEED.data["name"]}`);
    assert.equal(tool.description, SEED.body, "the description is the seed's text");
    assert.deepEqual(tool.inputSchema, SEED.data["inputSchema"]);

    const output = tool.outputSchema as Record<string, Yaml>;
    assert.deepEqual(Object.keys(output).sort(), Object.keys(SEED_OUTPUT).sort());
    assert.deepEqual(output["required"], SEED_OUTPUT["required"]);
    const properties = output["properties"] as Record<string, Record<string, Yaml>>;
    const seedProperties = SEED_OUTPUT["properties"] as Record<string, Record<string, Yaml>>;
    assert.deepEqual(Object.keys(properties).sort(), Object.keys(seedProperties).sort());
    for (const [name, seedProperty] of Object.entries(seedProperties)) {
      if (name !== "job") assert.deepEqual(properties[name], seedProperty, `outputSchema.properties.${name}`);
    }
    const job = properties["job"]!;
    const seedJob = seedProperties["job"]!;
    assert.deepEqual(Object.keys(job).sort(), Object.keys(seedJob).sort());
    assert.equal(job["type"], seedJob["type"]);
    assert.equal(job["description"], seedJob["description"]);
    const fields = job["properties"] as Record<string, Yaml>;
    const seedFields = seedJob["properties"] as Record<string, Yaml>;
    assert.deepEqual(Object.keys(fields), Object.keys(seedFields), "the job's fields, in the seed's order");
    for (const [name, seedField] of Object.entries(seedFields)) {
      assert.deepEqual(fields[name], seedField, `outputSchema.properties.job.properties.${name}`);
    }
    assert.deepEqual(tool.outputSchema, SEED_OUTPUT, "and nothing else");
  });

  test("tools/list has the related tools, with annotations as the protocol defines them", async () => {
    const { tools } = await alice.listTools();
    const byName = new Map<string, Tool>(tools.map((t) => [t.name, t]));
    assert.deepEqual([...byName.keys()].sort(), [
      "cancel_job",
      "get_job_details",
      "get_job_statistics",
      "list_jobs",
      "wait_for_job",
    ]);
    for (const name of ["get_job_details", "wait_for_job", "list_jobs", "get_job_statistics"]) {
      const hints = byName.get(name)!.annotations;
      assert.equal(hints?.readOnlyHint, true, `${name} is read-only`);
      assert.equal(hints?.idempotentHint, true, `${name} is idempotent`);
    }
    const cancel = byName.get("cancel_job")!.annotations;
    assert.equal(cancel?.readOnlyHint, false);
    assert.equal(cancel?.destructiveHint, true);
    assert.equal(cancel?.idempotentHint, true);
    await assert.rejects(alice.callTool({ name: "get_job", arguments: {} }), (err: Error & { code?: number }) => {
      assert.equal(err.code, -32602, "an unknown tool is a protocol error (invalid params)");
      assert.match(err.message, /unknown tool 'get_job'; the tools are get_job_details, wait_for_job/);
      // The SDK client prefixes "MCP error -32602: " itself; the server's message must not carry it too.
      assert.match(err.message, /^MCP error -32602: unknown tool/);
      assert.doesNotMatch(err.message, /MCP error -32602: MCP error/);
      return true;
    });
    for (const tool of tools) {
      assert.ok(tool.outputSchema, `${tool.name} declares its output`);
      assert.deepEqual((tool.outputSchema as { required?: string[] }).required, ["success"]);
    }
  });

  test("get_job_details: a running, a completed and a failed job, in the seed's shape", async () => {
    const running = await newJob();
    await worker.worker.startJob(running.jobId);
    await worker.worker.reportProgress(running.jobId, 40, { phase: "semantic" });
    const completed = await newJob();
    await worker.worker.startJob(completed.jobId);
    await worker.worker.completeJob(completed.jobId, { files: 500, branch: "main" });
    const failed = await newJob();
    await worker.worker.startJob(failed.jobId);
    await worker.worker.failJob(failed.jobId, "fts indexing failed: no space left on device");

    const r = await call(alice, "get_job_details", { job_id: running.jobId });
    assert.equal(r.isError, false);
    assertSeedValid(r.structured);
    const job = r.structured["job"] as Record<string, unknown>;
    assert.deepEqual(Object.keys(r.structured), ["success", "job"]);
    assert.equal(r.structured["success"], true);
    assert.equal(job["job_id"], running.jobId);
    assert.equal(job["operation_type"], "add_golden_repo");
    assert.equal(job["status"], "running");
    assert.match(job["created_at"] as string, ISO);
    assert.match(job["started_at"] as string, ISO);
    assert.equal(job["completed_at"], null);
    assert.equal(job["progress"], 40);
    assert.equal(job["result"], null);
    assert.equal(job["error"], null);
    assert.equal(job["username"], "alice");

    const c = await call(alice, "get_job_details", { job_id: completed.jobId });
    assertSeedValid(c.structured);
    const cj = c.structured["job"] as Record<string, unknown>;
    assert.equal(cj["status"], "completed");
    assert.equal(cj["progress"], 100);
    assert.match(cj["completed_at"] as string, ISO);
    assert.deepEqual(cj["result"], { files: 500, branch: "main" });
    assert.equal(cj["error"], null);

    const f = await call(alice, "get_job_details", { job_id: failed.jobId });
    assert.equal(f.isError, false, "a failed job is a successful read");
    assertSeedValid(f.structured);
    const fj = f.structured["job"] as Record<string, unknown>;
    assert.equal(fj["status"], "failed");
    assert.equal(fj["error"], "fts indexing failed: no space left on device");
    assert.equal(fj["result"], null);
    assert.match(fj["completed_at"] as string, ISO);
  });

  test("get_job_details: not found and another user's job read alike, 'may have expired'", async () => {
    const bobs = await newJob("bob");
    const missing = "0b5e4a52-6a3e-4b8e-9f0e-3c8d1b2a4f61";
    const answers = [];
    for (const jobId of [missing, bobs.jobId]) {
      const r = await call(alice, "get_job_details", { job_id: jobId });
      assert.equal(r.isError, true);
      assertSeedValid(r.structured);
      assert.deepEqual(Object.keys(r.structured), ["success", "error"]);
      assert.equal(r.structured["success"], false);
      assert.match(r.structured["error"] as string, new RegExp(`job ${jobId} was not found: the job may have expired`));
      answers.push((r.structured["error"] as string).replace(jobId, "ID"));
    }
    assert.equal(answers[0], answers[1], "another user's job cannot be told from a missing one");
  });

  test("advice fits the caller: an admin's not found names no other user; all_users needs an admin token", async () => {
    const admin = await stdioClient(env(server.tokens.admin));
    try {
      const missing = "0b5e4a52-6a3e-4b8e-9f0e-3c8d1b2a4f61";
      for (const tool of ["get_job_details", "wait_for_job", "cancel_job"]) {
        const r = await call(admin, tool, { job_id: missing });
        assert.equal(r.isError, true);
        assert.match(
          r.structured["error"] as string,
          new RegExp(`job ${missing} was not found: the job may have expired`),
        );
        assert.doesNotMatch(r.structured["error"] as string, /another user/, tool);
        const user = await call(alice, tool, { job_id: missing });
        assert.match(user.structured["error"] as string, /or it belongs to another user/, tool);
      }
      const bobs = await newJob("bob");
      const own = await call(admin, "list_jobs", {});
      assert.equal(own.isError, false, own.structured["error"] as string);
      const ids = (r: { structured: Record<string, unknown> }) =>
        (r.structured["jobs"] as Record<string, unknown>[]).map((j) => j["job_id"]);
      assert.ok(!ids(own).includes(bobs.jobId), "an admin's list without all_users is its own jobs");
      const every = await call(admin, "list_jobs", { all_users: true, page_size: 100 });
      assert.ok(ids(every).includes(bobs.jobId), "all_users lists every user's jobs");
      for (const tool of ["list_jobs", "get_job_statistics"]) {
        const refused = await call(alice, tool, { all_users: true });
        assert.equal(refused.isError, true);
        const error = refused.structured["error"] as string;
        assert.match(error, /every user's jobs \(all_users\) needs permission 'manage_jobs'/);
        assert.match(error, /Only an admin token reads another user's jobs \(username\) or every user's \(all_users\)/);
        assert.doesNotMatch(error, /leave username empty/);
      }
    } finally {
      await admin.close();
    }
  });

  test("get_job_details: a bad UUID or no job_id is an error result naming job_id, not a protocol error", async () => {
    const bad = await call(alice, "get_job_details", { job_id: "not-a-uuid" });
    assert.equal(bad.isError, true);
    assertSeedValid(bad.structured);
    assert.match(bad.structured["error"] as string, /^job_id 'not-a-uuid' is not a UUID: pass the job_id/);

    const none = await call(alice, "get_job_details", {});
    assert.equal(none.isError, true);
    assert.match(none.structured["error"] as string, /required property 'job_id'/);

    const number = await call(alice, "get_job_details", { job_id: 42 });
    assert.equal(number.isError, true);
    assert.match(number.structured["error"] as string, /job_id must be string/);
  });

  test("the server down, a token without query_repos, and no token: each says what to fix", async () => {
    const port = await freePort();
    const down = await stdioClient({ JOBWATCH_ADDRESS: `127.0.0.1:${port}`, JOBWATCH_TOKEN: server.tokens.alice });
    const service = await stdioClient(env(server.tokens.worker));
    const noToken = await stdioClient({ JOBWATCH_ADDRESS: server.address });
    try {
      const job = await newJob();
      const d = await call(down, "get_job_details", { job_id: job.jobId });
      assert.equal(d.isError, true);
      assertSeedValid(d.structured);
      assert.match(
        d.structured["error"] as string,
        new RegExp(
          `cannot reach the jobwatch server at 127\\.0\\.0\\.1:${port} \\(.*ECONNREFUSED.*\\).*JOBWATCH_ADDRESS`,
        ),
      );

      const s = await call(service, "get_job_details", { job_id: job.jobId });
      assert.equal(s.isError, true);
      assert.match(s.structured["error"] as string, /^permission denied: .*query_repos/);
      assert.doesNotMatch(s.structured["error"] as string, /permission denied: permission denied/);

      const n = await call(noToken, "get_job_details", { job_id: job.jobId });
      assert.equal(n.isError, true);
      assert.match(n.structured["error"] as string, /no jobwatch token .*JOBWATCH_TOKEN/);

      const rejected = await stdioClient(env("jw_000000000000_notatoken"));
      try {
        const r = await call(rejected, "get_job_details", { job_id: job.jobId });
        assert.match(r.structured["error"] as string, /rejected this MCP server's token/);
      } finally {
        await rejected.close();
      }
    } finally {
      await Promise.all([down.close(), service.close(), noToken.close()]);
    }
  });

  test("wait_for_job returns when the job completes, after progress notifications", async () => {
    const job = await newJob();
    const seen: Progress[] = [];
    const waiters: { progress: number; resolve(): void }[] = [];
    const onprogress = (p: Progress): void => {
      seen.push(p);
      for (const w of waiters.filter((w) => p.progress >= w.progress)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    };
    const progressed = (progress: number) =>
      seen.some((p) => p.progress >= progress)
        ? Promise.resolve()
        : new Promise<void>((resolve) => waiters.push({ progress, resolve }));

    const answer = call(alice, "wait_for_job", { job_id: job.jobId, timeout_seconds: 60 }, onprogress);
    await progressed(0);
    await worker.worker.startJob(job.jobId);
    for (const p of [20, 50, 80]) {
      await worker.worker.reportProgress(job.jobId, p, { phase: "semantic", detail: `${p * 5}/500 files indexed` });
      await progressed(p);
    }
    await worker.worker.completeJob(job.jobId, { files: 500 });
    const r = await answer;

    assert.equal(r.isError, false);
    assertSeedValid(r.structured);
    assert.equal(r.structured["timed_out"], false);
    const final = r.structured["job"] as Record<string, unknown>;
    assert.equal(final["status"], "completed");
    assert.deepEqual(final["result"], { files: 500 });
    const values = seen.map((p) => p.progress);
    assert.deepEqual(values.slice(0, 4), [0, 20, 50, 80], "one notification per report, in order");
    assert.ok(
      values.every((v, i) => i === 0 || v > values[i - 1]!),
      `progress only rises: ${values}`,
    );
    assert.ok(seen.every((p) => p.total === 100));
    assert.equal(seen[2]!.message, "running (semantic: 250/500 files indexed)");
  });

  test("wait_for_job returns the job as it is when its timeout passes first; the limits are checked", async () => {
    const job = await newJob();
    await worker.worker.startJob(job.jobId);
    await worker.worker.reportProgress(job.jobId, 30);
    const seen: Progress[] = [];
    const r = await call(alice, "wait_for_job", { job_id: job.jobId, timeout_seconds: 0.5 }, (p) => seen.push(p));
    assert.equal(r.isError, false);
    assertSeedValid(r.structured);
    assert.equal(r.structured["timed_out"], true);
    const current = r.structured["job"] as Record<string, unknown>;
    assert.equal(current["status"], "running");
    assert.equal(current["progress"], 30);
    assert.deepEqual(
      seen.map((p) => p.progress),
      [30],
    );

    const tooLong = await call(alice, "wait_for_job", { job_id: job.jobId, timeout_seconds: 601 });
    assert.equal(tooLong.isError, true);
    assert.match(tooLong.structured["error"] as string, /timeout_seconds must be <= 600/);

    const finished = await newJob();
    await worker.worker.startJob(finished.jobId);
    await worker.worker.failJob(finished.jobId, "boom");
    const done = await call(alice, "wait_for_job", { job_id: finished.jobId });
    assert.equal(done.structured["timed_out"], false);
    assert.equal((done.structured["job"] as Record<string, unknown>)["status"], "failed");
  });

  test("list_jobs filters by status and operation, a page at a time", async () => {
    const a = await worker.worker.createJob({
      operationType: "refresh_golden_repo",
      username: "alice",
      resource: "l1",
    });
    const b = await worker.worker.createJob({
      operationType: "refresh_golden_repo",
      username: "alice",
      resource: "l2",
    });
    const c = await worker.worker.createJob({
      operationType: "refresh_golden_repo",
      username: "alice",
      resource: "l3",
    });
    await worker.worker.startJob(c.jobId);

    const first = await call(alice, "list_jobs", {
      status: ["pending"],
      operation_type: "refresh_golden_repo",
      page_size: 1,
    });
    assert.equal(first.isError, false);
    const page1 = first.structured["jobs"] as Record<string, unknown>[];
    assert.deepEqual(
      page1.map((j) => j["job_id"]),
      [b.jobId],
    );
    assert.equal(typeof first.structured["next_page_token"], "string");
    const second = await call(alice, "list_jobs", {
      status: ["pending"],
      operation_type: "refresh_golden_repo",
      page_size: 1,
      page_token: first.structured["next_page_token"],
    });
    assert.deepEqual(
      (second.structured["jobs"] as Record<string, unknown>[]).map((j) => j["job_id"]),
      [a.jobId],
    );
    for (const j of [...page1, ...(second.structured["jobs"] as Record<string, unknown>[])]) {
      assertSeedValid({ success: true, job: j });
    }

    const wrong = await call(alice, "list_jobs", { status: ["done"] });
    assert.equal(wrong.isError, true);
    assert.match(
      wrong.structured["error"] as string,
      /status\/0 must be one of pending, running, completed, failed, cancelled/,
    );
    const repeated = await call(alice, "list_jobs", {
      status: ["running", "pending", "running", "completed", "failed", "cancelled"],
    });
    assert.equal(repeated.isError, false, repeated.structured["error"] as string);
    const others = await call(alice, "list_jobs", { username: "bob" });
    assert.equal(others.isError, true);
    assert.match(others.structured["error"] as string, /permission denied: .*manage_jobs.*admin token/);
    // Said once: the server's message already starts "permission denied:" and says to leave username empty.
    assert.doesNotMatch(others.structured["error"] as string, /permission denied: permission denied/);
    assert.equal((others.structured["error"] as string).match(/leave username/g)?.length, 1);
  });

  test("get_job_statistics counts the caller's jobs: active, pending, failed, total and the rest", async () => {
    const bob = await stdioClient(env(server.tokens.bob));
    try {
      const before = await call(bob, "get_job_statistics", {});
      assert.equal(before.isError, false);
      const running = await newJob("bob");
      await worker.worker.startJob(running.jobId);
      await newJob("bob");
      const failed = await newJob("bob");
      await worker.worker.startJob(failed.jobId);
      await worker.worker.failJob(failed.jobId, "boom");
      const r = await call(bob, "get_job_statistics", { window_hours: 1 });
      const s = r.structured["statistics"] as Record<string, number>;
      const s0 = before.structured["statistics"] as Record<string, number>;
      assert.equal(s["active"]! - s0["active"]!, 1);
      assert.equal(s["running"]! - s0["running"]!, 1);
      assert.equal(s["pending"]! - s0["pending"]!, 1);
      assert.equal(s["failed"]! - s0["failed"]!, 1);
      assert.equal(s["total"]! - s0["total"]!, 3);
      assert.equal(s["finished_in_window"], 1);
      assert.equal(s["success_rate"], 0);
      assert.equal(typeof s["p50_duration_seconds"], "number");
      assert.ok((s["by_operation_type"] as unknown as Record<string, number>)["add_golden_repo"]! >= 3);
      // The one job finished in the window, by its type: the same figures as the window's.
      assert.deepEqual((s["durations_by_operation_type"] as unknown as Record<string, unknown>)["add_golden_repo"], {
        finished: 1,
        p50_duration_seconds: s["p50_duration_seconds"],
        p95_duration_seconds: s["p95_duration_seconds"],
      });
    } finally {
      await bob.close();
    }
  });

  test("cancel_job: a pending job ends cancelled, a running one gets a request, a completed one cannot", async () => {
    const pending = await newJob();
    const p = await call(alice, "cancel_job", { job_id: pending.jobId, reason: "not needed" });
    assert.equal(p.isError, false);
    assert.equal((p.structured["job"] as Record<string, unknown>)["status"], "cancelled");
    assert.equal(p.structured["cancel_requested"], false);

    const running = await newJob();
    await worker.worker.startJob(running.jobId);
    const r = await call(alice, "cancel_job", { job_id: running.jobId });
    assert.equal((r.structured["job"] as Record<string, unknown>)["status"], "running");
    assert.equal(r.structured["cancel_requested"], true);

    const completed = await newJob();
    await worker.worker.startJob(completed.jobId);
    await worker.worker.completeJob(completed.jobId, {});
    const c = await call(alice, "cancel_job", { job_id: completed.jobId });
    assert.equal(c.isError, true);
    assert.match(
      c.structured["error"] as string,
      new RegExp(`job ${completed.jobId} cannot be changed that way: .*COMPLETED`),
    );
  });

  test("over Streamable HTTP: the same tools, progress included; loopback hosts only", async () => {
    const mcp = start(["mcp", "--http", "127.0.0.1:0"], { env: env(server.tokens.alice) });
    try {
      await mcp.waitFor(/on (http:\/\/\S+\/mcp)/);
      const url = /on (http:\/\/\S+\/mcp)/.exec(mcp.stdout)![1]!;
      const client = new Client({ name: "jobwatch-test-http", version: "1.0.0" });
      await client.connect(new StreamableHTTPClientTransport(new URL(url)));
      try {
        const { tools } = await client.listTools();
        const tool = tools.find((t) => t.name === "get_job_details")!;
        assert.deepEqual(tool.outputSchema, SEED_OUTPUT);
        const job = await newJob();
        const r = await call(client, "get_job_details", { job_id: job.jobId });
        assertSeedValid(r.structured);
        assert.equal((r.structured["job"] as Record<string, unknown>)["status"], "pending");

        const seen: Progress[] = [];
        const answer = call(client, "wait_for_job", { job_id: job.jobId }, (p) => seen.push(p));
        await worker.worker.startJob(job.jobId);
        await worker.worker.completeJob(job.jobId, { ok: true });
        const w = await answer;
        assert.equal((w.structured["job"] as Record<string, unknown>)["status"], "completed");
        assert.ok(seen.length >= 1, "progress notifications arrive on the call's stream");
      } finally {
        await client.close();
      }

      const foreign = await new Promise<number>((resolve, reject) => {
        const req = httpRequest(url, {
          method: "POST",
          headers: { host: "attacker.example:80", "content-type": "application/json", accept: "application/json" },
        });
        req.on("response", (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on("error", reject);
        req.end(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }));
      });
      assert.equal(foreign, 403, "a request for another host name (DNS rebinding) is refused");
    } finally {
      mcp.child.kill("SIGTERM");
      assert.equal(await mcp.exited, 0, mcp.stderr);
    }

    const open = await cli(["mcp", "--http", "0.0.0.0:0"], { env: env(server.tokens.alice) });
    assert.equal(open.code, 1);
    assert.match(open.stderr, /'0\.0\.0\.0' is not a loopback address/);
  });
  test("stdio: a line that is not JSON gets -32700, JSON that is not a message -32600 (id null), and the session goes on", async () => {
    const line = cliCommand(["mcp"]);
    const child = spawn(line.command, line.args, {
      env: { ...process.env, ...env(server.tokens.alice) },
      stdio: ["pipe", "pipe", "ignore"],
    });
    const replies = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
    const next = async (): Promise<Record<string, unknown>> => JSON.parse((await replies.next()).value as string);
    try {
      child.stdin!.write("this is not json\n");
      const parse = await next();
      assert.equal(parse["id"], null);
      assert.equal((parse["error"] as { code: number }).code, -32700);
      assert.match((parse["error"] as { message: string }).message, /^Parse error: the line is not JSON/);
      child.stdin!.write(`${JSON.stringify({ hello: "world" })}\n`);
      const invalid = await next();
      assert.equal(invalid["id"], null);
      assert.equal((invalid["error"] as { code: number }).code, -32600);
      const init = {
        jsonrpc: "2.0",
        id: 1,
        method: "initialize",
        params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "raw", version: "1" } },
      };
      child.stdin!.write(`${JSON.stringify(init)}\n`);
      const initialized = await next();
      assert.equal(initialized["id"], 1);
      assert.equal((initialized["result"] as { serverInfo: { name: string } }).serverInfo.name, "jobwatch");
    } finally {
      child.stdin!.end();
      await new Promise((resolve) => child.once("exit", resolve));
    }
  });
});
