// ListJobs: pages without repeats or gaps, filters, scope by user, page tokens, and the errors of each.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { describe, test } from "node:test";
import { BinaryWriter } from "@bufbuild/protobuf/wire";
import * as grpc from "@grpc/grpc-js";
import { Timestamp } from "../src/gen/google/protobuf/timestamp.js";
import { JobStatus } from "../src/gen/jobwatch/v1/job.js";
import { ListJobsResponse } from "../src/gen/jobwatch/v1/job_service.js";
import { DIALECTS } from "./helpers/databases.js";
import { expectCode, RUNNING, serverSuite, violation } from "./helpers/rpc.js";
import type { TestServer } from "./helpers/server.js";

/**
 * ListJobs with created_after / created_before given as raw Timestamp seconds: what a client in another
 * language may send, and beyond what a JavaScript Date (and so the generated client) can hold.
 */
function listJobsBySeconds(
  server: TestServer,
  token: string,
  seconds: { after?: number; before?: number },
): Promise<ListJobsResponse> {
  const writer = new BinaryWriter();
  if (seconds.after !== undefined)
    Timestamp.encode({ seconds: seconds.after, nanos: 0 }, writer.uint32(26).fork()).join();
  if (seconds.before !== undefined)
    Timestamp.encode({ seconds: seconds.before, nanos: 0 }, writer.uint32(34).fork()).join();
  const metadata = new grpc.Metadata();
  metadata.set("authorization", `Bearer ${token}`);
  return new Promise((resolve, reject) => {
    server.jobClient.makeUnaryRequest(
      "/jobwatch.v1.JobService/ListJobs",
      (body: Buffer) => body,
      (bytes: Buffer) => ListJobsResponse.decode(bytes),
      Buffer.from(writer.finish()),
      metadata,
      (error, response) => (error ? reject(error) : resolve(response!)),
    );
  });
}

for (const dialect of DIALECTS) {
  describe(`jobwatch server (${dialect})`, () => {
    const suite = serverSuite(dialect);
    const { worker, jobsOf, create } = suite;

    describe("ListJobs", () => {
      test("pages newest first without repeats or gaps while jobs are created, and only the caller's", async () => {
        const op = `list_${randomUUID().slice(0, 8)}`;
        const ids: string[] = [];
        for (let batch = 0; batch < 10; batch++) {
          const made = await Promise.all(Array.from({ length: 25 }, () => create("alice", op)));
          ids.push(...made.map((j) => j.jobId));
        }
        await create("bob", op);
        const seen: string[] = [];
        let pageToken = "";
        let pages = 0;
        // After the first page a worker keeps creating alice's jobs while she pages: they are newer than the
        // cursor and must not appear, nor push older jobs into a repeat or a gap.
        let creating = true;
        let creator: Promise<number> | undefined;
        do {
          const page = await jobsOf(suite.server.tokens.alice).listJobs({ operationType: op, pageToken });
          seen.push(...page.jobs.map((j) => j.jobId));
          assert.ok(page.jobs.every((j) => j.username === "alice"));
          pageToken = page.nextPageToken;
          pages++;
          creator ??= (async () => {
            let made = 0;
            while (creating || made === 0) {
              await create("alice", op);
              made++;
            }
            return made;
          })();
        } while (pageToken !== "");
        creating = false;
        assert.ok((await creator) > 0);
        assert.equal(pages, 5, "250 jobs in pages of the default 50");
        assert.deepEqual([...seen].sort(), [...ids].sort());
        assert.equal(new Set(seen).size, seen.length);
        const { jobs } = await jobsOf(suite.server.tokens.alice).listJobs({ operationType: op });
        for (let i = 1; i < jobs.length; i++) {
          const a = jobs[i - 1]!;
          const b = jobs[i]!;
          assert.ok(
            a.createdAt!.getTime() > b.createdAt!.getTime() ||
              (a.createdAt!.getTime() === b.createdAt!.getTime() && a.jobId > b.jobId),
          );
        }
      });

      test("filters by status, and admins by username", async () => {
        const op = `filter_${randomUUID().slice(0, 8)}`;
        const running = await create("alice", op);
        await worker().startJob({ jobId: running.jobId });
        await create("alice", op);
        await create("bob", op);
        const { jobs } = await jobsOf(suite.server.tokens.alice).listJobs({ operationType: op, statuses: [RUNNING] });
        assert.deepEqual(
          jobs.map((j) => j.jobId),
          [running.jobId],
        );
        const all = await jobsOf(suite.server.tokens.admin).listJobs({ operationType: op, allUsers: true });
        assert.equal(all.jobs.length, 3);
        const bobs = await jobsOf(suite.server.tokens.admin).listJobs({ operationType: op, username: "bob" });
        assert.deepEqual(
          bobs.jobs.map((j) => j.username),
          ["bob"],
        );
      });

      test("errors: negative page_size, a token from another query, username without manage_jobs, bad time range", async () => {
        const negative = await expectCode(
          jobsOf(suite.server.tokens.alice).listJobs({ pageSize: -1 }),
          grpc.status.INVALID_ARGUMENT,
        );
        violation(negative, "page_size");
        const op = `token_${randomUUID().slice(0, 8)}`;
        await create("alice", op);
        await create("alice", op);
        const first = await jobsOf(suite.server.tokens.alice).listJobs({ operationType: op, pageSize: 1 });
        assert.notEqual(first.nextPageToken, "");
        const foreign = await expectCode(
          jobsOf(suite.server.tokens.alice).listJobs({
            operationType: "other",
            pageSize: 1,
            pageToken: first.nextPageToken,
          }),
          grpc.status.INVALID_ARGUMENT,
        );
        assert.match(violation(foreign, "page_token"), /other filters/);
        const garbage = await expectCode(
          jobsOf(suite.server.tokens.alice).listJobs({ pageToken: "not a token" }),
          grpc.status.INVALID_ARGUMENT,
        );
        violation(garbage, "page_token");
        const denied = await expectCode(
          jobsOf(suite.server.tokens.alice).listJobs({ username: "bob" }),
          grpc.status.PERMISSION_DENIED,
        );
        assert.match(denied.details, /manage_jobs/);
        const range = await expectCode(
          jobsOf(suite.server.tokens.alice).listJobs({ createdAfter: new Date(2000), createdBefore: new Date(1000) }),
          grpc.status.INVALID_ARGUMENT,
        );
        violation(range, "created_after");
      });

      test("a status filter with UNSPECIFIED or an unknown number is INVALID_ARGUMENT listing the statuses to use", async () => {
        const allowed =
          /may contain only JOB_STATUS_PENDING, JOB_STATUS_RUNNING, JOB_STATUS_COMPLETED, JOB_STATUS_FAILED, JOB_STATUS_CANCELLED; leave it empty for every status/;
        const unspecified = await expectCode(
          jobsOf(suite.server.tokens.alice).listJobs({ statuses: [JobStatus.JOB_STATUS_UNSPECIFIED] }),
          grpc.status.INVALID_ARGUMENT,
        );
        assert.match(violation(unspecified, "statuses"), allowed);
        assert.match(violation(unspecified, "statuses"), /got JOB_STATUS_UNSPECIFIED$/);
        const both = await expectCode(
          jobsOf(suite.server.tokens.alice).listJobs({
            statuses: [RUNNING, JobStatus.JOB_STATUS_UNSPECIFIED, 9 as JobStatus],
          }),
          grpc.status.INVALID_ARGUMENT,
        );
        assert.match(violation(both, "statuses"), /got JOB_STATUS_UNSPECIFIED, unknown number 9$/);
      });

      test("created_after / created_before outside Timestamp's range are INVALID_ARGUMENT naming the field", async () => {
        const range = /must be a time from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z, or unset; got /;
        // Far outside even a JavaScript Date: without the check this reached the query as NaN.
        const far = await expectCode(
          listJobsBySeconds(suite.server, suite.server.tokens.alice, { after: 1e13 }),
          grpc.status.INVALID_ARGUMENT,
        );
        assert.match(violation(far, "created_after"), range);
        const farBefore = await expectCode(
          listJobsBySeconds(suite.server, suite.server.tokens.alice, { before: -1e13 }),
          grpc.status.INVALID_ARGUMENT,
        );
        assert.match(violation(farBefore, "created_before"), range);
        // A Date can hold it, a Timestamp cannot.
        const year10000 = await expectCode(
          listJobsBySeconds(suite.server, suite.server.tokens.alice, { after: 0, before: 253_402_300_800 }),
          grpc.status.INVALID_ARGUMENT,
        );
        assert.match(violation(year10000, "created_before"), /got \+010000-01-01T00:00:00.000Z$/);
        // The ends of the range themselves are fine.
        const job = await create("alice");
        const { jobs } = await listJobsBySeconds(suite.server, suite.server.tokens.alice, {
          after: -62_135_596_800,
          before: 253_402_300_799,
        });
        assert.ok(jobs.some((j) => j.jobId === job.jobId));
      });

      test("page_size above 100 is clamped to 100", async () => {
        const { jobs } = await jobsOf(suite.server.tokens.admin).listJobs({ pageSize: 1000, allUsers: true });
        assert.ok(jobs.length <= 100);
      });
    });
  });
}
