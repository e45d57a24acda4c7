// Caps on open streaming calls (WatchJob, WatchJobs): per user and per process, so no token can hold memory without bound.

import type { Principal } from "../auth/principal.js";
import { ResourceExhaustedError } from "../errors.js";

/** The caps; both count every open WatchJob and WatchJobs stream. */
export interface StreamLimitSettings {
  /** Open streams of one user (JOBWATCH_MAX_WATCHES_PER_USER). */
  perUser: number;
  /** Open streams of this process (JOBWATCH_MAX_WATCHES). */
  total: number;
}

/** The defaults: a dashboard or two per user, and what one process holds comfortably (~15-18 KiB a stream). */
const DEFAULT_STREAM_LIMITS: StreamLimitSettings = { perUser: 100, total: 20_000 };

/** Counts open streams; admit() refuses one over a cap with RESOURCE_EXHAUSTED and a QuotaFailure. */
export class StreamLimits {
  private open = 0;
  private readonly byUser = new Map<string, number>();

  constructor(private readonly settings: StreamLimitSettings = DEFAULT_STREAM_LIMITS) {}

  /** Streams open now. */
  get openStreams(): number {
    return this.open;
  }

  /**
   * Counts a new stream of `principal` and returns its release (call it once the stream is over; a second
   * call does nothing). Throws ResourceExhaustedError naming the limit when the user or the process is full.
   */
  admit(principal: Principal): () => void {
    const user = principal.username;
    const mine = this.byUser.get(user) ?? 0;
    if (mine >= this.settings.perUser) {
      throw new ResourceExhaustedError(
        `user ${user} already has ${mine} open watch streams, the most JOBWATCH_MAX_WATCHES_PER_USER=${this.settings.perUser} allows; ` +
          "end one (cancel a WatchJob or WatchJobs call) before opening another",
        `user:${user}`,
      );
    }
    if (this.open >= this.settings.total) {
      throw new ResourceExhaustedError(
        `this server already has ${this.open} open watch streams, the most JOBWATCH_MAX_WATCHES=${this.settings.total} allows; ` +
          "retry later or on another replica",
        "server",
      );
    }
    this.open++;
    this.byUser.set(user, mine + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.open--;
      const left = (this.byUser.get(user) ?? 1) - 1;
      if (left > 0) this.byUser.set(user, left);
      else this.byUser.delete(user);
    };
  }
}
