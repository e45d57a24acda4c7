// grpc.health.v1 for the server and each service, NOT_SERVING while the database cannot be reached.

import type { Server, ServiceDefinition } from "@grpc/grpc-js";
import type { ServingStatus } from "grpc-health-check";
import { HealthImplementation } from "grpc-health-check";
import type { Logger } from "pino";
import { HealthService } from "../gen/grpc/health/v1/health.js";
import type { StorageFaults } from "../store/guarded-store.js";
import type { JobStore } from "../store/store.js";

/** The names health answers for: "" (the whole server) and each jobwatch service. */
const HEALTH_SERVICE_NAMES: readonly string[] = [
  "",
  "jobwatch.v1.JobService",
  "jobwatch.v1.JobWorkerService",
  "jobwatch.v1.JobWebhookService",
];

/** What HealthMonitor needs. */
export interface HealthMonitorDeps {
  store: Pick<JobStore, "ping">;
  log: Logger;
  /** How often the database is pinged; default 2000 ms. */
  intervalMs?: number;
  /** A ping slower than this counts as unreachable; default 2000 ms. */
  pingTimeoutMs?: number;
  /** Storage faults met by calls: each triggers a check at once instead of at the next interval. */
  faults?: StorageFaults | undefined;
  /** Other conditions that make the replica unfit to serve: each returns why, or undefined when fine. */
  conditions?: (() => string | undefined)[] | undefined;
}

/**
 * Serves grpc.health.v1 and keeps every name's status in line with the database: a periodic ping (a
 * real read, a write probe while writes fail, the Galera node's readiness; see the store's ping) sets
 * them NOT_SERVING while it fails and SERVING again once it succeeds, so load balancers route around a
 * replica that has lost its database. A storage fault met by any call triggers a ping at once.
 */
export class HealthMonitor {
  /** The grpc-health-check implementation that answers Check, Watch and List. */
  readonly implementation: HealthImplementation;
  private readonly store: Pick<JobStore, "ping">;
  private readonly log: Logger;
  private readonly intervalMs: number;
  private readonly pingTimeoutMs: number;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private current: ServingStatus = "NOT_SERVING";
  private checking: Promise<void> | undefined;
  private readonly conditions: (() => string | undefined)[];
  private unsubscribe: (() => void) | undefined;

  constructor(deps: HealthMonitorDeps) {
    this.store = deps.store;
    this.log = deps.log;
    this.intervalMs = deps.intervalMs ?? 2000;
    this.pingTimeoutMs = deps.pingTimeoutMs ?? 2000;
    this.conditions = deps.conditions ?? [];
    // A call that met a storage fault is news: check now, so health follows within one ping, not an interval.
    this.unsubscribe = deps.faults?.onFault(() => {
      if (!this.stopped) void this.check();
    });
    // NOT_SERVING until the first ping has succeeded.
    this.implementation = new HealthImplementation(
      Object.fromEntries(HEALTH_SERVICE_NAMES.map((name) => [name, "NOT_SERVING" as ServingStatus])),
    );
  }

  /** The status every name currently has. */
  get status(): ServingStatus {
    return this.current;
  }

  /**
   * Registers grpc.health.v1.Health on the server (grpc-health-check calls nothing but addService), with
   * the generated decoders of the vendored health.proto: proto-loader's accept a truncated body as a valid
   * request, where every other service refuses it as INVALID_ARGUMENT.
   */
  addToServer(server: Pick<Server, "addService">): void {
    const strict: Pick<Server, "addService"> = {
      addService(definition, implementation) {
        const methods = Object.entries(definition).map(([name, method]) => {
          const generated = Object.values(HealthService as ServiceDefinition).find((m) => m.path === method.path);
          return [name, generated ? { ...method, requestDeserialize: generated.requestDeserialize } : method];
        });
        server.addService(Object.fromEntries(methods), implementation);
      },
    };
    this.implementation.addToServer(strict as Server);
  }

  /** Pings once (so the first answer is real) and then every interval. */
  async start(): Promise<void> {
    this.stopped = false;
    await this.check();
    this.schedule();
  }

  /** Stops pinging and reports NOT_SERVING: the server is going away. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.checking;
    this.set("NOT_SERVING");
  }

  /** Pings the database now and updates every status; concurrent calls share one ping. */
  check(): Promise<void> {
    this.checking ??= this.ping().finally(() => {
      this.checking = undefined;
    });
    return this.checking;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.check().then(() => this.schedule());
    }, this.intervalMs);
    this.timer.unref();
  }

  private async ping(): Promise<void> {
    let timeout: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.store.ping(),
        new Promise<never>((_, reject) => {
          timeout = setTimeout(
            () => reject(new Error(`no answer within ${this.pingTimeoutMs} ms`)),
            this.pingTimeoutMs,
          );
        }),
      ]);
      if (this.stopped) return;
      for (const condition of this.conditions) {
        const problem = condition();
        if (problem !== undefined) throw new Error(problem);
      }
      if (this.current !== "SERVING") this.log.info("database reachable: health SERVING");
      this.set("SERVING");
    } catch (err) {
      if (this.stopped) return;
      if (this.current !== "NOT_SERVING") this.log.warn({ err }, "database cannot serve: health NOT_SERVING");
      this.set("NOT_SERVING");
    } finally {
      clearTimeout(timeout);
    }
  }

  private set(status: ServingStatus): void {
    if (status === this.current) return;
    this.current = status;
    for (const name of HEALTH_SERVICE_NAMES) this.implementation.setStatus(name, status);
  }
}
