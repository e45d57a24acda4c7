// JobWebhookService: register, list and delete webhooks, read their deliveries and attempts, replay a job's.
import type { Logger } from "pino";
import type { Principal } from "../auth/principal.js";
import { canManageJobs } from "../auth/principal.js";
import { msToDuration } from "../duration.js";
import { InvalidArgumentError, NotFoundError, PermissionDeniedError } from "../errors.js";
import {
  type JobWebhookServiceServer,
  type WebhookDelivery as ProtoDelivery,
  type Webhook as ProtoWebhook,
  WebhookDeliveryState,
} from "../gen/jobwatch/v1/job_webhook_service.js";
import type { JobStatus } from "../store/job.js";
import type { JobStore } from "../store/store.js";
import type { DeliveryState, ListedDelivery, Webhook } from "../store/webhooks.js";
import type { AddressPolicy } from "../webhooks/address-policy.js";
import { resolvedRefusal, urlRefusal } from "../webhooks/address-policy.js";
import { deliveryId } from "../webhooks/dispatcher.js";
import { newSecret } from "../webhooks/signature.js";
import { unaryHandler } from "./call-adapters.js";
import { statusToProto } from "./job-mapper.js";
import { statusFilter } from "./list-filters.js";
import { RequestValidator } from "./validate.js";

/** What JobWebhookService needs. */
export interface JobWebhookServiceDeps {
  store: JobStore;
  /** Which addresses an endpoint may resolve to (the dispatcher checks the same at every connection). */
  policy: AddressPolicy;
  log: Logger;
}

/** Statuses a webhook is told of when its request names none. */
const DEFAULT_STATUSES: JobStatus[] = ["completed", "failed", "cancelled"];
/** At most this many operation types in one filter. */
const MAX_OPERATION_TYPES = 20;
const DELIVERY_PAGE = { default: 100, max: 500 } as const;

const STATE_TO_PROTO: Record<DeliveryState, WebhookDeliveryState> = {
  pending: WebhookDeliveryState.WEBHOOK_DELIVERY_STATE_PENDING,
  delivered: WebhookDeliveryState.WEBHOOK_DELIVERY_STATE_DELIVERED,
  failed: WebhookDeliveryState.WEBHOOK_DELIVERY_STATE_FAILED,
};

function webhookToProto(w: Webhook): ProtoWebhook {
  return {
    webhookId: w.webhookId,
    url: w.url,
    owner: w.owner,
    operationTypes: w.operationTypes,
    statuses: w.statuses.map(statusToProto),
    allUsers: w.allUsers,
    createdAt: new Date(w.createdAt),
  };
}

function deliveryToProto(d: ListedDelivery): ProtoDelivery {
  return {
    deliveryId: deliveryId(d.deliverySeq),
    jobId: d.jobId,
    revision: d.revision,
    status: statusToProto(d.status),
    state: STATE_TO_PROTO[d.state],
    nextAttemptAt: d.state === "pending" ? new Date(d.nextAttemptAt) : undefined,
    deliveredAt: d.deliveredAt === null ? undefined : new Date(d.deliveredAt),
    attempts: d.attemptLog.map((a) => ({
      time: new Date(a.at),
      httpStatus: a.httpStatus ?? 0,
      error: a.error ?? "",
      latency: msToDuration(a.latencyMs),
    })),
  };
}

/** A deliveries page token: the webhook and the last delivery_seq of the page, so a token fits one webhook only. */
function encodeDeliveryToken(webhookId: string, seq: number): string {
  return Buffer.from(`${webhookId}:${seq}`).toString("base64url");
}

function decodeDeliveryToken(v: RequestValidator, token: string, webhookId: string): number | undefined {
  if (token === "") return undefined;
  const [id, seq] = Buffer.from(token, "base64url").toString().split(":");
  const n = Number(seq);
  if (id !== webhookId || !Number.isSafeInteger(n) || n < 1) {
    v.add("page_token", "is not a next_page_token of this webhook's deliveries; leave it empty for the first page");
    return undefined;
  }
  return n;
}

/** JobWebhookService over a store. */
export function createJobWebhookService(deps: JobWebhookServiceDeps): JobWebhookServiceServer {
  const { store, policy, log } = deps;

  /** The webhook if the caller owns it (or has manage_jobs); otherwise one NOT_FOUND, so ids cannot be probed. */
  const owned = async (principal: Principal, webhookId: string): Promise<Webhook> => {
    const webhook = await store.getWebhook(webhookId);
    if (webhook === undefined || (webhook.owner !== principal.username && !canManageJobs(principal))) {
      throw new NotFoundError(`webhook ${webhookId} not found`);
    }
    return webhook;
  };

  return {
    createWebhook: unaryHandler(log, async (request, { principal }) => {
      const v = new RequestValidator();
      const refusal = urlRefusal(request.url);
      if (refusal !== undefined) v.add("url", refusal);
      if (request.operationTypes.length > MAX_OPERATION_TYPES) {
        v.add("operation_types", `may name at most ${MAX_OPERATION_TYPES} types; got ${request.operationTypes.length}`);
      }
      const operationTypes = [
        ...new Set(
          request.operationTypes.slice(0, MAX_OPERATION_TYPES).map((t) => v.operationType(t, "operation_types")),
        ),
      ];
      const statuses = statusFilter(v, request.statuses) ?? DEFAULT_STATUSES;
      v.check();
      if (request.allUsers && !canManageJobs(principal)) {
        throw new PermissionDeniedError(
          "permission denied: a webhook for every user's jobs (all_users) needs permission 'manage_jobs'",
          "manage_jobs",
        );
      }
      const resolved = await resolvedRefusal(request.url, policy).catch((error: Error) => error.message);
      if (resolved !== undefined) throw InvalidArgumentError.field("url", resolved);
      const secret = newSecret();
      const webhook = await store.createWebhook({
        webhookId: crypto.randomUUID(),
        owner: principal.username,
        url: request.url,
        operationTypes,
        statuses,
        allUsers: request.allUsers,
        secret,
      });
      return { webhook: webhookToProto(webhook), secret };
    }),

    listWebhooks: unaryHandler(log, async (_request, { principal }) => {
      const webhooks = await store.listWebhooks(canManageJobs(principal) ? undefined : principal.username);
      return { webhooks: webhooks.map(webhookToProto) };
    }),

    deleteWebhook: unaryHandler(log, async (request, { principal }) => {
      const v = new RequestValidator();
      const webhookId = v.uuid("webhook_id", request.webhookId);
      v.check();
      await owned(principal, webhookId);
      await store.deleteWebhook(webhookId);
      return {};
    }),

    listWebhookDeliveries: unaryHandler(log, async (request, { principal }) => {
      const v = new RequestValidator();
      const webhookId = v.uuid("webhook_id", request.webhookId);
      const jobId = request.jobId === "" ? undefined : v.jobId(request.jobId);
      const pageSize = v.pageSize(request.pageSize, DELIVERY_PAGE);
      const beforeSeq = decodeDeliveryToken(v, request.pageToken, webhookId);
      v.check();
      await owned(principal, webhookId);
      const rows = await store.listDeliveries(webhookId, { jobId, limit: pageSize + 1, beforeSeq });
      const page = rows.slice(0, pageSize);
      const last = page.at(-1);
      const nextPageToken =
        rows.length > page.length && last !== undefined ? encodeDeliveryToken(webhookId, last.deliverySeq) : "";
      return { deliveries: page.map(deliveryToProto), nextPageToken };
    }),

    replayWebhookDeliveries: unaryHandler(log, async (request, { principal }) => {
      const v = new RequestValidator();
      const webhookId = v.uuid("webhook_id", request.webhookId);
      const jobId = v.jobId(request.jobId);
      if (request.fromRevision < 0) {
        v.add("from_revision", `must not be negative (0 or 1: every revision); got ${request.fromRevision}`);
      }
      v.check();
      await owned(principal, webhookId);
      const replayed = await store.replayDeliveries(webhookId, jobId, Math.max(1, request.fromRevision));
      return { replayed };
    }),
  };
}
