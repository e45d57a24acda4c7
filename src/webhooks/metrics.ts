// The dispatcher's Prometheus metrics: attempts by outcome, their latency, deliveries ended, what is in
// flight here, and the outbox's backlog (read from the database when scraped, at most every few seconds).

import type { Registry } from "prom-client";
import { Counter, Gauge, Histogram } from "prom-client";
import type { JobStore } from "../store/store.js";

/** How one attempt ended: a 2xx, another answer, or no answer (and why). */
export type AttemptKind =
  | "success"
  | "http_4xx"
  | "http_5xx"
  | "http_other"
  | "timeout"
  | "connection_error"
  | "address_refused"
  | "shutdown";

/** Every AttemptKind, so each series exists (at 0) from the first scrape. */
const ATTEMPT_KINDS: readonly AttemptKind[] = [
  "success",
  "http_4xx",
  "http_5xx",
  "http_other",
  "timeout",
  "connection_error",
  "address_refused",
  "shutdown",
];

/** What the dispatcher reports; the no-op one when metrics are off. */
export interface DispatcherObserver {
  /** An attempt ended after `seconds`. */
  attempted(kind: AttemptKind, seconds: number): void;
  /** A delivery ended: delivered, or given up after the retry period. */
  ended(result: "delivered" | "given_up"): void;
  /** Deliveries this process has in flight now. */
  inFlight(n: number): void;
}

/** Reports nothing. */
export const NO_DISPATCHER_METRICS: DispatcherObserver = {
  attempted: () => undefined,
  ended: () => undefined,
  inFlight: () => undefined,
};

/** How often, at most, the outbox's backlog is counted (a scrape in between shows the last count). */
const BACKLOG_EVERY_MS = 5000;

/** Attempt latency buckets: a fast receiver's milliseconds up to the longest timeout one would set. */
const ATTEMPT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** The dispatcher's metrics in `registry`; the backlog gauge reads `store` when scraped. */
export function dispatcherMetrics(
  registry: Registry,
  store: Pick<JobStore, "deliveryBacklog">,
  now: () => number = Date.now,
): DispatcherObserver {
  const registers = [registry];
  const attempts = new Counter({
    name: "jobwatch_webhook_attempts_total",
    help: "Webhook delivery attempts made by this process, by outcome (success: a 2xx answer).",
    labelNames: ["outcome"],
    registers,
  });
  const byKind = new Map(ATTEMPT_KINDS.map((kind) => [kind, attempts.labels(kind)]));
  for (const child of byKind.values()) child.inc(0);
  const seconds = new Histogram({
    name: "jobwatch_webhook_attempt_duration_seconds",
    help: "Time from sending a webhook attempt to its answer (or to its timeout or error).",
    buckets: ATTEMPT_BUCKETS,
    registers,
  });
  const ended = new Counter({
    name: "jobwatch_webhook_deliveries_total",
    help: "Webhook deliveries that ended on this process: delivered (a 2xx), or given_up after the retry period.",
    labelNames: ["result"],
    registers,
  });
  const delivered = ended.labels("delivered");
  const givenUp = ended.labels("given_up");
  delivered.inc(0);
  givenUp.inc(0);
  const inFlight = new Gauge({
    name: "jobwatch_webhook_deliveries_in_flight",
    help: "Webhook deliveries this process is sending: claimed, and the answer not yet recorded.",
    registers,
  });

  let counted: { at: number; pending: number; oldestSince: number | null } | undefined;
  let counting: Promise<void> | undefined;
  const count = async (): Promise<void> => {
    if (counted !== undefined && now() - counted.at < BACKLOG_EVERY_MS) return;
    // Scrapes that arrive together share one count; a failed count keeps the previous figures.
    counting ??= store
      .deliveryBacklog()
      .then((b) => {
        counted = { at: now(), ...b };
      })
      .catch(() => undefined)
      .finally(() => {
        counting = undefined;
      });
    await counting;
  };
  new Gauge({
    name: "jobwatch_webhook_outbox_pending",
    help: `Webhook deliveries pending in the outbox, of every replica (counted at most every ${BACKLOG_EVERY_MS / 1000} s).`,
    registers,
    async collect() {
      await count();
      this.set(counted?.pending ?? 0);
    },
  });
  new Gauge({
    name: "jobwatch_webhook_outbox_oldest_pending_seconds",
    help: "How long the oldest pending webhook delivery has been tried (0 with none pending).",
    registers,
    async collect() {
      await count();
      const since = counted?.oldestSince ?? null;
      this.set(since === null ? 0 : Math.max(0, (now() - since) / 1000));
    },
  });

  return {
    attempted(kind, s) {
      byKind.get(kind)?.inc();
      seconds.observe(s);
    },
    ended(result) {
      (result === "delivered" ? delivered : givenUp).inc();
    },
    inFlight(n) {
      inFlight.set(n);
    },
  };
}
