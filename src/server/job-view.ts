// The one way a store Job reaches the wire on any read or reply: its fields plus the server's completion estimate.
import type { Job as ProtoJob } from "../gen/jobwatch/v1/job.js";
import type { Estimate } from "../jobs/estimate.js";
import { estimateCompletion } from "../jobs/estimate.js";
import type { RunHistory } from "../jobs/run-history.js";
import type { Job } from "../store/job.js";
import { isTerminal } from "../store/job.js";
import { jobToProto } from "./job-mapper.js";

/** Maps store jobs to wire jobs, each with its estimate as of the time it is mapped. */
export interface JobView {
  /** One job as the wire's Job. */
  toProto(job: Job): Promise<ProtoJob>;
  /** The completion estimate toProto would give the job now (undefined: none). */
  estimate(job: Job): Promise<Estimate | undefined>;
  /** Several jobs, in order. */
  toProtos(jobs: readonly Job[]): Promise<ProtoJob[]>;
  /** `job` has just COMPLETED through this server: the history of its type has one more run. */
  completed(job: Job): void;
  /** The clock estimates are made with, epoch ms. */
  now(): number;
}

/** A JobView reading the history from `history` and the time from `now`. */
export function createJobView(history: Pick<RunHistory, "typical" | "invalidate">, now: () => number): JobView {
  const estimate = async (job: Job): Promise<Estimate | undefined> => {
    // A finished job has no estimate: no history to read.
    if (isTerminal(job.status)) return undefined;
    const typical = await history.typical(job.operationType, job.resource);
    return estimateCompletion(job, typical, now());
  };
  const toProto = async (job: Job): Promise<ProtoJob> => jobToProto(job, await estimate(job));
  return {
    toProto,
    estimate,
    toProtos: (jobs) => Promise.all(jobs.map(toProto)),
    completed: (job) => history.invalidate(job.operationType),
    now,
  };
}

/** A JobView without estimates: the fields of each job alone. */
export const plainJobView: JobView = {
  toProto: async (job) => jobToProto(job),
  estimate: async () => undefined,
  toProtos: async (jobs) => jobs.map((job) => jobToProto(job)),
  completed: () => undefined,
  now: Date.now,
};
