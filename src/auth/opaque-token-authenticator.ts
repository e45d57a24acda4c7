// Checks jobwatch's own opaque tokens (jw_<id>_<secret>) against an in-memory copy of the active tokens, so
// the hot path (GetJobDetails) makes no database round trip, while revocations on any replica apply in seconds.
import { setTimeout as delay } from "node:timers/promises";
import type { Logger } from "pino";
import { UnauthenticatedError, UnavailableError } from "../errors.js";
import type { JobStore, TokenCredential } from "../store/store.js";
import type { Principal } from "./principal.js";
import { parseToken, tokenMatches } from "./tokens.js";

/** What to tell a caller who sent no token. */
const MISSING_TOKEN_MESSAGE =
  "missing authorization metadata: send 'authorization: Bearer <token>' (create a token with 'jobwatch token create')";
/** What to tell a caller whose header is not `Bearer <token>`. */
const MALFORMED_HEADER_MESSAGE =
  "malformed authorization metadata: expected 'authorization: Bearer <token>' with exactly one token";
/** What to tell a caller whose token is not in jobwatch's format. */
const MALFORMED_TOKEN_MESSAGE =
  "malformed token: a jobwatch token looks like jw_<id>_<secret>, as printed by 'jobwatch token create'";
/** Why an open stream ended when its token was revoked. */
const REVOKED_MESSAGE =
  "token revoked while the stream was open: get a valid token and open the stream again (resume with after_revision)";
/** Why an open stream ended when its token expired. */
const EXPIRED_MESSAGE =
  "token expired while the stream was open: get a fresh token and open the stream again (resume with after_revision)";
/** What to tell a caller whose token is well-formed but not active. */
const REJECTED_TOKEN_MESSAGE = "token rejected: unknown or revoked";

/** Distinct accepted `authorization` values remembered between two reloads of the tokens. */
const SEEN_LIMIT = 10_000;

/** Options of an OpaqueTokenAuthenticator. */
export interface OpaqueTokenAuthenticatorOptions {
  /** Where the tokens live; only activeTokens() is used. */
  store: Pick<JobStore, "activeTokens">;
  /** How often the background refresh reloads the active tokens. */
  refreshMs?: number;
  /**
   * The oldest the in-memory copy may be when a call is checked; older (the background refresh is
   * failing or late) and the call waits for a reload, or fails UNAVAILABLE if the reload fails. This is
   * what bounds how long a revoked token keeps working, whatever happens to the timer.
   */
  maxStaleMs?: number;
  /** Reloads forced by calls (unknown token, stale copy) start at most this often. */
  minForcedReloadMs?: number;
  /** The clock, for tests. */
  now?: () => number;
  /** Where failed reloads are reported. */
  log?: Pick<Logger, "warn">;
}

/** Checks opaque jobwatch tokens against a periodically reloaded copy of the store's active tokens. */
export class OpaqueTokenAuthenticator {
  private readonly store: Pick<JobStore, "activeTokens">;
  private readonly refreshMs: number;
  private readonly maxStaleMs: number;
  private readonly minForcedReloadMs: number;
  private readonly now: () => number;
  private readonly log: Pick<Logger, "warn"> | undefined;

  private tokens = new Map<string, TokenCredential>();
  /**
   * Principals of `authorization` values already checked against `tokens`, so a token seen before costs
   * a Map lookup instead of a parse and a sha256 per call. Emptied whenever `tokens` is replaced, so a
   * revocation applies as soon as the reload that brings it; bounded, so junk headers cannot grow it.
   */
  private seen = new Map<string, Principal>();
  /** When the load that produced `tokens` started: the copy is at least this fresh. */
  private loadedFrom = Number.NEGATIVE_INFINITY;
  // Loads are numbered as they start. "Did a load start after this call arrived?" is a question of
  // order, which a millisecond clock cannot answer (a token made and used within one ms of a load).
  private loadsStarted = 0;
  private loadedSeq = 0;
  private inflight: { promise: Promise<void>; seq: number } | undefined;
  private queued: Promise<void> | undefined;
  private lastForcedAt = Number.NEGATIVE_INFINITY;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  /** Open streams' principals, told when a reload no longer has their token (see watchCredentials). */
  private readonly watchers = new Set<{
    principal: Principal;
    fromTable: boolean;
    end(error: UnauthenticatedError): void;
  }>();

  constructor(options: OpaqueTokenAuthenticatorOptions) {
    this.store = options.store;
    this.refreshMs = options.refreshMs ?? 2000;
    this.maxStaleMs = options.maxStaleMs ?? 5000;
    this.minForcedReloadMs = options.minForcedReloadMs ?? 500;
    this.now = options.now ?? Date.now;
    this.log = options.log;
  }

  /** Loads the tokens (throws if that fails) and starts the background refresh. */
  async start(): Promise<void> {
    await this.load();
    this.running = true;
    this.schedule();
  }

  /** Stops the background refresh and waits for a reload in progress, so the store can be closed. */
  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.inflight?.promise.catch(() => undefined);
  }

  /** Reloads the active tokens; resolves once a load that started after this call has finished. */
  async refresh(): Promise<void> {
    while (this.inflight) await this.inflight.promise.catch(() => undefined);
    return this.load();
  }

  /** Starts a load of the active tokens, or joins the one in progress. */
  private load(): Promise<void> {
    if (this.inflight) return this.inflight.promise;
    const startedAt = this.now();
    const seq = ++this.loadsStarted;
    const promise = this.store
      .activeTokens()
      .then((rows) => {
        this.tokens = new Map(rows.map((row) => [row.tokenId, row]));
        this.seen = new Map();
        this.loadedFrom = startedAt;
        this.loadedSeq = seq;
        for (const watcher of [...this.watchers]) {
          if (watcher.fromTable && !this.tokens.has(watcher.principal.tokenId)) {
            watcher.end(new UnauthenticatedError(REVOKED_MESSAGE));
          }
        }
      })
      .catch((err: unknown) => {
        this.log?.warn({ err }, "could not reload API tokens; keeping the previous copy");
        throw err;
      })
      .finally(() => {
        this.inflight = undefined;
      });
    this.inflight = { promise, seq };
    return promise;
  }

  /**
   * Calls `end` (once) when `principal`'s token stops being valid while a stream of it is open: when a
   * reload of the tokens (every refreshMs, so within the 5 s a revocation takes for unary calls) no
   * longer has it, or when its expiry (`expiresAt`, e.g. a JWT's exp) passes. Returns how to stop
   * watching; call it when the stream ends.
   */
  watchCredentials(principal: Principal, end: (error: UnauthenticatedError) => void): () => void {
    let timer: NodeJS.Timeout | undefined;
    const watcher = {
      principal,
      // Only a token of the tokens table can be revoked there; any other credential ends by its expiry.
      fromTable: this.tokens.has(principal.tokenId),
      end: (error: UnauthenticatedError) => {
        stop();
        end(error);
      },
    };
    const stop = (): void => {
      this.watchers.delete(watcher);
      if (timer) clearTimeout(timer);
    };
    this.watchers.add(watcher);
    const expiresAt = principal.expiresAt;
    // setTimeout holds at most ~24.8 days; a later expiry is looked at again when that one fires.
    const arm = (): void => {
      if (expiresAt === undefined) return;
      const left = expiresAt - this.now();
      if (left <= 0) {
        watcher.end(new UnauthenticatedError(EXPIRED_MESSAGE));
        return;
      }
      timer = setTimeout(arm, Math.min(left, 2 ** 31 - 1));
      timer.unref();
    };
    arm();
    return stop;
  }

  /**
   * The caller named by an `authorization` metadata value. Throws UnauthenticatedError (missing,
   * malformed, unknown or revoked token) with a message that says what to fix, or UnavailableError when
   * the tokens cannot be read.
   */
  async authenticate(authorization: string | undefined): Promise<Principal> {
    const known = this.cached(authorization);
    if (known !== undefined) return known;
    if (authorization === undefined || authorization.trim() === "") {
      throw new UnauthenticatedError(MISSING_TOKEN_MESSAGE);
    }
    const bearer = /^\s*bearer +(\S+)\s*$/i.exec(authorization);
    if (!bearer) throw new UnauthenticatedError(MALFORMED_HEADER_MESSAGE);
    const parsed = parseToken(bearer[1]!);
    if (!parsed) throw new UnauthenticatedError(MALFORMED_TOKEN_MESSAGE);

    const loadsBefore = this.loadsStarted;
    if (this.now() - this.loadedFrom > this.maxStaleMs) await this.loadAfter(loadsBefore);
    let credential = this.tokens.get(parsed.tokenId);
    if (!credential) {
      // Maybe made a moment ago through another replica: look again before saying no.
      await this.loadAfter(loadsBefore);
      credential = this.tokens.get(parsed.tokenId);
    }
    if (!credential || !tokenMatches(parsed.token, credential.secretHash)) {
      throw new UnauthenticatedError(REJECTED_TOKEN_MESSAGE);
    }
    const principal = { tokenId: credential.tokenId, username: credential.username, role: credential.role };
    // Only if no reload replaced the copy meanwhile (that one may not have this token any more).
    if (this.tokens.get(parsed.tokenId) === credential && this.seen.size < SEEN_LIMIT) {
      this.seen.set(authorization, principal);
    }
    return principal;
  }

  /**
   * The principal of an `authorization` value that authenticate() accepted since the last reload, while
   * the copy of the tokens is fresh enough; otherwise undefined (call authenticate()). Synchronous, so
   * the interceptor can pass a call on without waiting a turn.
   */
  cached(authorization: string | undefined): Principal | undefined {
    if (authorization === undefined || this.now() - this.loadedFrom > this.maxStaleMs) return undefined;
    return this.seen.get(authorization);
  }

  /**
   * Waits until the copy comes from a load numbered above `seq` (one that started after the caller
   * arrived). Such forced loads are shared by every waiting call and rate-limited, so a flood of
   * unknown tokens costs the database at most one query per minForcedReloadMs.
   */
  private async loadAfter(seq: number): Promise<void> {
    try {
      if (this.loadedSeq > seq) return;
      if (this.inflight && this.inflight.seq > seq) return await this.inflight.promise;
      this.queued ??= this.forcedReload();
      return await this.queued;
    } catch {
      throw new UnavailableError(
        "cannot check the token right now: the token table could not be read (database unreachable?); retry shortly",
      );
    }
  }

  private async forcedReload(): Promise<void> {
    try {
      // Always awaited, even for 0 ms: this function must not reach `finally` before its caller has
      // stored the promise in `queued`, or `queued` would keep a settled promise forever.
      await delay(Math.max(0, this.lastForcedAt + this.minForcedReloadMs - this.now()));
      // A load already running may have started before some waiter arrived: let it finish, then
      // start our own, which is then numbered above every waiter's.
      while (this.inflight) await this.inflight.promise.catch(() => undefined);
    } finally {
      // Cleared right before the load starts: callers that arrive after this point queue the next one.
      this.queued = undefined;
    }
    this.lastForcedAt = this.now();
    return this.load();
  }

  private schedule(): void {
    if (!this.running) return;
    // A chain of timeouts rather than an interval: a slow database never gets overlapping reloads.
    this.timer = setTimeout(() => {
      this.load()
        .catch(() => undefined) // logged in load(); the next tick tries again
        .finally(() => this.schedule());
    }, this.refreshMs);
    // The refresh alone must not keep a process alive (e.g. a test that forgets stop()).
    this.timer.unref();
  }
}
