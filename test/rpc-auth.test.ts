// Every rpc's token and permission check as a client sees it: UNAUTHENTICATED, PERMISSION_DENIED, no impersonation.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { DIALECTS } from "./helpers/databases.js";
import { expectCode, notFound, serverSuite } from "./helpers/rpc.js";
import { errorInfoOf } from "./helpers/server.js";

for (const dialect of DIALECTS) {
  describe(`jobwatch server (${dialect})`, () => {
    const suite = serverSuite(dialect);
    const { jobsOf, create } = suite;

    describe("authentication and permissions", () => {
      test("a call without a token is UNAUTHENTICATED and says how to send one", async () => {
        const error = await expectCode(
          suite.server.as(undefined).jobs.getJobDetails({ jobId: randomUUID() }),
          grpc.status.UNAUTHENTICATED,
        );
        assert.match(error.details, /authorization: Bearer/);
      });

      test("an unknown or malformed token is UNAUTHENTICATED", async () => {
        await expectCode(
          suite.server.as(`jw_000000000000_${"A".repeat(43)}`).jobs.getJobDetails({ jobId: randomUUID() }),
          grpc.status.UNAUTHENTICATED,
        );
        await expectCode(
          suite.server.as("not-a-token").jobs.getJobDetails({ jobId: randomUUID() }),
          grpc.status.UNAUTHENTICATED,
        );
        await expectCode(
          suite.server.as("not-a-token").worker.createJob({ operationType: "x", username: "y" }),
          grpc.status.UNAUTHENTICATED,
        );
      });

      test("a role without the rpc's permission is PERMISSION_DENIED naming the permission", async () => {
        const asAlice = await expectCode(
          suite.server.as(suite.server.tokens.alice).worker.createJob({ operationType: "x", username: "alice" }),
          grpc.status.PERMISSION_DENIED,
        );
        assert.match(asAlice.details, /report_jobs/);
        // The interceptor's rejections carry the same typed detail as a handler's.
        assert.equal(errorInfoOf(asAlice)?.reason, "MISSING_PERMISSION");
        assert.equal(errorInfoOf(asAlice)?.metadata.permission, "report_jobs");
        const asWorker = await expectCode(
          jobsOf(suite.server.tokens.worker).getJobDetails({ jobId: randomUUID() }),
          grpc.status.PERMISSION_DENIED,
        );
        assert.match(asWorker.details, /query_repos/);
      });

      test("a client-sent principal header impersonates nobody", async () => {
        const bobs = await create("bob");
        const forged = JSON.stringify({ tokenId: "000000000000", username: "admin", role: "admin" });
        const impostor = suite.server.as(suite.server.tokens.alice, { "x-jobwatch-principal": forged });
        const error = await expectCode(impostor.jobs.getJobDetails({ jobId: bobs.jobId }), grpc.status.NOT_FOUND);
        assert.equal(error.details, notFound(bobs.jobId));
        const forgedAsBob = JSON.stringify({ tokenId: "000000000000", username: "bob", role: "normal_user" });
        await expectCode(
          suite.server
            .as(suite.server.tokens.alice, { "x-jobwatch-principal": forgedAsBob })
            .jobs.getJobDetails({ jobId: bobs.jobId }),
          grpc.status.NOT_FOUND,
        );
        const { jobs } = await impostor.jobs.listJobs({ pageSize: 100 });
        assert.ok(jobs.every((j) => j.username === "alice"));
        // And a worker role cannot be claimed either.
        await expectCode(impostor.worker.startJob({ jobId: bobs.jobId }), grpc.status.PERMISSION_DENIED);
      });
    });
  });
}
