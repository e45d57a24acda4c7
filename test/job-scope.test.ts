// The one scope rule of the rpcs that read many jobs (ListJobs, GetJobStatistics, WatchJobs), per rpc and caller,
// and the NOT_FOUND of the rpcs that read one job saying which jobs the caller sees.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { before, describe, test } from "node:test";
import type { ServiceError } from "@grpc/grpc-js";
import * as grpc from "@grpc/grpc-js";
import { WatchJobsEventType, WatchJobsRequest, type WatchJobsResponse } from "../src/gen/jobwatch/v1/job_service.js";
import { DIALECTS } from "./helpers/databases.js";
import { expectCode, serverSuite, violation } from "./helpers/rpc.js";
import { errorInfoOf, failure, type TestServer } from "./helpers/server.js";

/** What a scope asks for: the request's username and all_users. */
interface Scope {
  username?: string;
  allUsers?: boolean;
}

/** The ids of the jobs of operation `op` an rpc returns for `scope`, as the holder of `token`. */
type Reader = (s: TestServer, token: string, op: string, scope: Scope) => Promise<string[]>;

/** The jobs of WatchJobs' snapshot (until SYNCED), then the stream is cancelled. */
function watchSnapshot(s: TestServer, token: string, op: string, scope: Scope): Promise<string[]> {
  const metadata = new grpc.Metadata();
  metadata.set("authorization", `Bearer ${token}`);
  const call = s.jobClient.watchJobs(WatchJobsRequest.fromPartial({ operationType: op, ...scope }), metadata);
  const ids: string[] = [];
  return new Promise((resolve, reject) => {
    call.on("data", (message: WatchJobsResponse) => {
      ids.push(...message.jobs.map((j) => j.jobId));
      if (message.type === WatchJobsEventType.WATCH_JOBS_EVENT_TYPE_SYNCED) {
        call.removeAllListeners("error");
        call.on("error", () => undefined);
        call.cancel();
        resolve(ids);
      }
    });
    call.on("error", reject);
  });
}

const READERS: Record<string, Reader> = {
  ListJobs: async (s, token, op, scope) =>
    (await s.as(token).jobs.listJobs({ operationType: op, pageSize: 100, ...scope })).jobs.map((j) => j.jobId),
  // Statistics count jobs: one operation type's count stands for its jobs (each test uses its own type).
  GetJobStatistics: async (s, token, op, scope) => {
    const stats = await s.as(token).jobs.getJobStatistics(scope);
    return Array.from({ length: stats.byOperationType[op] ?? 0 }, (_, i) => `${op}#${i}`);
  },
  WatchJobs: watchSnapshot,
};

for (const dialect of DIALECTS) {
  describe(`one scope rule (${dialect})`, () => {
    const suite = serverSuite(dialect);
    const { create } = suite;

    for (const [rpc, read] of Object.entries(READERS)) {
      describe(rpc, () => {
        const op = `scope_${rpc}_${randomUUID().slice(0, 8)}`;
        const made: Record<string, string[]> = { admin: [], alice: [], bob: [] };
        before(async () => {
          for (const user of ["admin", "alice", "alice", "bob"]) made[user]!.push((await create(user, op)).jobId);
        });
        /** What `read` gives, as ids, or (for statistics) as many placeholders as jobs counted. */
        const expected = (users: string[]): string[] | number => {
          const ids = users.flatMap((u) => made[u]!);
          return rpc === "GetJobStatistics" ? ids.length : ids.sort();
        };
        const got = async (token: string, scope: Scope): Promise<string[] | number> => {
          const ids = await read(suite.server, token, op, scope);
          return rpc === "GetJobStatistics" ? ids.length : ids.sort();
        };

        test("an empty username is the caller's own jobs, for an admin too", async () => {
          const { tokens } = suite.server;
          assert.deepEqual(await got(tokens.admin, {}), expected(["admin"]));
          assert.deepEqual(await got(tokens.alice, {}), expected(["alice"]));
          assert.deepEqual(await got(tokens.alice, { username: "alice" }), expected(["alice"]));
        });

        test("all_users is every user's, username one user's: with manage_jobs", async () => {
          const { tokens } = suite.server;
          assert.deepEqual(await got(tokens.admin, { allUsers: true }), expected(["admin", "alice", "bob"]));
          assert.deepEqual(await got(tokens.admin, { username: "bob" }), expected(["bob"]));
        });

        test("without manage_jobs: PERMISSION_DENIED naming it, with advice that fits the request", async () => {
          const { tokens } = suite.server;
          const other = await expectCode(got(tokens.alice, { username: "bob" }), grpc.status.PERMISSION_DENIED);
          assert.equal(errorInfoOf(other)?.metadata["permission"], "manage_jobs");
          assert.match(other.details, /another user's jobs needs permission 'manage_jobs'.*leave username empty/);
          const everyone = await expectCode(got(tokens.alice, { allUsers: true }), grpc.status.PERMISSION_DENIED);
          assert.equal(errorInfoOf(everyone)?.metadata["permission"], "manage_jobs");
          assert.match(everyone.details, /every user's jobs \(all_users\) needs permission 'manage_jobs'/);
          assert.match(everyone.details, /without all_users you get your own jobs/);
          assert.doesNotMatch(everyone.details, /leave username empty/);
        });

        test("all_users with a username is INVALID_ARGUMENT on all_users", async () => {
          const { tokens } = suite.server;
          for (const token of [tokens.admin, tokens.alice]) {
            const error = await expectCode(
              got(token, { allUsers: true, username: "bob" }),
              grpc.status.INVALID_ARGUMENT,
            );
            assert.match(violation(error, "all_users"), /cannot be combined with username/);
          }
        });
      });
    }

    describe("NOT_FOUND says which jobs the caller sees", () => {
      let bobs: string;
      before(async () => {
        bobs = (await create("bob")).jobId;
      });
      /** Each rpc that reads one job, failing for `jobId` as the holder of `token`. */
      const calls = (s: TestServer, token: string, jobId: string): Record<string, () => Promise<unknown>> => ({
        GetJobDetails: () => s.as(token).jobs.getJobDetails({ jobId }),
        CancelJob: () => s.as(token).jobs.cancelJob({ jobId }),
        GetJobHistory: () => s.as(token).jobs.getJobHistory({ jobId }),
        WatchJob: () =>
          s.watch(token, { jobId }).done.then((end) => {
            if (end.error) throw end.error;
          }),
      });

      test("an admin: all_jobs for a missing job; a user: own_jobs for a missing or another user's job", async () => {
        const s = suite.server;
        const missing = randomUUID();
        const cases: [string, string, string][] = [
          [s.tokens.admin, missing, "all_jobs"],
          [s.tokens.alice, missing, "own_jobs"],
          [s.tokens.alice, bobs, "own_jobs"],
        ];
        for (const [token, jobId, sees] of cases) {
          for (const [rpc, call] of Object.entries(calls(s, token, jobId))) {
            const error: ServiceError = await failure(call());
            assert.equal(grpc.status[error.code], "NOT_FOUND", `${rpc}: ${error.details}`);
            assert.deepEqual(
              { ...errorInfoOf(error) },
              { reason: "JOB_NOT_FOUND", domain: "jobwatch.v1", metadata: { job_id: jobId, caller_sees: sees } },
              rpc,
            );
          }
        }
      });
    });
  });
}
