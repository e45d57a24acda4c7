// The dashboard's HTTP side without a browser: sign-in cookies (HttpOnly, SameSite=Strict), CSRF, and
// JobService over Connect answering exactly as over gRPC (the same permission table, visibility, errors).
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import type { Client, Interceptor } from "@connectrpc/connect";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { JobNotFoundError, PermissionDeniedError, JobStatus as ProtoStatus } from "../src/client/index.js";
import { CONTRACT_REGISTRY } from "../src/server/contract.js";
import { JobStatus } from "../web/src/gen/jobwatch/v1/job_pb.js";
import { JobService, WatchJobsEventType, WatchJobsRequestSchema } from "../web/src/gen/jobwatch/v1/job_service_pb.js";
import { DIALECTS } from "./helpers/databases.js";
import type { WebService } from "./helpers/web.js";
import { startWebService } from "./helpers/web.js";

/** A signed-in browser, as far as HTTP goes: its cookies, sent back on every request. */
interface Session {
  cookies: Map<string, { value: string; attributes: string }>;
  header(): string;
}

function sessionFrom(response: Response): Session {
  const cookies = new Map<string, { value: string; attributes: string }>();
  for (const line of response.headers.getSetCookie()) {
    const [pair = "", ...rest] = line.split("; ");
    const eq = pair.indexOf("=");
    cookies.set(pair.slice(0, eq), { value: pair.slice(eq + 1), attributes: rest.join("; ") });
  }
  return {
    cookies,
    header: () => [...cookies].map(([name, c]) => `${name}=${c.value}`).join("; "),
  };
}

async function signIn(web: WebService, token: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${web.url}/auth/sign-in`, {
    method: "POST",
    headers: { "content-type": "application/json", origin: web.url, ...headers },
    body: JSON.stringify({ token }),
  });
}

/** JobService over Connect with the session's cookies; `csrf: false` leaves the CSRF header out. */
function connectClient(web: WebService, session: Session, csrf = true): Client<typeof JobService> {
  const withCookies: Interceptor = (next) => (request) => {
    request.header.set("cookie", session.header());
    if (csrf) request.header.set("x-csrf-token", session.cookies.get("jobwatch_csrf")?.value ?? "");
    return next(request);
  };
  return createClient(
    JobService,
    createConnectTransport({
      baseUrl: `${web.url}/api`,
      httpVersion: "1.1",
      useBinaryFormat: true,
      interceptors: [withCookies],
    }),
  );
}

/** The google.rpc detail types, from the contract's descriptor set (reflection serves the same). */
const BadRequestSchema = CONTRACT_REGISTRY.getMessage("google.rpc.BadRequest")!;
const ErrorInfoSchema = CONTRACT_REGISTRY.getMessage("google.rpc.ErrorInfo")!;

async function connectFailure(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (error) {
    if (error instanceof ConnectError) return error;
    throw error;
  }
  assert.fail("the call succeeded");
}

for (const dialect of DIALECTS) {
  describe(`web dashboard API (${dialect})`, () => {
    let web: WebService;
    let aliceJob: string;
    let bobJob: string;
    let alice: Session;

    before(async () => {
      web = await startWebService({ dialect });
      aliceJob = (await web.worker.worker.createJob({ operationType: "web_api", username: "alice", resource: "a" }))
        .jobId;
      bobJob = (await web.worker.worker.createJob({ operationType: "web_api", username: "bob", resource: "b" })).jobId;
      const response = await signIn(web, web.tokens.alice);
      assert.equal(response.status, 200);
      alice = sessionFrom(response);
    });
    after(async () => {
      await web?.close();
    });

    test("sign-in answers who signed in and sets an HttpOnly SameSite=Strict session cookie and a CSRF cookie", async () => {
      const response = await signIn(web, web.tokens.alice);
      const body = await response.text();
      assert.deepEqual(JSON.parse(body), { username: "alice", role: "normal_user", canManageJobs: false });
      assert.ok(!body.includes(web.tokens.alice), "the token is not echoed");
      const session = sessionFrom(response).cookies.get("jobwatch_session")!;
      assert.match(session.attributes, /HttpOnly/);
      assert.match(session.attributes, /SameSite=Strict/);
      assert.match(session.attributes, /Max-Age=28800/);
      const csrf = sessionFrom(response).cookies.get("jobwatch_csrf")!;
      assert.doesNotMatch(csrf.attributes, /HttpOnly/, "the page reads the CSRF token");
      assert.match(csrf.attributes, /SameSite=Strict/);
      assert.ok(csrf.value.length >= 32);
      assert.equal(response.headers.get("cache-control"), "no-store");
    });

    test("sign-in refuses a bad token, a worker's token, another site, and a body that is not JSON", async () => {
      const bad = await signIn(web, "jw_nope_nope");
      assert.equal(bad.status, 401);
      assert.match(((await bad.json()) as { error: string }).error, /malformed token|token rejected/);
      const worker = await signIn(web, web.tokens.worker);
      assert.equal(worker.status, 403);
      assert.match(((await worker.json()) as { error: string }).error, /role 'service' cannot read jobs/);
      const crossSite = await signIn(web, web.tokens.alice, { origin: "https://evil.example" });
      assert.equal(crossSite.status, 403);
      assert.equal(crossSite.headers.getSetCookie().length, 0);
      const form = await fetch(`${web.url}/auth/sign-in`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: `token=${web.tokens.alice}`,
      });
      assert.equal(form.status, 415);
    });

    test("/auth/session names the signed-in user; without the cookie it is 401", async () => {
      const me = await fetch(`${web.url}/auth/session`, { headers: { cookie: alice.header() } });
      assert.equal(me.status, 200);
      assert.equal(((await me.json()) as { username: string }).username, "alice");
      const anonymous = await fetch(`${web.url}/auth/session`);
      assert.equal(anonymous.status, 401);
    });

    test("a call with the session cookie but without the CSRF header is UNAUTHENTICATED", async () => {
      const error = await connectFailure(connectClient(web, alice, false).getJobDetails({ jobId: aliceJob }));
      assert.equal(error.code, Code.Unauthenticated);
      assert.match(error.rawMessage, /x-csrf-token/);
      const noCookie = await connectFailure(
        connectClient(web, { cookies: new Map(), header: () => "" }).getJobDetails({ jobId: aliceJob }),
      );
      assert.equal(noCookie.code, Code.Unauthenticated);
      assert.match(noCookie.rawMessage, /not signed in/);
    });

    test("a user reads their own job; another user's job is NOT_FOUND with gRPC's very message", async () => {
      const client = connectClient(web, alice);
      const own = await client.getJobDetails({ jobId: aliceJob });
      assert.equal(own.job?.jobId, aliceJob);
      assert.equal(own.job?.status, JobStatus.PENDING);
      assert.equal(own.job?.username, "alice");
      const hidden = await connectFailure(client.getJobDetails({ jobId: bobJob }));
      assert.equal(hidden.code, Code.NotFound);
      const overGrpc = await web
        .client(web.tokens.alice)
        .getJob(bobJob)
        .then(
          () => assert.fail("bob's job was readable over gRPC"),
          (error: unknown) => error,
        );
      assert.ok(overGrpc instanceof JobNotFoundError);
      assert.equal(hidden.rawMessage, `job ${bobJob} not found (finished jobs are removed after the retention period)`);
    });

    test("bad input and missing permissions carry the same status, message and details as over gRPC", async () => {
      const client = connectClient(web, alice);
      const invalid = await connectFailure(client.getJobDetails({ jobId: "nope" }));
      assert.equal(invalid.code, Code.InvalidArgument);
      assert.match(invalid.rawMessage, /^job_id: must be a UUID/);
      const [violations] = invalid.findDetails(BadRequestSchema) as unknown as {
        fieldViolations: { field: string }[];
      }[];
      assert.equal(violations?.fieldViolations[0]?.field, "job_id");
      const others = await connectFailure(client.listJobs({ username: "bob" }));
      assert.equal(others.code, Code.PermissionDenied);
      const [info] = others.findDetails(ErrorInfoSchema) as unknown as { metadata: Record<string, string> }[];
      assert.equal(info?.metadata.permission, "manage_jobs");
      const grpcError = await web
        .client(web.tokens.alice)
        .listJobs({ username: "bob" })
        .then(
          () => assert.fail("listing bob's jobs worked over gRPC"),
          (error: unknown) => error,
        );
      assert.ok(grpcError instanceof PermissionDeniedError);
      assert.equal(others.rawMessage, grpcError.message);
      const all = await connectFailure(
        client
          .watchJobs(create(WatchJobsRequestSchema, { allUsers: true }))
          [Symbol.asyncIterator]()
          .next(),
      );
      assert.equal(all.code, Code.PermissionDenied);
      assert.match(all.rawMessage, /needs permission 'manage_jobs'/);
    });

    test("a user's WatchJobs stream carries their jobs' changes and never another user's", async () => {
      const controller = new AbortController();
      const stream = connectClient(web, alice).watchJobs(create(WatchJobsRequestSchema, {}), {
        signal: controller.signal,
      });
      const seen: { type: WatchJobsEventType; ids: string[]; status: JobStatus[] }[] = [];
      let synced!: () => void;
      const open = new Promise<void>((resolve) => (synced = resolve));
      const reading = (async () => {
        for await (const message of stream) {
          if (message.type === WatchJobsEventType.SYNCED) synced();
          seen.push({
            type: message.type,
            ids: message.jobs.map((j) => j.jobId),
            status: message.jobs.map((j) => j.status),
          });
          if (message.type === WatchJobsEventType.CHANGED && message.jobs.some((j) => j.status === JobStatus.RUNNING))
            break;
        }
      })();
      // Once the stream is open (else the start could come in its snapshot, and no change would follow).
      await open;
      // Bob's job changes first: alice's stream must not carry it.
      await web.worker.worker.startJob(bobJob);
      await web.worker.worker.startJob(aliceJob);
      await reading;
      controller.abort();
      assert.equal(seen[0]?.type, WatchJobsEventType.SNAPSHOT);
      assert.ok(seen.some((m) => m.type === WatchJobsEventType.SYNCED));
      assert.ok(
        seen.every((m) => !m.ids.includes(bobJob)),
        "bob's job reached alice's stream",
      );
      const changed = seen.filter((m) => m.type === WatchJobsEventType.CHANGED);
      assert.deepEqual(changed.at(-1), {
        type: WatchJobsEventType.CHANGED,
        ids: [aliceJob],
        status: [JobStatus.RUNNING],
      });
      const details = await web.client(web.tokens.alice).getJob(aliceJob);
      assert.equal(details.status, ProtoStatus.JOB_STATUS_RUNNING);
    });

    test("a resumed WatchJobs stream says it is connected at once, with a bookmark at its cursor", async () => {
      const client = connectClient(web, alice);
      let cursor = "";
      for await (const message of client.watchJobs(create(WatchJobsRequestSchema, {}))) {
        cursor = message.cursor;
        if (message.type === WatchJobsEventType.SYNCED) break;
      }
      const started = Date.now();
      for await (const message of client.watchJobs(create(WatchJobsRequestSchema, { afterCursor: cursor }))) {
        assert.equal(message.type, WatchJobsEventType.BOOKMARK);
        assert.equal(message.cursor, cursor);
        assert.equal(message.jobs.length, 0);
        break;
      }
      assert.ok(Date.now() - started < 5000, "the first message came at once, not at the bookmark interval");
    });

    test("sign-out needs the CSRF header, then clears both cookies", async () => {
      const response = await signIn(web, web.tokens.bob);
      const bob = sessionFrom(response);
      const forged = await fetch(`${web.url}/auth/sign-out`, { method: "POST", headers: { cookie: bob.header() } });
      assert.equal(forged.status, 403);
      const out = await fetch(`${web.url}/auth/sign-out`, {
        method: "POST",
        headers: { cookie: bob.header(), "x-csrf-token": bob.cookies.get("jobwatch_csrf")!.value },
      });
      assert.equal(out.status, 204);
      const cleared = sessionFrom(out);
      assert.equal(cleared.cookies.get("jobwatch_session")?.value, "");
      assert.match(cleared.cookies.get("jobwatch_session")?.attributes ?? "", /Max-Age=0/);
    });

    test("calls that are no Connect client's, and the worker service, are not served", async () => {
      const plain = await fetch(`${web.url}/api/jobwatch.v1.JobService/GetJobDetails`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          cookie: alice.header(),
          "x-csrf-token": alice.cookies.get("jobwatch_csrf")!.value,
        },
        body: JSON.stringify({ jobId: aliceJob }),
      });
      assert.equal(plain.status, 400, "no Connect-Protocol-Version header");
      const worker = await fetch(`${web.url}/api/jobwatch.v1.JobWorkerService/CreateJob`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "connect-protocol-version": "1",
          authorization: `Bearer ${web.tokens.admin}`,
        },
        body: JSON.stringify({ operationType: "x", username: "alice" }),
      });
      assert.equal(worker.status, 404);
    });

    test("scripts may send their token in an authorization header instead of a cookie (no CSRF then)", async () => {
      const response = await fetch(`${web.url}/api/jobwatch.v1.JobService/GetJobDetails`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "connect-protocol-version": "1",
          authorization: `Bearer ${web.tokens.alice}`,
        },
        body: JSON.stringify({ jobId: aliceJob }),
      });
      assert.equal(response.status, 200);
      assert.equal(((await response.json()) as { job: { jobId: string } }).job.jobId, aliceJob);
    });
  });
}
