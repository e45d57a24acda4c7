// What each store operation is, in one table: its retry/fault policy, whether it publishes, its metric; and
// decorate(), which builds the store wrappers (guard, publishing, metrics) from it as plain objects.
import type { Job } from "./job.js";
import type { JobStore } from "./store.js";

/** The name of a store operation: every method of JobStore. */
export type Operation = keyof JobStore;

/**
 * How the guard (guarded-store.ts) treats an operation whose connection broke:
 * - "read": it changes nothing, so it is retried once whatever happened to the first attempt.
 * - "idempotent": a write whose repetition leaves the same outcome (a create with a request id, a
 *   cancel, progress and heartbeats, sweeps), retried once like a read.
 * - "once": a transition that must not be applied twice (StartJob, CompleteJob ...), retried only when
 *   the first attempt provably never reached the database (no connection could be made).
 * - "as-is": not guarded at all; its errors reach the caller as the driver threw them (close).
 * A storage fault in anything but a "read" means the write path is failing (ping then probes writes).
 */
export type RetryPolicy = "read" | "idempotent" | "once" | "as-is";

/** What the metrics count of an operation beyond its time in jobwatch_db_query_seconds. */
type MeterRole =
  /** jobwatch_db_up: 1 when it succeeds, 0 when it fails (the health ping). */
  | "db_up"
  /** jobwatch_change_feed_poll_seconds: a read of the change feed. */
  | "feed_poll"
  /** jobwatch_auth_token_reloads_total: a reload of the active tokens. */
  | "token_reload"
  /** jobwatch_sweeper_jobs_total{kind}: the jobs it returns (or the count) were moved or removed by a sweep. */
  | { sweep: "stale" | "cancel_grace" | "retention" };

/** The facts of one operation. */
export interface OperationFacts {
  retry: RetryPolicy;
  /**
   * true: the job or jobs it returns are handed to this process's watchers once it has committed
   * (publishing-store.ts). Only an operation that returns Job or Job[] may say true (OperationTable).
   */
  publishes: boolean;
  /** Its `operation` label in jobwatch_db_query_seconds: stable for dashboards even if the method is renamed. */
  metric: string;
  /** What else the metrics make of it. */
  meter?: MeterRole;
}

/** What an operation's promise carries. */
type Result<K extends Operation> = Awaited<ReturnType<JobStore[K]>>;

/** The facts an operation may have: `publishes: true` only for one that returns the job(s) it wrote. */
type FactsOf<K extends Operation> = OperationFacts &
  ([Result<K>] extends [Job | readonly Job[]] ? unknown : { publishes: false });

/** The table's type: one entry per store operation, or it does not compile. */
export type OperationTable = { readonly [K in Operation]: FactsOf<K> };

/**
 * Every store operation, once. A method added to JobStore does not compile until it has a row here,
 * and gets its guard, publishing and metric from that row.
 */
export const OPERATIONS = {
  migrate: { retry: "idempotent", publishes: false, metric: "migrate" },
  ping: { retry: "read", publishes: false, metric: "ping", meter: "db_up" },
  close: { retry: "as-is", publishes: false, metric: "close" },

  createJob: { retry: "once", publishes: true, metric: "createJob" },
  getJob: { retry: "read", publishes: false, metric: "getJob" },
  jobExists: { retry: "read", publishes: false, metric: "jobExists" },
  startJob: { retry: "once", publishes: true, metric: "startJob" },
  reportProgress: { retry: "idempotent", publishes: true, metric: "reportProgress" },
  heartbeat: { retry: "idempotent", publishes: true, metric: "heartbeat" },
  completeJob: { retry: "once", publishes: true, metric: "completeJob" },
  failJob: { retry: "once", publishes: true, metric: "failJob" },
  markCancelled: { retry: "once", publishes: true, metric: "markCancelled" },
  cancelJob: { retry: "idempotent", publishes: true, metric: "cancelJob" },
  listJobs: { retry: "read", publishes: false, metric: "listJobs" },
  getStatistics: { retry: "read", publishes: false, metric: "getStatistics" },
  getHistory: { retry: "read", publishes: false, metric: "getHistory" },
  recentRuns: { retry: "read", publishes: false, metric: "recentRuns" },

  latestSeq: { retry: "read", publishes: false, metric: "latestSeq" },
  readFeed: { retry: "read", publishes: false, metric: "readFeed", meter: "feed_poll" },
  readFeedRanges: { retry: "read", publishes: false, metric: "readFeedRanges", meter: "feed_poll" },
  oldestOpenWriterMs: { retry: "read", publishes: false, metric: "oldestOpenWriterMs" },
  snapshotsAt: { retry: "read", publishes: false, metric: "snapshotsAt" },
  snapshotsBetween: { retry: "read", publishes: false, metric: "snapshotsBetween" },
  transitionsBetween: { retry: "read", publishes: false, metric: "transitionsBetween" },

  failStaleJobs: { retry: "idempotent", publishes: true, metric: "failStaleJobs", meter: { sweep: "stale" } },
  cancelUnconfirmed: {
    retry: "idempotent",
    publishes: true,
    metric: "cancelUnconfirmed",
    meter: { sweep: "cancel_grace" },
  },
  deleteExpired: { retry: "idempotent", publishes: false, metric: "deleteExpired", meter: { sweep: "retention" } },
  pruneFeed: { retry: "idempotent", publishes: false, metric: "pruneFeed" },

  createToken: { retry: "once", publishes: false, metric: "createToken" },
  listTokens: { retry: "read", publishes: false, metric: "listTokens" },
  revokeToken: { retry: "idempotent", publishes: false, metric: "revokeToken" },
  activeTokens: { retry: "read", publishes: false, metric: "activeTokens", meter: "token_reload" },
  countTokens: { retry: "read", publishes: false, metric: "countTokens" },

  createWebhook: { retry: "once", publishes: false, metric: "createWebhook" },
  listWebhooks: { retry: "read", publishes: false, metric: "listWebhooks" },
  getWebhook: { retry: "read", publishes: false, metric: "getWebhook" },
  deleteWebhook: { retry: "idempotent", publishes: false, metric: "deleteWebhook" },
  // A claim is a conditional lease: repeated, it takes nothing twice (what it took stays leased to it).
  claimDeliveries: { retry: "idempotent", publishes: false, metric: "claimDeliveries" },
  finishDelivery: { retry: "once", publishes: false, metric: "finishDelivery" },
  listDeliveries: { retry: "read", publishes: false, metric: "listDeliveries" },
  replayDeliveries: { retry: "idempotent", publishes: false, metric: "replayDeliveries" },
  deliveryBacklog: { retry: "read", publishes: false, metric: "deliveryBacklog" },
} as const satisfies OperationTable;

/** Every operation name, in the table's order. */
export const OPERATION_NAMES = Object.keys(OPERATIONS) as Operation[];

/** A store method as a wrapper sees it: its arguments and result are the wrapper's business only as a whole. */
export type StoreMethod = (...args: never[]) => Promise<unknown>;

/**
 * What a wrapper does around one operation: given its name, its facts and the inner method (a function
 * that calls the inner store's), the method to put in its place (or the inner one itself to leave it be).
 * Called once per operation when the wrapper is built, never per call.
 */
export type Decorator = (name: Operation, facts: OperationFacts, method: StoreMethod) => StoreMethod;

/** The store operations of S (a JobStore's, or a Pick's), without whatever else S has (a SqlJobStore's db). */
export type StoreOf<S extends Partial<JobStore>> = Pick<S, Extract<keyof S, Operation>>;

/**
 * A plain object with every operation of `inner` (a whole JobStore or a Pick of one) replaced by what
 * `decorator` makes of it, and nothing else: no Proxy, so `in`, spreading and renames behave as they read.
 */
export function decorate<S extends Partial<JobStore>>(inner: S, decorator: Decorator): StoreOf<S> {
  const out: Partial<Record<Operation, StoreMethod>> = {};
  const methods = inner as Record<Operation, StoreMethod>;
  for (const name of OPERATION_NAMES) {
    if (typeof methods[name] !== "function") continue;
    // Looked up on `inner` at each call, as a method call (so `this` is `inner`): a store that changes
    // what a method does (a test's fault injection) is followed, as calling it directly would be.
    out[name] = decorator(name, OPERATIONS[name], (...args) => methods[name](...args));
  }
  return out as StoreOf<S>;
}
