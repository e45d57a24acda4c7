// No reply exceeds the 4 MiB every gRPC client accepts by default, whatever legal data is stored:
// ListJobs pages are cut by bytes as well as by count, GetJobHistory is paged.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { createClient } from "../src/client/index.js";
import { GetJobHistoryResponse, ListJobsResponse } from "../src/gen/jobwatch/v1/job_service.js";
import { DIALECTS } from "./helpers/databases.js";
import type { TestServer } from "./helpers/server.js";
import { failure, startTestServer } from "./helpers/server.js";

/** The default maximum message size of gRPC clients (grpc-js, grpc-go, grpc-java ...). */
const FOUR_MIB = 4 * 1024 * 1024;

for (const dialect of DIALECTS) {
  describe(`reply sizes (${dialect})`, () => {
    let s: TestServer;
    before(async () => {
      s = await startTestServer({ dialect });
    });
    after(async () => {
      await s?.stop();
    });
    const worker = () => s.as(s.tokens.worker).worker;

    test("ListJobs over 100 jobs with 62 KB results: pages under 4 MiB that together hold every job once", async () => {
      const made = new Set<string>();
      for (let i = 0; i < 100; i++) {
        const { job } = await worker().createJob({ operationType: "big_result", username: "alice" });
        // 62 KB of JSON, under the 64 KiB limit.
        await worker().completeJob({ jobId: job!.jobId, result: { i, blob: "x".repeat(62_000) } });
        made.add(job!.jobId);
      }
      const seen: string[] = [];
      let pageToken = "";
      let pages = 0;
      do {
        const page = await s
          .as(s.tokens.alice)
          .jobs.listJobs({ operationType: "big_result", pageSize: 100, pageToken });
        const bytes = ListJobsResponse.encode(page).finish().length;
        assert.ok(bytes < FOUR_MIB, `page of ${bytes} bytes`);
        assert.ok(page.jobs.length > 0);
        seen.push(...page.jobs.map((j) => j.jobId));
        pageToken = page.nextPageToken;
        pages++;
      } while (pageToken !== "");
      assert.ok(pages > 1, "cut by bytes into several pages");
      assert.equal(seen.length, 100);
      assert.deepEqual(new Set(seen), made);
    });

    test("GetJobHistory of 1,100 phase changes with 4 KB details comes in pages under 4 MiB, each event once", async () => {
      const { job } = await worker().createJob({ operationType: "long_history", username: "alice" });
      const jobId = job!.jobId;
      await s.store.startJob(jobId);
      // 1000 characters, the most a detail may have, of 4 bytes each.
      const detail = "\u{1F600}".repeat(1000);
      // A new phase is always recorded: 1,100 history entries of ~4 KB, 4.4 MB in one reply before.
      for (let i = 0; i < 1100; i++) await s.store.reportProgress(jobId, i % 100, `phase-${i}`, detail);
      const { jobs } = s.as(s.tokens.alice);
      const revisions: number[] = [];
      let pageToken = "";
      let pages = 0;
      do {
        const page = await jobs.getJobHistory({ jobId, pageSize: 1000, pageToken });
        assert.ok(page.events.length > 0);
        const bytes = GetJobHistoryResponse.encode(page).finish().length;
        assert.ok(bytes < FOUR_MIB, `page of ${bytes} bytes`);
        revisions.push(...page.events.map((e) => e.revision));
        pageToken = page.nextPageToken;
        pages++;
      } while (pageToken !== "");
      assert.ok(pages >= 5, `${pages} pages`); // 1 MiB each
      assert.deepEqual(
        revisions,
        Array.from({ length: 1102 }, (_, i) => i + 1),
      );

      // The client library (and so `jobwatch get --history`) follows the pages by itself.
      const client = createClient({ address: s.address, token: s.tokens.alice });
      try {
        const events = await client.getHistory(jobId);
        assert.equal(events.length, 1102);
        assert.equal(events.at(-1)!.phase, "phase-1099");
      } finally {
        client.close();
      }

      const negative = await failure(jobs.getJobHistory({ jobId, pageSize: -1 }));
      assert.equal(grpc.status[negative.code], "INVALID_ARGUMENT");
      const { job: other } = await worker().createJob({ operationType: "long_history", username: "alice" });
      const firstPage = await jobs.getJobHistory({ jobId, pageSize: 1 });
      const foreign = await failure(jobs.getJobHistory({ jobId: other!.jobId, pageToken: firstPage.nextPageToken }));
      assert.equal(grpc.status[foreign.code], "INVALID_ARGUMENT");
      assert.match(foreign.details, /page_token: is not a next_page_token of GetJobHistory for this job_id/);
    });
  });
}
