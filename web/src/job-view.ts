// One job's page: its fields as the seed lists them, a live progress bar (WatchJob, resumed from the last
// revision), its history as a timeline, its result or error, and a cancel button while it is active.
import { create } from "@bufbuild/protobuf";
import { jobs, messageOf } from "./api.js";
import { h, progressBar } from "./dom.js";
import { clock, dateOf, etaLong, isActive, phaseDetail, span, statusName } from "./format.js";
import type { Job, JobEvent } from "./gen/jobwatch/v1/job_pb.js";
import { JobStatus } from "./gen/jobwatch/v1/job_pb.js";
import type { WatchJobResponse } from "./gen/jobwatch/v1/job_service_pb.js";
import { CancelJobRequestSchema, WatchJobRequestSchema } from "./gen/jobwatch/v1/job_service_pb.js";
import { follow } from "./resumable.js";

/** What the page tells the rest of the app. */
export interface JobPageEvents {
  state(state: "connecting" | "live" | "reconnecting", detail: string): void;
  signedOut(error: unknown): void;
}

/** One entry of the timeline: a revision of the job, as its history event. */
type Entry = Pick<JobEvent, "status" | "progress" | "phase" | "detail" | "cancelRequested" | "error"> & {
  revision: number;
  time: Date | undefined;
};

function entryOfEvent(event: JobEvent): Entry {
  return {
    revision: Number(event.revision),
    time: dateOf(event.time),
    status: event.status,
    progress: event.progress,
    phase: event.phase,
    detail: event.detail,
    cancelRequested: event.cancelRequested,
    error: event.error,
  };
}

function entryOfJob(job: Job): Entry {
  return { ...entryOfEvent({ ...job, time: job.updatedAt } as unknown as JobEvent), revision: Number(job.revision) };
}

/** Renders the job page into `root`; returns how to stop following the job. */
export function jobView(root: HTMLElement, jobId: string, events: JobPageEvents): () => void {
  const controller = new AbortController();
  const heading = h("h1", {}, "Job");
  const bar = progressBar("job progress");
  const fields = h("dl", { class: "fields" });
  const outcome = h("section", { class: "outcome", "aria-label": "Result or error" });
  const timeline = h("ol", { class: "timeline", "aria-label": "History" });
  const truncated = h("p", { class: "muted", hidden: true });
  const cancelStatus = h("p", { class: "muted", role: "status", "aria-live": "polite" });
  const cancel = h("button", { type: "button", class: "danger", hidden: true }, "Cancel job");
  const problem = h("p", { class: "error", role: "alert", hidden: true });
  root.replaceChildren(
    h("p", {}, h("a", { href: "#/" }, "← All jobs")),
    heading,
    problem,
    h("div", { class: "job-progress" }, bar.element, cancel),
    cancelStatus,
    fields,
    outcome,
    h("h2", {}, "History"),
    timeline,
    truncated,
  );

  const entries = new Map<number, Entry>();
  let job: Job | undefined;

  const renderTimeline = (): void => {
    const sorted = [...entries.values()].sort((a, b) => a.revision - b.revision);
    let previousStatus: JobStatus | undefined;
    timeline.replaceChildren(
      ...sorted.map((e) => {
        const statusChanged = e.status !== previousStatus;
        previousStatus = e.status;
        const what = statusChanged ? statusName(e.status) : `${e.progress}%`;
        const more = [
          statusChanged && e.status === JobStatus.RUNNING ? `${e.progress}%` : "",
          phaseDetail(e),
          e.cancelRequested ? "cancel requested" : "",
          e.error ?? "",
        ].filter((x) => x !== "");
        return h(
          "li",
          { class: statusChanged ? "status-change" : "progress-step", "data-status": statusName(e.status) },
          h("time", { datetime: e.time?.toISOString() }, clock(e.time)),
          h("span", { class: "what" }, what),
          more.length > 0 ? h("span", { class: "more" }, more.join(" · ")) : undefined,
          h("span", { class: "rev" }, `rev ${e.revision}`),
        );
      }),
    );
  };

  const field = (name: string, value: string | Node): Node[] => [h("dt", {}, name), h("dd", {}, value)];
  const renderJob = (now: number): void => {
    if (job === undefined) return;
    const j = job;
    const name = statusName(j.status);
    heading.textContent = `${j.operationType} ${j.resource ? `· ${j.resource}` : ""}`.trim();
    bar.set(j.progress, name);
    const started = dateOf(j.startedAt);
    const completed = dateOf(j.completedAt);
    fields.replaceChildren(
      ...field("job_id", h("code", {}, j.jobId)),
      ...field("operation_type", j.operationType),
      ...field("status", h("span", { class: "status", "data-status": name, id: "job-status" }, name)),
      ...field("created_at", clock(dateOf(j.createdAt))),
      ...field(
        "started_at",
        started ? `${clock(started)} (queued ${span(started.getTime() - (dateOf(j.createdAt)?.getTime() ?? 0))})` : "—",
      ),
      ...field(
        "completed_at",
        completed ? `${clock(completed)} (ran ${span(completed.getTime() - (started ?? completed).getTime())})` : "—",
      ),
      ...field("progress", `${j.progress}%`),
      ...field("username", j.username),
      ...field("resource", j.resource ?? "—"),
      ...field("phase / detail", phaseDetail(j) || "—"),
      ...field("estimate", etaLong(j, now)),
      ...(j.cancelRequested ? field("cancel", `requested${j.cancelReason ? `: ${j.cancelReason}` : ""}`) : []),
    );
    if (j.status === JobStatus.COMPLETED) {
      // protobuf-es gives a google.protobuf.Struct as the plain JSON object it holds.
      const result = j.result === undefined ? "null" : JSON.stringify(j.result, null, 2);
      outcome.replaceChildren(h("h2", {}, "Result"), h("pre", { class: "result" }, result));
    } else if (j.error !== undefined) {
      outcome.replaceChildren(h("h2", {}, "Error"), h("pre", { class: "error-text" }, j.error));
    } else outcome.replaceChildren();
    cancel.hidden = !isActive(j) || j.cancelRequested;
  };

  cancel.addEventListener("click", () => {
    cancel.disabled = true;
    cancelStatus.textContent = "Cancelling…";
    jobs
      .cancelJob(create(CancelJobRequestSchema, { jobId, reason: "cancelled from the web dashboard" }))
      .then(
        (response) => {
          cancelStatus.textContent =
            response.job?.status === JobStatus.CANCELLED ? "Cancelled." : "Cancel requested: the worker stops it.";
        },
        (error: unknown) => {
          cancelStatus.textContent = `Cancel failed: ${messageOf(error)}`;
        },
      )
      .finally(() => {
        cancel.disabled = false;
      });
  });

  // The history so far (oldest first); WatchJob adds the revisions after it as they happen.
  jobs.getJobHistory({ jobId, pageSize: 1000 }, { signal: controller.signal }).then(
    (history) => {
      for (const event of history.events) entries.set(Number(event.revision), entryOfEvent(event));
      truncated.hidden = history.nextPageToken === "";
      truncated.textContent = "Later history events are shown as they come; `jobwatch get --history` lists them all.";
      renderTimeline();
    },
    () => undefined, // the watch below reports what is wrong
  );

  let revision = 0n;
  const onMessage = (message: WatchJobResponse): void => {
    if (message.job === undefined) return; // a bookmark: the job is quiet
    job = message.job;
    revision = message.job.revision;
    entries.set(Number(revision), entryOfJob(message.job));
    renderJob(Date.now());
    renderTimeline();
  };
  events.state("connecting", "");
  void follow(
    (signal) =>
      jobs.watchJob(create(WatchJobRequestSchema, revision === 0n ? { jobId } : { jobId, afterRevision: revision }), {
        signal,
      }),
    {
      message: (m) => {
        events.state("live", "");
        onMessage(m);
      },
      lost: (error, retryInMs) =>
        events.state(
          "reconnecting",
          `Connection lost (${messageOf(error)}); reconnecting in ${Math.round(retryInMs / 100) / 10}s and resuming after revision ${revision}.`,
        ),
      resumed: () => events.state("live", `Reconnected: resumed after revision ${revision}, no change missed.`),
      signedOut: (error) => events.signedOut(error),
      failed: (error) => {
        problem.hidden = false;
        problem.textContent = messageOf(error);
        heading.textContent = "Job not available";
      },
      ended: () => events.state("live", ""),
    },
    controller.signal,
  );
  const timer = setInterval(() => renderJob(Date.now()), 1000);
  return () => {
    controller.abort();
    clearInterval(timer);
  };
}
