// The one place where storage faults become UnavailableError: wraps a JobStore, retries a broken connection once where safe, tracks the write path.
import { JobwatchError } from "../errors.js";
import { classifyStorageError, databaseUnavailable } from "./storage-faults.js";
import type { StorageFault } from "./storage-faults.js";
import type { JobStore } from "./store.js";

/**
 * How a store method may be repeated after its connection broke:
 * - "read": it changes nothing, so it is retried once whatever happened to the first attempt.
 * - "idempotent": a write whose repetition leaves the same outcome (a create with a request id, a
 *   cancel, progress and heartbeats, sweeps), retried once like a read.
 * - "once": a transition that must not be applied twice (StartJob, CompleteJob ...), retried only when
 *   the first attempt provably never reached the database (no connection could be made).
 */
type RetryPolicy = "read" | "idempotent" | "once";

/** Every JobStore method (the compiler insists on a decision for each new one) but close. */
const POLICIES: { [K in Exclude<keyof JobStore, "close">]: RetryPolicy } = {
  migrate: "idempotent",
  ping: "read",
  createJob: "once",
  getJob: "read",
  jobExists: "read",
  startJob: "once",
  reportProgress: "idempotent",
  heartbeat: "idempotent",
  completeJob: "once",
  failJob: "once",
  markCancelled: "once",
  cancelJob: "idempotent",
  listJobs: "read",
  getStatistics: "read",
  getHistory: "read",
  recentRuns: "read",
  latestSeq: "read",
  readFeed: "read",
  readFeedRanges: "read",
  snapshotsAt: "read",
  snapshotsBetween: "read",
  transitionsBetween: "read",
  failStaleJobs: "idempotent",
  cancelUnconfirmed: "idempotent",
  deleteExpired: "idempotent",
  pruneFeed: "idempotent",
  createToken: "once",
  listTokens: "read",
  revokeToken: "idempotent",
  activeTokens: "read",
  countTokens: "read",
};

/** Methods that only read; a storage fault in any other means the write path is failing. */
const READS = new Set(Object.entries(POLICIES).flatMap(([name, policy]) => (policy === "read" ? [name] : [])));

/** Options of guardStore. */
export interface GuardOptions {
  /** A harmless write that fails when writes fail (write-probe.ts); ping() runs it while writes are failing. */
  probeWrite?: () => Promise<void>;
}

/** What the guard tells its listeners. */
export interface StorageFaultEvent {
  fault: StorageFault;
  /** The store method that met it. */
  operation: string;
  /** The driver's error, for logs. */
  error: unknown;
}

/** Where storage faults are announced: health subscribes here to check at once instead of at its next interval. */
export interface StorageFaults {
  /** Called on every storage fault (after the retry, if any, failed too); returns an unsubscribe. */
  onFault(listener: (event: StorageFaultEvent) => void): () => void;
}

/** A JobStore whose storage faults are UnavailableError, and who can be asked how its database is doing. */
export interface GuardedStore extends JobStore {
  /** True from a write that failed on a storage fault until a write (or a probe) succeeds. */
  readonly writePathFailing: boolean;
  /** Called on every storage fault (after the retry, if any, failed too); returns an unsubscribe. */
  onFault(listener: (event: StorageFaultEvent) => void): () => void;
}

/**
 * Wraps `inner` so that no driver error about the database's state reaches a caller as such: it is
 * an UnavailableError saying the database is the problem ("database unavailable: ..."), which the
 * server sends as UNAVAILABLE, so clients retry (on another replica). A connection that broke under a
 * call (killed, server restarted) is retried once on a fresh connection when the method allows it
 * (POLICIES). ping() also proves the write path with options.probeWrite while writes are failing, so
 * health stays NOT_SERVING until writes work again and then recovers by itself.
 */
export function guardStore(inner: JobStore, options: GuardOptions = {}): GuardedStore {
  const { probeWrite } = options;
  const listeners = new Set<(event: StorageFaultEvent) => void>();
  let writePathFailing = false;

  const report = (operation: string, fault: StorageFault, error: unknown): void => {
    // A failed read says nothing new about writes (ping sees it); a failed write or probe does.
    if (!READS.has(operation) || fault.kind === "refused-write") writePathFailing = true;
    for (const listener of listeners) listener({ fault, operation, error });
  };

  const call = async (operation: string, policy: RetryPolicy, run: () => Promise<unknown>): Promise<unknown> => {
    for (let attempt = 1; ; attempt++) {
      try {
        const value = await run();
        if (!READS.has(operation)) writePathFailing = false;
        return value;
      } catch (error) {
        // Our own errors (NotFound, FailedPrecondition, an UnavailableError the store chose) pass as they are.
        if (error instanceof JobwatchError) throw error;
        const fault = classifyStorageError(error);
        if (fault === undefined) throw error;
        const retry =
          attempt === 1 &&
          (fault.kind === "unreachable" || (fault.kind === "lost" && (policy === "read" || policy === "idempotent")));
        if (retry) continue;
        report(operation, fault, error);
        throw databaseUnavailable(fault, error);
      }
    }
  };

  const ping = async (): Promise<void> => {
    await call("ping", "read", () => inner.ping());
    if (writePathFailing && probeWrite) await call("probeWrite", "once", probeWrite);
  };

  const guarded = new Proxy(inner, {
    get(target, property) {
      if (property === "writePathFailing") return writePathFailing;
      if (property === "onFault") {
        return (listener: (event: StorageFaultEvent) => void) => {
          listeners.add(listener);
          return () => listeners.delete(listener);
        };
      }
      if (property === "ping") return ping;
      // The target as `this`, so its getters and methods keep access to its private fields.
      const value = Reflect.get(target, property, target);
      if (typeof property !== "string" || typeof value !== "function" || !Object.hasOwn(POLICIES, property)) {
        return typeof value === "function" ? value.bind(target) : value;
      }
      const policy = POLICIES[property as keyof typeof POLICIES];
      return (...args: unknown[]) => call(property, policy, () => value.apply(target, args));
    },
  });
  return guarded as unknown as GuardedStore;
}
