// A changed job's WatchJobs message, made from bytes shared by every stream: what each stream's client decodes.
import assert from "node:assert/strict";
import { test } from "node:test";
import { WatchJobsEventType, WatchJobsResponse } from "../../src/gen/jobwatch/v1/job_service.js";
import { jobToProto } from "../../src/server/job-mapper.js";
import type { JobView } from "../../src/server/job-view.js";
import { plainJobView } from "../../src/server/job-view.js";
import { watchJobsChange } from "../../src/server/shared-encoding.js";
import { testJob } from "../helpers/job.js";

test("each stream's WatchJobs change decodes to its own type and cursor with the job, mapped once for all", async () => {
  let mapped = 0;
  const view: JobView = {
    ...plainJobView,
    toProto: async (job) => {
      mapped++;
      return jobToProto(job);
    },
  };
  const job = testJob({ status: "running", progress: 40, phase: "semantic", detail: "40/100 files" });
  const streams: [WatchJobsEventType, string][] = [
    [WatchJobsEventType.WATCH_JOBS_EVENT_TYPE_CHANGED, "c1.a"],
    [WatchJobsEventType.WATCH_JOBS_EVENT_TYPE_CHANGED, "a much longer cursor of another stream ".repeat(4)],
    [WatchJobsEventType.WATCH_JOBS_EVENT_TYPE_REMOVED, ""],
  ];
  for (const [type, cursor] of streams) {
    const bytes = await watchJobsChange(job, view, type, cursor);
    assert.deepEqual(WatchJobsResponse.decode(bytes), { type, jobs: [jobToProto(job)], cursor });
  }
  assert.equal(mapped, 1);
});
