// No reply exceeds the 4 MiB every gRPC client accepts by default, whatever legal data is stored:
// ListJobs pages are cut by bytes as well as by count, GetJobHistory is paged.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { ListJobsResponse } from "../src/gen/jobwatch/v1/job_service.js";
import { DIALECTS } from "./helpers/databases.js";
import { startTestServer } from "./helpers/server.js";
import type { TestServer } from "./helpers/server.js";

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
  });
}
