// Webhook queries: the registrations, the outbox row each matching transition writes in its own
// transaction, the lease a dispatcher claims due rows with, their attempts, listing and replay.
import { CompiledQuery } from "kysely";
import type { Job, JobStatus } from "./job.js";
import { snapshotToJob } from "./rows.js";
import { IDENTIFIER_QUOTE } from "./sql-names.js";
import type { StoreDb } from "./transaction.js";

/** A registered webhook, as listed (no secret). */
export interface Webhook {
  webhookId: string;
  owner: string;
  url: string;
  /** Empty: every operation type. */
  operationTypes: string[];
  statuses: JobStatus[];
  allUsers: boolean;
  createdAt: number;
}

/** Input of createWebhook. */
export interface NewWebhook extends Omit<Webhook, "createdAt"> {
  /** "whsec_<base64>". */
  secret: string;
}

/** Where a delivery is. */
export type DeliveryState = "pending" | "delivered" | "failed";

/** One attempt of a delivery. */
export interface DeliveryAttempt {
  at: number;
  /** null: no answer (see error). */
  httpStatus: number | null;
  error: string | null;
  latencyMs: number;
}

/** One transition to tell one webhook. */
export interface WebhookDelivery {
  /** The outbox row's number; the webhook-id header is made of it. */
  deliverySeq: number;
  webhookId: string;
  jobId: string;
  revision: number;
  status: JobStatus;
  state: DeliveryState;
  attempts: number;
  nextAttemptAt: number;
  /** When this round of attempts began (created, or replayed). */
  since: number;
  deliveredAt: number | null;
}

/** A listed delivery with its last attempts, oldest first. */
export interface ListedDelivery extends WebhookDelivery {
  attemptLog: DeliveryAttempt[];
}

/** A delivery claimed for sending: where, with which secret, and the job as of its revision. */
export interface ClaimedDelivery extends WebhookDelivery {
  url: string;
  secret: string;
  /** undefined when the job's history is gone (retention removed the job). */
  job: Job | undefined;
}

/** How many deliveries a dispatcher may still take: per webhook, counting those it has in flight. */
export interface DeliveryRoom {
  perWebhook: number;
  inFlight: ReadonlyMap<string, number>;
}

/** The outbox's pending deliveries, every webhook's and every replica's. */
export interface DeliveryBacklog {
  pending: number;
  /** When the oldest pending delivery's round of attempts began (epoch ms); null with none pending. */
  oldestSince: number | null;
}

/** How an attempt ended. */
export type AttemptOutcome = { state: "delivered" } | { state: "pending"; retryAt: number } | { state: "failed" };

/** Attempts kept per delivery in a listing. */
const LISTED_ATTEMPTS = 20;

/** ",a,b," of a list: instr() then matches one item exactly on either dialect. */
const listText = (items: readonly string[]): string => (items.length === 0 ? "" : `,${items.join(",")},`);
const fromListText = (text: string): string[] => text.split(",").filter((s) => s !== "");

function rowToWebhook(row: {
  webhook_id: string;
  owner: string;
  url: string;
  operation_types: string;
  statuses: string;
  all_users: number;
  created_at: number | string;
}): Webhook {
  return {
    webhookId: row.webhook_id,
    owner: row.owner,
    url: row.url,
    operationTypes: fromListText(row.operation_types),
    statuses: fromListText(row.statuses) as JobStatus[],
    allUsers: Number(row.all_users) === 1,
    createdAt: Number(row.created_at),
  };
}

function rowToDelivery(row: Record<string, unknown>): WebhookDelivery {
  const num = (v: unknown): number => Number(v);
  return {
    deliverySeq: num(row.delivery_seq),
    webhookId: String(row.webhook_id),
    jobId: String(row.job_id),
    revision: num(row.revision),
    status: row.status as JobStatus,
    state: row.state as DeliveryState,
    attempts: num(row.attempts),
    nextAttemptAt: num(row.next_attempt_at),
    since: num(row.since),
    deliveredAt: row.delivered_at === null || row.delivered_at === undefined ? null : num(row.delivered_at),
  };
}

/** Registers a webhook, created now. */
export async function createWebhook(db: StoreDb, w: NewWebhook): Promise<Webhook> {
  const row = {
    webhook_id: w.webhookId,
    owner: w.owner,
    url: w.url,
    secret: w.secret,
    operation_types: listText(w.operationTypes),
    statuses: listText(w.statuses),
    all_users: w.allUsers ? 1 : 0,
    created_at: db.now(),
  };
  const k = db.kysely;
  await db.write(function* () {
    yield k.insertInto("webhooks").values(row).compile();
  });
  return rowToWebhook(row);
}

/** The owner's webhooks (every one with undefined), oldest first, at most 1000. */
export async function listWebhooks(db: StoreDb, owner: string | undefined): Promise<Webhook[]> {
  const rows = await db.kysely
    .selectFrom("webhooks")
    .selectAll()
    .$if(owner !== undefined, (q) => q.where("owner", "=", owner as string))
    .orderBy("created_at")
    .orderBy("webhook_id")
    .limit(1000)
    .execute();
  return rows.map(rowToWebhook);
}

/** One webhook, or undefined. */
export async function getWebhook(db: StoreDb, webhookId: string): Promise<Webhook | undefined> {
  const row = await db.kysely.selectFrom("webhooks").selectAll().where("webhook_id", "=", webhookId).executeTakeFirst();
  return row === undefined ? undefined : rowToWebhook(row);
}

/** Removes a webhook with its outbox and attempts; false when there was none. */
export async function deleteWebhook(db: StoreDb, webhookId: string): Promise<boolean> {
  const k = db.kysely;
  return db.write(function* () {
    yield k
      .deleteFrom("webhook_attempts")
      .where(
        "delivery_seq",
        "in",
        k.selectFrom("webhook_deliveries").select("delivery_seq").where("webhook_id", "=", webhookId),
      )
      .compile();
    yield k.deleteFrom("webhook_deliveries").where("webhook_id", "=", webhookId).compile();
    const r = yield k.deleteFrom("webhooks").where("webhook_id", "=", webhookId).compile();
    return Number(r.numAffectedRows ?? 0) > 0;
  });
}

/**
 * The outbox rows of a job reaching its status at its revision: one per webhook whose filter matches
 * (status, operation type, owner or all users), written by the transition's own transaction.
 */
export function outboxInsert(db: StoreDb, job: Job, now: number): CompiledQuery {
  const q = IDENTIFIER_QUOTE[db.dialect];
  const col = (name: string): string => `${q}${name}${q}`;
  return CompiledQuery.raw(
    `insert into ${col("webhook_deliveries")} (${["webhook_id", "job_id", "revision", "status", "state", "attempts", "next_attempt_at", "since", "created_at"].map(col).join(", ")}) ` +
      `select ${col("webhook_id")}, ?, ?, ?, 'pending', 0, ?, ?, ? from ${col("webhooks")} ` +
      `where instr(${col("statuses")}, ?) > 0 and (${col("operation_types")} = '' or instr(${col("operation_types")}, ?) > 0) ` +
      `and (${col("all_users")} = 1 or ${col("owner")} = ?)`,
    [job.jobId, job.revision, job.status, now, now, now, `,${job.status},`, `,${job.operationType},`, job.username],
  );
}

/**
 * Claims up to `limit` due deliveries for `owner` until now + leaseMs: pending, due, not leased by a
 * live dispatcher, the lowest pending revision of their (webhook, job) (so a job's deliveries go out in
 * revision order), at most room.perWebhook in flight per webhook here (counting room.inFlight). Each claim is a
 * conditional UPDATE: of dispatchers racing for a row (on any replica, on Galera too) exactly one wins.
 */
export async function claimDeliveries(
  db: StoreDb,
  owner: string,
  leaseMs: number,
  limit: number,
  room: DeliveryRoom,
): Promise<ClaimedDelivery[]> {
  const skip = [...room.inFlight].flatMap(([id, n]) => (n >= room.perWebhook ? [id] : []));
  const q = IDENTIFIER_QUOTE[db.dialect];
  const c = (name: string, table = "d"): string => `${table}.${q}${name}${q}`;
  const now = db.now();
  const skipping = skip.length === 0 ? "" : ` and ${c("webhook_id")} not in (${skip.map(() => "?").join(", ")})`;
  const candidates = await db.query(
    CompiledQuery.raw(
      `select ${c("delivery_seq")}, ${c("webhook_id")} from ${q}webhook_deliveries${q} d where ${c("state")} = 'pending' and ${c("next_attempt_at")} <= ? ` +
        `and (${c("lease_until")} is null or ${c("lease_until")} < ?)${skipping} and not exists (select 1 from ${q}webhook_deliveries${q} e ` +
        `where ${c("webhook_id", "e")} = ${c("webhook_id")} and ${c("job_id", "e")} = ${c("job_id")} and ${c("state", "e")} = 'pending' ` +
        `and ${c("revision", "e")} < ${c("revision")}) order by ${c("next_attempt_at")}, ${c("delivery_seq")} limit ?`,
      [now, now, ...skip, limit],
    ),
  );
  const k = db.kysely;
  const claimed: number[] = [];
  const taken = new Map(room.inFlight);
  for (const row of candidates.rows) {
    const seq = Number(row.delivery_seq);
    const webhookId = String(row.webhook_id);
    const busy = taken.get(webhookId) ?? 0;
    if (busy >= room.perWebhook) continue;
    const won = await db.write(function* () {
      const r = yield k
        .updateTable("webhook_deliveries")
        .set({ lease_owner: owner, lease_until: now + leaseMs })
        .where("delivery_seq", "=", seq)
        .where("state", "=", "pending")
        .where((eb) => eb.or([eb("lease_until", "is", null), eb("lease_until", "<", now)]))
        .compile();
      return Number(r.numAffectedRows ?? 0) === 1;
    });
    if (!won) continue;
    claimed.push(seq);
    taken.set(webhookId, busy + 1);
  }
  if (claimed.length === 0) return [];
  const rows = await db.kysely
    .selectFrom("webhook_deliveries as d")
    .innerJoin("webhooks as w", "w.webhook_id", "d.webhook_id")
    .leftJoin("job_events as e", (join) =>
      join.onRef("e.job_id", "=", "d.job_id").onRef("e.revision", "=", "d.revision"),
    )
    .selectAll("d")
    .select(["w.url", "w.secret", "e.snapshot"])
    .where("d.delivery_seq", "in", claimed)
    .execute();
  return rows.map((row) => ({
    ...rowToDelivery(row),
    url: row.url,
    secret: row.secret,
    job: row.snapshot === null ? undefined : snapshotToJob(row.snapshot),
  }));
}

/** Records an attempt of a claimed delivery and where it leaves it; the lease ends. */
export async function finishDelivery(
  db: StoreDb,
  owner: string,
  delivery: Pick<WebhookDelivery, "deliverySeq" | "attempts">,
  attempt: DeliveryAttempt,
  outcome: AttemptOutcome,
): Promise<boolean> {
  const k = db.kysely;
  return db.write(function* () {
    // Only while the lease is still this dispatcher's: one that answered after its lease ran out and another
    // dispatcher (any replica's) claimed the delivery must not end that one's attempt, record its attempt under
    // the same number, or free the lease the other holds. The other's attempt decides.
    const r = yield k
      .updateTable("webhook_deliveries")
      .set({
        state: outcome.state,
        attempts: delivery.attempts + 1,
        lease_owner: null,
        lease_until: null,
        ...(outcome.state === "delivered" ? { delivered_at: attempt.at } : {}),
        ...(outcome.state === "pending" ? { next_attempt_at: outcome.retryAt } : {}),
      })
      .where("delivery_seq", "=", delivery.deliverySeq)
      .where("lease_owner", "=", owner)
      .where("attempts", "=", delivery.attempts)
      .compile();
    if (Number(r.numAffectedRows ?? 0) !== 1) return false;
    yield k
      .insertInto("webhook_attempts")
      .values({
        delivery_seq: delivery.deliverySeq,
        attempt: delivery.attempts + 1,
        at: attempt.at,
        http_status: attempt.httpStatus,
        error: attempt.error,
        latency_ms: Math.round(attempt.latencyMs),
      })
      .compile();
    return true;
  });
}

/** How many deliveries are pending in the outbox, and since when the oldest (webhook_deliveries_due's prefix). */
export async function deliveryBacklog(db: StoreDb): Promise<DeliveryBacklog> {
  const row = await db.kysely
    .selectFrom("webhook_deliveries")
    .select((eb) => [
      eb.fn.countAll<number | string>().as("pending"),
      eb.fn.min<number | string | null>("since").as("oldest"),
    ])
    .where("state", "=", "pending")
    .executeTakeFirst();
  const oldest = row?.oldest ?? null;
  return { pending: Number(row?.pending ?? 0), oldestSince: oldest === null ? null : Number(oldest) };
}

/** A webhook's deliveries (one job's with jobId), newest first, before `beforeSeq`, with their last attempts. */
export async function listDeliveries(
  db: StoreDb,
  webhookId: string,
  query: { jobId?: string | undefined; limit: number; beforeSeq?: number | undefined },
): Promise<ListedDelivery[]> {
  const rows = await db.kysely
    .selectFrom("webhook_deliveries")
    .selectAll()
    .where("webhook_id", "=", webhookId)
    .$if(query.jobId !== undefined, (q) => q.where("job_id", "=", query.jobId as string))
    .$if(query.beforeSeq !== undefined, (q) => q.where("delivery_seq", "<", query.beforeSeq as number))
    .orderBy("delivery_seq", "desc")
    .limit(query.limit)
    .execute();
  const deliveries = rows.map((row): ListedDelivery => ({ ...rowToDelivery(row), attemptLog: [] }));
  if (deliveries.length === 0) return deliveries;
  const bySeq = new Map(deliveries.map((d) => [d.deliverySeq, d]));
  const attempts = await db.kysely
    .selectFrom("webhook_attempts")
    .selectAll()
    .where("delivery_seq", "in", [...bySeq.keys()])
    .orderBy("delivery_seq")
    .orderBy("attempt")
    .execute();
  for (const a of attempts) {
    const log = bySeq.get(Number(a.delivery_seq))?.attemptLog;
    log?.push({ at: Number(a.at), httpStatus: a.http_status, error: a.error, latencyMs: a.latency_ms });
    if (log !== undefined && log.length > LISTED_ATTEMPTS) log.shift();
  }
  return deliveries;
}

/** Makes a job's deliveries to a webhook from `fromRevision` on pending again, due now; how many. */
export async function replayDeliveries(
  db: StoreDb,
  webhookId: string,
  jobId: string,
  fromRevision: number,
): Promise<number> {
  const k = db.kysely;
  const now = db.now();
  return db.write(function* () {
    const r = yield k
      .updateTable("webhook_deliveries")
      .set({ state: "pending", next_attempt_at: now, since: now, delivered_at: null })
      .where("webhook_id", "=", webhookId)
      .where("job_id", "=", jobId)
      .where("revision", ">=", fromRevision)
      .compile();
    return Number(r.numAffectedRows ?? 0);
  });
}
