// The history behind completion estimates, per operation type, kept in memory and refreshed at most every few seconds.
import type { Logger } from "pino";
import type { FinishedRun } from "../store/job.js";
import type { JobStore } from "../store/store.js";
import type { TypicalRun } from "./estimate.js";
import { MIN_HISTORY_RUNS, typicalRun } from "./estimate.js";

/** How many of a type's latest runs one refresh reads: HISTORY_RUNS for the type, the rest to find runs on a resource. */
const RUNS_READ = 200;
/** A type's history is read again at most this often per process. */
const HISTORY_REFRESH_MS = 5000;
/** Operation types remembered at most; the least recently loaded is dropped first. */
const MAX_TYPES = 1000;

/** One operation type's history as last read. */
interface Entry {
  loadedAt: number;
  ofType: TypicalRun | undefined;
  /** Resources with at least MIN_HISTORY_RUNS runs among the ones read. */
  byResource: Map<string, TypicalRun>;
  loading?: Promise<void>;
}

/** Options of RunHistory. */
export interface RunHistoryOptions {
  store: Pick<JobStore, "recentRuns">;
  /** The clock, epoch ms. */
  now: () => number;
  log?: Logger;
  refreshMs?: number;
}

/**
 * The typical run of each operation type (and resource). A type is read from the store on first use and
 * again when its figures are older than the refresh period: one bounded query per type per period,
 * whatever the number of calls. While a refresh runs, callers get the figures they had (a type with no
 * usable history yet waits for it, so the first jobs after enough runs finish get an estimate at once).
 * A failed read leaves the previous figures (an estimate never fails a call) and is retried a period later.
 */
export class RunHistory {
  readonly #store: Pick<JobStore, "recentRuns">;
  readonly #now: () => number;
  readonly #log: Logger | undefined;
  readonly #refreshMs: number;
  readonly #entries = new Map<string, Entry>();

  constructor(options: RunHistoryOptions) {
    this.#store = options.store;
    this.#now = options.now;
    this.#log = options.log;
    this.#refreshMs = options.refreshMs ?? HISTORY_REFRESH_MS;
  }

  /** The typical run of `operationType` on `resource` (of the type when the resource has too few runs). */
  async typical(operationType: string, resource: string | null): Promise<TypicalRun | undefined> {
    let entry = this.#entries.get(operationType);
    if (entry === undefined || this.#now() - entry.loadedAt >= this.#refreshMs) {
      const loading = this.#load(operationType, entry);
      // Nothing to offer meanwhile: wait for the read. Otherwise answer with what we have.
      if (entry?.ofType === undefined) await loading;
      entry = this.#entries.get(operationType);
    }
    if (entry === undefined) return undefined;
    return (resource === null ? undefined : entry.byResource.get(resource)) ?? entry.ofType;
  }

  /**
   * A job of the type has just COMPLETED here. While the type has no usable history yet its figures are
   * read again on next use, so the first job after enough runs gets an estimate at once (other replicas
   * catch up within the refresh period). Once it has some, one more run changes a median little: the
   * refresh period stands, so a busy type costs one read per period, not one per completion.
   */
  invalidate(operationType: string): void {
    const entry = this.#entries.get(operationType);
    if (entry !== undefined && entry.ofType === undefined) entry.loadedAt = Number.NEGATIVE_INFINITY;
  }

  /** Starts (or joins) reading the type's runs. */
  #load(operationType: string, previous: Entry | undefined): Promise<void> {
    if (previous?.loading !== undefined) return previous.loading;
    const loading = this.#store.recentRuns(operationType, RUNS_READ).then(
      (runs) => this.#set(operationType, summarize(runs, this.#now())),
      (error: unknown) => {
        this.#log?.warn({ err: error, operationType }, "could not read the history of an operation type");
        this.#set(operationType, { ...(previous ?? summarize([], 0)), loadedAt: this.#now() });
      },
    );
    if (previous !== undefined) previous.loading = loading;
    else this.#entries.set(operationType, { ...summarize([], -Infinity), loading });
    return loading;
  }

  #set(operationType: string, entry: Entry): void {
    const { loading: _, ...settled } = entry;
    this.#entries.delete(operationType);
    this.#entries.set(operationType, settled);
    // Map order is insertion order: the first key is the least recently loaded.
    if (this.#entries.size > MAX_TYPES) {
      const oldest = this.#entries.keys().next().value;
      if (oldest !== undefined) this.#entries.delete(oldest);
    }
  }
}

/** The figures of a type's runs (newest first), read at `loadedAt`. */
function summarize(runs: readonly FinishedRun[], loadedAt: number): Entry {
  const counts = new Map<string, number>();
  for (const r of runs) if (r.resource !== null) counts.set(r.resource, (counts.get(r.resource) ?? 0) + 1);
  const byResource = new Map<string, TypicalRun>();
  for (const [resource, n] of counts) {
    if (n < MIN_HISTORY_RUNS) continue;
    const typical = typicalRun(runs, resource);
    if (typical !== undefined) byResource.set(resource, typical);
  }
  return { loadedAt, ofType: typicalRun(runs, null), byResource };
}
