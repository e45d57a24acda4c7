// The one place where storage faults become UnavailableError: wraps a JobStore, retries a broken connection once where safe, tracks the write path.
import { JobwatchError } from "../errors.js";
import type { Operation, RetryPolicy } from "./operations.js";
import { decorate } from "./operations.js";
import type { StorageFault } from "./storage-faults.js";
import { classifyStorageError, databaseUnavailable } from "./storage-faults.js";
import type { JobStore } from "./store.js";

/** Options of guardStore. */
export interface GuardOptions {
  /** A harmless write that fails when writes fail (write-probe.ts); ping() runs it while writes are failing. */
  probeWrite?: () => Promise<void>;
}

/** What the guard tells its listeners. */
export interface StorageFaultEvent {
  fault: StorageFault;
  /** The store operation that met it ("probeWrite": health's write probe). */
  operation: Operation | "probeWrite";
  /** The driver's error, for logs. */
  error: unknown;
}

/** Where storage faults are announced: health subscribes here to check at once instead of at its next interval. */
export interface StorageFaults {
  /** Called on every storage fault (after the retry, if any, failed too); returns an unsubscribe. */
  onFault(listener: (event: StorageFaultEvent) => void): () => void;
}

/** What guardStore returns: the guarded store, and where its storage faults are announced. */
export interface GuardedStore extends StorageFaults {
  /** The store whose storage faults are UnavailableError (see guardStore). */
  readonly store: JobStore;
}

/**
 * Wraps `inner` so that no driver error about the database's state reaches a caller as such: it is
 * an UnavailableError saying the database is the problem ("database unavailable: ..."), which the
 * server sends as UNAVAILABLE, so clients retry (on another replica). A connection that broke under a
 * call (killed, server restarted) is retried once on a fresh connection when the operation's retry
 * policy allows it (OPERATIONS in operations.ts). ping() also proves the write path with
 * options.probeWrite while writes are failing, so health stays NOT_SERVING until writes work again and
 * then recovers by itself. Pass `onFault` to the server (ServerDeps.faults) so health hears of a fault
 * from the call that met it.
 */
export function guardStore(inner: JobStore, options: GuardOptions = {}): GuardedStore {
  const { probeWrite } = options;
  const listeners = new Set<(event: StorageFaultEvent) => void>();
  // True from a write that failed on a storage fault until a write (or a probe) succeeds.
  let writePathFailing = false;

  const report = (
    operation: StorageFaultEvent["operation"],
    policy: RetryPolicy,
    fault: StorageFault,
    error: unknown,
  ): void => {
    // A failed read says nothing new about writes (ping sees it); a failed write or probe does.
    if (policy !== "read" || fault.kind === "refused-write") writePathFailing = true;
    for (const listener of listeners) listener({ fault, operation, error });
  };

  const call = async <T>(
    operation: StorageFaultEvent["operation"],
    policy: RetryPolicy,
    run: () => Promise<T>,
  ): Promise<T> => {
    for (let attempt = 1; ; attempt++) {
      try {
        const value = await run();
        if (policy !== "read") writePathFailing = false;
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
        report(operation, policy, fault, error);
        throw databaseUnavailable(fault, error);
      }
    }
  };

  const store = decorate(inner, (name, facts, method) => {
    if (facts.retry === "as-is") return method;
    if (name === "ping") {
      return async () => {
        await call("ping", "read", method);
        if (writePathFailing && probeWrite) await call("probeWrite", "once", probeWrite);
      };
    }
    return (...args) => call(name, facts.retry, () => method(...args));
  });
  return {
    store,
    onFault(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}
