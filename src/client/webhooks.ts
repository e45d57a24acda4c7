// The webhook side of the library: JobWebhookService calls (need manage_webhooks).
import type { JobStatus } from "../gen/jobwatch/v1/job.js";
import {
  type CreateWebhookResponse,
  type ListWebhookDeliveriesResponse,
  JobWebhookServiceService as rpcs,
  type Webhook,
} from "../gen/jobwatch/v1/job_webhook_service.js";
import { type CallContext, type CallOptions, unaryCall } from "./call.js";

/** What to register. */
export interface NewWebhookInput {
  /** https://... (http:// only to a loopback host). */
  url: string;
  /** Only these operation types; default every type. */
  operationTypes?: string[];
  /** The statuses to be told of; default COMPLETED, FAILED and CANCELLED. */
  statuses?: JobStatus[];
  /** Every user's jobs (needs manage_jobs). */
  allUsers?: boolean;
}

/** The JobWebhookService calls. */
export interface WebhookClient {
  /** Registers a webhook; the response's secret is shown only here. */
  create(input: NewWebhookInput, options?: CallOptions): Promise<CreateWebhookResponse>;
  /** The caller's webhooks (everyone's with manage_jobs). */
  list(options?: CallOptions): Promise<Webhook[]>;
  delete(webhookId: string, options?: CallOptions): Promise<void>;
  /** One page of a webhook's deliveries (newest first) with their attempts. */
  deliveries(
    webhookId: string,
    query?: { jobId?: string; pageSize?: number; pageToken?: string },
    options?: CallOptions,
  ): Promise<ListWebhookDeliveriesResponse>;
  /** Sends a job's deliveries again from a revision on; how many. */
  replay(webhookId: string, jobId: string, fromRevision?: number, options?: CallOptions): Promise<number>;
}

/** The webhook calls on the client's channel. */
export function createWebhookClient(ctx: CallContext): WebhookClient {
  return {
    create: (input, options) =>
      unaryCall(
        ctx,
        rpcs.createWebhook,
        {
          url: input.url,
          operationTypes: input.operationTypes ?? [],
          statuses: input.statuses ?? [],
          allUsers: input.allUsers ?? false,
        },
        options,
      ),
    list: async (options) => (await unaryCall(ctx, rpcs.listWebhooks, {}, options)).webhooks,
    delete: async (webhookId, options) => {
      await unaryCall(ctx, rpcs.deleteWebhook, { webhookId }, options);
    },
    deliveries: (webhookId, query = {}, options) =>
      unaryCall(
        ctx,
        rpcs.listWebhookDeliveries,
        { webhookId, jobId: query.jobId ?? "", pageSize: query.pageSize ?? 0, pageToken: query.pageToken ?? "" },
        options,
      ),
    replay: async (webhookId, jobId, fromRevision = 0, options) =>
      (await unaryCall(ctx, rpcs.replayWebhookDeliveries, { webhookId, jobId, fromRevision }, options)).replayed,
  };
}
