// The one way a store Job reaches the wire on any read or reply: its fields plus the server's completion estimate.
import type { Job as ProtoJob } from "../gen/jobwatch/v1/job.js";
import { isTerminal } from "../store/job.js";
import type { Job } from "../store/job.js";
import { estimateCompletion } from "../jobs/estimate.js";
import { jobToProto } from "./job-mapper.js";
import type { RunHistory } from "../jobs/run-history.js";

/** Maps store jobs to wire jobs, each with its estimate as of the time it is mapped. */
export interface JobView {
  /** One job as the wire's Job. */
  toProto(job: Job): Promise<ProtoJob>;
  /** Several jobs, in order. */
  toProtos(jobs: readonly Job[]): Promise<ProtoJob[]>;
  /** `job` has just COMPLETED through this server: the history of its type has one more run. */
  completed(job: Job): void;
}

/** A JobView reading the history from `history` and the time from `now`. */
export function createJobView(history: Pick<RunHistory, "typical" | "invalidate">, now: () => number): JobView {
  const toProto = async (job: Job): Promise<ProtoJob> => {
    // A finished job has no estimate: no history to read.
    if (isTerminal(job.status)) return jobToProto(job);
    const typical = await history.typical(job.operationType, job.resource);
    return jobToProto(job, estimateCompletion(job, typical, now()));
  };
  return {
    toProto,
    toProtos: (jobs) => Promise.all(jobs.map(toProto)),
    completed: (job) => history.invalidate(job.operationType),
  };
}

/** A JobView without estimates: the fields of each job alone. */
export const plainJobView: JobView = {
  toProto: async (job) => jobToProto(job),
  toProtos: async (jobs) => jobs.map((job) => jobToProto(job)),
  completed: () => undefined,
};
