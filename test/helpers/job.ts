// A store Job for tests that need one without a database: every field set, any of them overridable.
import type { Job } from "../../src/store/job.js";

/** alice's PENDING add_golden_repo job at revision 1, created and updated at time 1, with `over` applied. */
export function testJob(over: Partial<Job> = {}): Job {
  return {
    jobId: "00000000-0000-4000-8000-000000000001",
    operationType: "add_golden_repo",
    status: "pending",
    username: "alice",
    resource: null,
    createdAt: 1,
    updatedAt: 1,
    startedAt: null,
    completedAt: null,
    lastHeartbeatAt: null,
    progress: 0,
    phase: null,
    detail: null,
    result: null,
    error: null,
    cancelRequested: false,
    cancelReason: null,
    revision: 1,
    ...over,
  };
}
