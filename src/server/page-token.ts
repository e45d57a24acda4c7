// Page tokens: ListJobs' (where the previous page ended, bound to the query's filters) and GetJobHistory's (bound to the job).
import { createHash } from "node:crypto";
import { InvalidArgumentError } from "../errors.js";
import type { ListJobsQuery } from "../store/store.js";

/** What a ListJobs page token carries: where the previous page ended, and which query it belongs to. */
export interface PageCursor {
  createdAt: number;
  jobId: string;
  filterHash: string;
}

/** Filters that a page token is bound to (everything but the page size and the token itself). */
export type ListFilters = Omit<ListJobsQuery, "limit" | "after">;

/** A short digest of the effective filters, so a token from another query is recognized. */
export function filterHash(filters: ListFilters): string {
  const canonical = JSON.stringify([
    filters.username ?? null,
    filters.statuses ? [...filters.statuses].sort() : null,
    filters.operationType ?? null,
    filters.createdAfter ?? null,
    filters.createdBefore ?? null,
  ]);
  return createHash("sha256").update(canonical).digest("base64url").slice(0, 22);
}

/** Encodes a cursor as an opaque token (base64url of JSON). */
export function encodePageToken(cursor: PageCursor): string {
  return Buffer.from(JSON.stringify(cursor), "utf8").toString("base64url");
}

/** Longer page tokens are refused unread. */
const MAX_PAGE_TOKEN_CHARS = 1024;

const FOREIGN_TOKEN =
  "was issued for a query with other filters; repeat the filters of the first page (statuses, operation_type, created_after, created_before, username) or start again without page_token";
const MALFORMED_TOKEN =
  "is not a next_page_token of ListJobs; pass next_page_token unchanged, or leave it empty for the first page";

/** Decodes a token and checks it belongs to the filters whose filterHash is `hash`; INVALID_ARGUMENT if not. */
export function decodePageToken(token: string, hash: string): PageCursor {
  // A real token is about 120 characters; a huge one is not worth decoding.
  if (token.length > MAX_PAGE_TOKEN_CHARS) throw InvalidArgumentError.field("page_token", MALFORMED_TOKEN);
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
  } catch {
    throw InvalidArgumentError.field("page_token", MALFORMED_TOKEN);
  }
  const c = parsed as Partial<PageCursor> | null;
  if (
    typeof c !== "object" ||
    c === null ||
    typeof c.createdAt !== "number" ||
    !Number.isSafeInteger(c.createdAt) ||
    typeof c.jobId !== "string" ||
    typeof c.filterHash !== "string"
  ) {
    throw InvalidArgumentError.field("page_token", MALFORMED_TOKEN);
  }
  if (c.filterHash !== hash) throw InvalidArgumentError.field("page_token", FOREIGN_TOKEN);
  return { createdAt: c.createdAt, jobId: c.jobId, filterHash: c.filterHash };
}

// --- GetJobHistory ------------------------------------------------------------------------------------

const HISTORY_TOKEN =
  "is not a next_page_token of GetJobHistory for this job_id; pass next_page_token unchanged with the same job_id, or leave it empty for the first page";

/** GetJobHistory's page token: the job and the last revision sent (base64url of JSON). */
export function encodeHistoryToken(jobId: string, revision: number): string {
  return Buffer.from(JSON.stringify({ j: jobId, r: revision }), "utf8").toString("base64url");
}

/** The revision a GetJobHistory page token of `jobId` continues after; INVALID_ARGUMENT for anything else. */
export function decodeHistoryToken(token: string, jobId: string): number {
  if (token.length <= MAX_PAGE_TOKEN_CHARS) {
    try {
      const c = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as { j?: unknown; r?: unknown } | null;
      if (c !== null && c.j === jobId && typeof c.r === "number" && Number.isSafeInteger(c.r) && c.r >= 0) return c.r;
    } catch {
      // refused below
    }
  }
  throw InvalidArgumentError.field("page_token", HISTORY_TOKEN);
}
