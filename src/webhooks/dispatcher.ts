// The webhook dispatcher of one process: claims due deliveries from the outbox (a lease, so each goes out from
// one replica at a time), POSTs them signed, records every attempt, and retries with backoff for a bounded
// time. It runs beside the write path, never in it: a slow or dead receiver holds only its own slots.
import { randomUUID } from "node:crypto";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { performance } from "node:perf_hooks";
import type { Logger } from "pino";
import type { JobStore } from "../store/store.js";
import type { AttemptOutcome, ClaimedDelivery, DeliveryAttempt } from "../store/webhooks.js";
import type { AddressPolicy } from "./address-policy.js";
import { addressPolicy, guardedLookup } from "./address-policy.js";
import type { AttemptKind, DispatcherObserver } from "./metrics.js";
import { NO_DISPATCHER_METRICS } from "./metrics.js";
import { deliveryBody } from "./payload.js";
import { sign } from "./signature.js";

/** How deliveries are made (config.ts: JOBWATCH_WEBHOOK_*). */
export interface DispatcherSettings {
  /** How often the outbox is read for due deliveries. */
  pollMs: number;
  /** How long a receiver has to answer one attempt. */
  timeoutMs: number;
  /** Deliveries in flight at once per webhook, in this process. */
  concurrency: number;
  /** How long a delivery is retried (from its first attempt, or its replay) before it is given up. */
  retryForMs: number;
  /** The longest wait between two attempts (backoff doubles from 1 s up to it). */
  maxBackoffMs: number;
  /** CIDRs that may be called although link-local or metadata (JOBWATCH_WEBHOOK_ALLOW_ADDRESSES). */
  allowAddresses: readonly string[];
}

/** Defaults of DispatcherSettings. */
const DEFAULT_DISPATCHER_SETTINGS: DispatcherSettings = {
  pollMs: 500,
  timeoutMs: 10_000,
  concurrency: 4,
  retryForMs: 24 * 3_600_000,
  maxBackoffMs: 10 * 60_000,
  allowAddresses: [],
};

/** Deliveries this process has in flight at most, over all webhooks. */
const MAX_IN_FLIGHT = 64;
/** A receiver's answer body is read (and dropped) up to this many bytes. */
const MAX_ANSWER_BYTES = 64 * 1024;

/**
 * How long a claim holds a delivery: its attempt's timeout and a margin as long (1-5 s). A dispatcher that
 * died (kill -9) holds its deliveries this long; then any replica sends them again.
 */
function leaseMs(timeoutMs: number): number {
  return timeoutMs + Math.min(5000, Math.max(1000, timeoutMs));
}

/** The webhook-id header of a delivery: the same on every attempt and replay. */
export function deliveryId(deliverySeq: number): string {
  return `msg_${deliverySeq}`;
}

/** Delay before attempt `failures + 1`: 1 s doubling per failure, at most maxMs, with jitter (half to all of it). */
function backoffMs(failures: number, maxMs: number): number {
  const full = Math.min(maxMs, 1000 * 2 ** Math.min(failures - 1, 30));
  return full / 2 + (Math.random() * full) / 2;
}

/** What an attempt's POST came back with. */
interface Answer {
  status: number | null;
  error: string | null;
  kind: AttemptKind;
}

/** The kind of an answered attempt, by its HTTP status. */
function answeredKind(status: number): AttemptKind {
  if (status >= 200 && status < 300) return "success";
  if (status >= 400 && status < 500) return "http_4xx";
  if (status >= 500 && status < 600) return "http_5xx";
  return "http_other";
}

/** One process's dispatcher; start() once, stop() before the store closes. */
export class WebhookDispatcher {
  readonly #store: JobStore;
  readonly #log: Logger;
  readonly #settings: DispatcherSettings;
  readonly #policy: AddressPolicy;
  readonly #metrics: DispatcherObserver;
  readonly #owner = randomUUID();
  readonly #inFlight = new Map<string, number>();
  readonly #sending = new Set<Promise<void>>();
  readonly #aborts = new Set<AbortController>();
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #polling = false;

  constructor(deps: {
    store: JobStore;
    log: Logger;
    settings?: Partial<DispatcherSettings>;
    /** Where attempts and deliveries are counted (dispatcherMetrics); nowhere by default. */
    metrics?: DispatcherObserver;
  }) {
    this.#store = deps.store;
    this.#metrics = deps.metrics ?? NO_DISPATCHER_METRICS;
    this.#log = deps.log;
    this.#settings = { ...DEFAULT_DISPATCHER_SETTINGS, ...deps.settings };
    this.#policy = addressPolicy(this.#settings.allowAddresses);
  }

  start(): void {
    this.#schedule(0);
  }

  /** Stops claiming, aborts the attempts in flight (recorded, due again at once) and waits for them. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    for (const abort of this.#aborts) abort.abort();
    await Promise.allSettled([...this.#sending]);
  }

  #schedule(ms: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => void this.#poll(), ms);
    this.#timer.unref();
  }

  async #poll(): Promise<void> {
    if (this.#polling || this.#stopped) return;
    this.#polling = true;
    try {
      const room = MAX_IN_FLIGHT - this.#sending.size;
      if (room > 0) {
        const claimed = await this.#store.claimDeliveries(this.#owner, leaseMs(this.#settings.timeoutMs), room, {
          perWebhook: this.#settings.concurrency,
          inFlight: this.#inFlight,
        });
        for (const delivery of claimed) this.#launch(delivery);
      }
    } catch (error) {
      this.#log.warn({ err: error }, "webhook outbox could not be read; trying again");
    } finally {
      this.#polling = false;
      this.#schedule(this.#settings.pollMs);
    }
  }

  #launch(delivery: ClaimedDelivery): void {
    const webhook = delivery.webhookId;
    this.#inFlight.set(webhook, (this.#inFlight.get(webhook) ?? 0) + 1);
    const sending = this.#deliver(delivery)
      .catch((error: unknown) => this.#log.warn({ err: error, webhook }, "a webhook attempt could not be recorded"))
      .finally(() => {
        this.#sending.delete(sending);
        this.#metrics.inFlight(this.#sending.size);
        const left = (this.#inFlight.get(webhook) ?? 1) - 1;
        if (left === 0) this.#inFlight.delete(webhook);
        else this.#inFlight.set(webhook, left);
        // A slot freed: the next delivery of this job (revision order) may be due now.
        if (!this.#stopped) this.#schedule(0);
      });
    this.#sending.add(sending);
    this.#metrics.inFlight(this.#sending.size);
  }

  async #deliver(delivery: ClaimedDelivery): Promise<void> {
    const at = Date.now();
    const id = deliveryId(delivery.deliverySeq);
    const timestamp = Math.floor(at / 1000);
    const body = deliveryBody(delivery, delivery.job, at);
    const started = performance.now();
    const answer = await this.#post(delivery.url, body, {
      "content-type": "application/json",
      "user-agent": "jobwatch-webhooks",
      "webhook-id": id,
      "webhook-timestamp": String(timestamp),
      "webhook-signature": sign(delivery.secret, id, timestamp, body),
    });
    const attempt: DeliveryAttempt = {
      at,
      httpStatus: answer.status,
      error: answer.error,
      latencyMs: performance.now() - started,
    };
    this.#metrics.attempted(answer.kind, attempt.latencyMs / 1000);
    const ok = answer.status !== null && answer.status >= 200 && answer.status < 300;
    let outcome: AttemptOutcome;
    if (ok) outcome = { state: "delivered" };
    else if (this.#stopped) outcome = { state: "pending", retryAt: Date.now() };
    else {
      const retryAt = Date.now() + backoffMs(delivery.attempts + 1, this.#settings.maxBackoffMs);
      outcome =
        retryAt > delivery.since + this.#settings.retryForMs ? { state: "failed" } : { state: "pending", retryAt };
    }
    if (!ok) {
      this.#log.info(
        {
          webhook: delivery.webhookId,
          delivery: id,
          status: answer.status,
          error: answer.error,
          outcome: outcome.state,
        },
        "webhook attempt failed",
      );
    }
    if (!(await this.#store.finishDelivery(this.#owner, delivery, attempt, outcome))) {
      // The answer came after the lease ran out and another dispatcher claimed the delivery: its attempt
      // decides (the receiver may get this one's too, under the same webhook-id, and dedups it).
      this.#log.warn(
        { webhook: delivery.webhookId, delivery: id, outcome: outcome.state },
        "webhook attempt not recorded: its lease ran out and another dispatcher has the delivery",
      );
      return;
    }
    if (outcome.state === "delivered") this.#metrics.ended("delivered");
    else if (outcome.state === "failed") this.#metrics.ended("given_up");
  }

  /** POSTs `body`; the answer's status, or why there was none. Never throws. */
  #post(url: string, body: string, headers: Record<string, string>): Promise<Answer> {
    const abort = new AbortController();
    this.#aborts.add(abort);
    const timer = setTimeout(() => abort.abort(new Error("timeout")), this.#settings.timeoutMs);
    const request = url.startsWith("https:") ? httpsRequest : httpRequest;
    return new Promise<Answer>((resolve) => {
      const req = request(
        url,
        {
          method: "POST",
          headers: { ...headers, "content-length": Buffer.byteLength(body) },
          lookup: guardedLookup(this.#policy),
          signal: abort.signal,
          // A fresh connection per attempt: no pooled socket outlives the check of its address.
          agent: false,
        },
        (res) => {
          let read = 0;
          res.on("data", (chunk: Buffer) => {
            read += chunk.length;
            if (read > MAX_ANSWER_BYTES) res.destroy();
          });
          res.on("close", () => {
            const status = res.statusCode ?? null;
            resolve({ status, error: null, kind: status === null ? "connection_error" : answeredKind(status) });
          });
        },
      );
      req.on("error", (error: NodeJS.ErrnoException) => resolve(this.#unanswered(error, abort.signal)));
      req.end(body);
    }).finally(() => {
      clearTimeout(timer);
      this.#aborts.delete(abort);
    });
  }

  /** An attempt without an answer: a short reason, and its kind. */
  #unanswered(error: NodeJS.ErrnoException, signal: AbortSignal): Answer {
    const none = (why: string, kind: AttemptKind): Answer => ({ status: null, error: why, kind });
    if (signal.aborted) {
      return signal.reason instanceof Error && signal.reason.message === "timeout"
        ? none(`no answer within ${this.#settings.timeoutMs} ms`, "timeout")
        : none("the server shut down during the attempt", "shutdown");
    }
    if (error.code === "EADDRREFUSED") return none(error.message, "address_refused");
    if (error.code === "ECONNREFUSED") return none("connection refused", "connection_error");
    return none((error.code ?? error.message).slice(0, 200), "connection_error");
  }
}
