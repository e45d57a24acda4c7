// The jobs table: status, operation, resource, owner, phase/detail, progress, ETA and age of every job the
// feed holds, updated in place as changes arrive; filtered by status, operation type and owner.
import { h, progressBar } from "./dom.js";
import { dateOf, eta, isActive, phaseDetail, STATUSES, span, statusName } from "./format.js";
import type { Job } from "./gen/jobwatch/v1/job_pb.js";
import { JobStatus } from "./gen/jobwatch/v1/job_pb.js";
import type { JobsFeed, JobsFilter } from "./live.js";

/** Running first, then pending, then the rest; newest first within each. */
function order(a: Job, b: Job): number {
  const rank = (job: Job) => (job.status === JobStatus.RUNNING ? 0 : job.status === JobStatus.PENDING ? 1 : 2);
  const byRank = rank(a) - rank(b);
  if (byRank !== 0) return byRank;
  return (dateOf(b.createdAt)?.getTime() ?? 0) - (dateOf(a.createdAt)?.getTime() ?? 0);
}

/** One table row, its cells updated in place. */
interface Row {
  tr: HTMLTableRowElement;
  update(job: Job, now: number): void;
  tick(now: number): void;
}

function row(job: Job): Row {
  const cell = (label: string, ...children: (Node | string)[]) => h("td", { "data-label": label }, ...children);
  const status = h("span", { class: "status" });
  const bar = progressBar(`progress of job ${job.jobId}`);
  const phase = h("span", { class: "phase" });
  const etaText = h("span");
  const age = h("span");
  const owner = h("span");
  const resource = h("span");
  const link = h("a", { href: `#/job/${job.jobId}`, class: "op" }, job.operationType);
  const tr = h(
    "tr",
    { "data-job-id": job.jobId },
    cell("Status", status),
    cell("Operation", link),
    cell("Resource", resource),
    cell("Owner", owner),
    cell("Phase", phase),
    cell("Progress", bar.element),
    cell("ETA", etaText),
    cell("Age", age),
  );
  let current = job;
  const tick = (now: number): void => {
    etaText.textContent = eta(current, now);
    age.textContent = span(now - (dateOf(current.createdAt)?.getTime() ?? now));
  };
  return {
    tr,
    tick,
    update(next, now) {
      current = next;
      const name = statusName(next.status);
      status.textContent = next.cancelRequested && isActive(next) ? `${name} (cancel requested)` : name;
      status.dataset.status = name;
      tr.dataset.status = name;
      resource.textContent = next.resource ?? "";
      owner.textContent = next.username;
      phase.textContent = phaseDetail(next);
      bar.set(next.progress, name);
      tick(now);
    },
  };
}

/** The filter form; `changed` gets the new filter on every edit. */
function filterForm(filter: JobsFilter, canManage: boolean, changed: (filter: JobsFilter) => void): HTMLFormElement {
  const status = h(
    "select",
    { id: "f-status", name: "status" },
    h("option", { value: "" }, "any status"),
    ...STATUSES.map((s) => h("option", { value: String(s), selected: filter.statuses.includes(s) }, statusName(s))),
  );
  const op = h("input", {
    id: "f-op",
    name: "op",
    value: filter.operationType,
    placeholder: "e.g. add_golden_repo",
    autocomplete: "off",
  });
  const owner = h("input", {
    id: "f-owner",
    name: "owner",
    value: filter.owner,
    placeholder: canManage ? "everyone" : "you",
    autocomplete: "off",
    disabled: !canManage,
  });
  const form = h(
    "form",
    { class: "filters", role: "search", "aria-label": "Filter jobs" },
    h("label", { for: "f-status" }, "Status ", status),
    h("label", { for: "f-op" }, "Operation ", op),
    h("label", { for: "f-owner" }, "Owner ", owner),
    h("button", { type: "submit" }, "Apply"),
  );
  const read = (): JobsFilter => ({
    statuses: status.value === "" ? [] : [Number(status.value)],
    operationType: op.value.trim(),
    owner: owner.value.trim(),
  });
  // Selects apply at once; text fields on Enter or Apply (not a new stream per keystroke).
  status.addEventListener("change", () => changed(read()));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    changed(read());
  });
  return form;
}

/** Renders the table into `root`; returns how to stop updating it. */
export function jobsView(
  root: HTMLElement,
  feed: JobsFeed,
  filter: JobsFilter,
  canManage: boolean,
  changeFilter: (filter: JobsFilter) => void,
): () => void {
  const tbody = h("tbody");
  const empty = h("p", { class: "empty" }, "Loading…");
  const count = h("span", { class: "count", "aria-live": "polite" });
  const table = h(
    "table",
    { class: "jobs" },
    h("caption", { class: "sr-only" }, "Jobs, running first"),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        ...["Status", "Operation", "Resource", "Owner", "Phase / detail", "Progress", "ETA", "Age"].map((name) =>
          h("th", { scope: "col" }, name),
        ),
      ),
    ),
    tbody,
  );
  root.replaceChildren(
    h("div", { class: "toolbar" }, h("h1", {}, "Jobs"), count),
    filterForm(filter, canManage, changeFilter),
    h("div", { class: "table-wrap" }, table),
    empty,
  );
  const rows = new Map<string, Row>();
  const render = (): void => {
    const now = Date.now();
    for (const [id, r] of rows) {
      if (!feed.jobs.has(id)) {
        r.tr.remove();
        rows.delete(id);
      }
    }
    const sorted = [...feed.jobs.values()].sort(order);
    let previous: HTMLTableRowElement | undefined;
    for (const job of sorted) {
      let r = rows.get(job.jobId);
      if (r === undefined) {
        r = row(job);
        rows.set(job.jobId, r);
      }
      r.update(job, now);
      // Keep the DOM in order without moving rows that are already in place (focus stays put).
      const expected: ChildNode | null = previous === undefined ? tbody.firstChild : previous.nextSibling;
      if (expected !== r.tr) tbody.insertBefore(r.tr, expected);
      previous = r.tr;
    }
    empty.textContent = feed.synced ? (sorted.length === 0 ? "No jobs match the filter." : "") : "Loading…";
    empty.hidden = empty.textContent === "";
    count.textContent = feed.synced ? `${sorted.length} job${sorted.length === 1 ? "" : "s"}` : "";
  };
  render();
  const unlisten = feed.listen((changed, removed) => {
    // A change to a job already in place updates its row in the same frame; order is checked each time.
    if (changed.length === 1 && removed.length === 0 && rows.has(changed[0]!.jobId)) {
      const job = changed[0]!;
      const r = rows.get(job.jobId)!;
      const statusBefore = r.tr.dataset.status;
      r.update(job, Date.now());
      if (statusBefore === statusName(job.status)) return;
    }
    render();
  });
  // Age and ETA move with the clock: a local timer, no request.
  const timer = setInterval(() => {
    const now = Date.now();
    for (const r of rows.values()) r.tick(now);
  }, 1000);
  return () => {
    unlisten();
    clearInterval(timer);
  };
}
