// A store Job written straight to the wire bytes of a response that carries it as field 1 (GetJobDetailsResponse,
// WatchJobResponse), without the generated message object, its Date objects or the generic protobuf writer.

import type { Estimate } from "../jobs/estimate.js";
import type { Job } from "../store/job.js";
import { BASIS_TO_PROTO, statusToProto, whereItIs } from "./job-mapper.js";

/**
 * The bytes of `{job: jobToProto(job, estimate)}` as ts-proto encodes a message whose field 1 is the Job,
 * byte for byte (test/unit/job-encoding.test.ts holds it to that for every field), written in one
 * pass into one buffer: the GetJobDetails hot path spent more on ts-proto's writer (an object per field,
 * a fork per timestamp, a Date per timestamp) than on the database read. A job with a result (a Struct)
 * or a negative number (a time before 1970) is written by the generated encoder instead (`fallback`).
 */
export function encodeJobResponse(job: Job, estimate: Estimate | undefined, fallback: () => Uint8Array): Buffer {
  if (job.result !== null || !writable(job, estimate)) {
    const bytes = fallback();
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  const fields = new JobFields(job, estimate);
  const inner = fields.size();
  const out = Buffer.allocUnsafe(1 + varintSize(inner) + inner);
  out[0] = 10; // field 1, length-delimited
  fields.write(out, writeVarint(out, 1, inner));
  return out;
}

/** True when every number of the job is one this encoder writes (non-negative). */
function writable(job: Job, estimate: Estimate | undefined): boolean {
  return (
    job.createdAt >= 0 &&
    job.updatedAt >= 0 &&
    job.progress >= 0 &&
    job.revision >= 0 &&
    (job.startedAt ?? 0) >= 0 &&
    (job.completedAt ?? 0) >= 0 &&
    (job.lastHeartbeatAt ?? 0) >= 0 &&
    (estimate === undefined || estimate.at >= 0)
  );
}

/** The Job message's fields of one job, sized once and then written. */
class JobFields {
  readonly #job: Job;
  readonly #status: number;
  readonly #estimate: Estimate | undefined;
  /** Phase and detail as the contract shows them (none for a COMPLETED job). */
  readonly #where: { phase: string | undefined; detail: string | undefined };
  #size = 0;

  constructor(job: Job, estimate: Estimate | undefined) {
    this.#job = job;
    this.#status = statusToProto(job.status);
    this.#estimate = estimate;
    this.#where = whereItIs(job.status, job.phase, job.detail);
  }

  /** The Job message's length in bytes. */
  size(): number {
    const j = this.#job;
    let n = stringField(1, j.jobId) + stringField(1, j.operationType);
    if (this.#status !== 0) n += 1 + varintSize(this.#status);
    n += timestampField(1, j.createdAt);
    if (j.startedAt !== null) n += timestampField(1, j.startedAt);
    if (j.completedAt !== null) n += timestampField(1, j.completedAt);
    if (j.progress !== 0) n += 1 + varintSize(j.progress);
    if (j.error !== null) n += presentString(1, j.error);
    n += stringField(1, j.username);
    if (j.revision !== 0) n += 1 + varintSize(j.revision);
    n += timestampField(1, j.updatedAt);
    if (j.cancelRequested) n += 2;
    if (j.cancelReason !== null) n += presentString(1, j.cancelReason);
    if (j.lastHeartbeatAt !== null) n += timestampField(1, j.lastHeartbeatAt);
    if (this.#where.phase !== undefined) n += presentString(2, this.#where.phase);
    if (this.#where.detail !== undefined) n += presentString(2, this.#where.detail);
    if (j.resource !== null) n += presentString(2, j.resource);
    if (this.#estimate !== undefined) {
      n += timestampField(2, this.#estimate.at);
      n += 2 + varintSize(BASIS_TO_PROTO[this.#estimate.basis]);
    }
    this.#size = n;
    return n;
  }

  /** Writes the fields (in field-number order, as ts-proto does) at `at`; size() came first. */
  write(out: Buffer, at: number): number {
    const j = this.#job;
    let p = at;
    if (j.jobId !== "") p = writeString(out, p, 10, j.jobId);
    if (j.operationType !== "") p = writeString(out, p, 18, j.operationType);
    if (this.#status !== 0) {
      out[p++] = 24;
      p = writeVarint(out, p, this.#status);
    }
    p = writeTimestamp(out, p, 34, j.createdAt);
    if (j.startedAt !== null) p = writeTimestamp(out, p, 42, j.startedAt);
    if (j.completedAt !== null) p = writeTimestamp(out, p, 50, j.completedAt);
    if (j.progress !== 0) {
      out[p++] = 56;
      p = writeVarint(out, p, j.progress);
    }
    if (j.error !== null) p = writeString(out, p, 74, j.error);
    if (j.username !== "") p = writeString(out, p, 82, j.username);
    if (j.revision !== 0) {
      out[p++] = 88;
      p = writeVarint(out, p, j.revision);
    }
    p = writeTimestamp(out, p, 98, j.updatedAt);
    if (j.cancelRequested) {
      out[p++] = 104;
      out[p++] = 1;
    }
    if (j.cancelReason !== null) p = writeString(out, p, 114, j.cancelReason);
    if (j.lastHeartbeatAt !== null) p = writeTimestamp(out, p, 122, j.lastHeartbeatAt);
    // Fields 16 and up: two-byte tags (130 = 16 << 3 | 2 as a varint is 0x82 0x01).
    if (this.#where.phase !== undefined) p = writeString(out, p, 130, this.#where.phase);
    if (this.#where.detail !== undefined) p = writeString(out, p, 138, this.#where.detail);
    if (j.resource !== null) p = writeString(out, p, 146, j.resource);
    const estimate = this.#estimate;
    if (estimate !== undefined) {
      p = writeTimestamp(out, p, 154, estimate.at);
      p = writeVarint(out, p, 160);
      p = writeVarint(out, p, BASIS_TO_PROTO[estimate.basis]);
    }
    if (p - at !== this.#size) throw new Error(`job encoding wrote ${p - at} bytes, sized ${this.#size}`);
    return p;
  }
}

/** Bytes of a varint of a non-negative integer up to 2^53. */
function varintSize(value: number): number {
  let n = 1;
  for (let v = value; v >= 128; v = Math.floor(v / 128)) n++;
  return n;
}

function writeVarint(out: Buffer, at: number, value: number): number {
  let p = at;
  let v = value;
  while (v >= 128) {
    out[p++] = (v % 128) | 128;
    v = Math.floor(v / 128);
  }
  out[p++] = v;
  return p;
}

/** A string field that proto3 leaves out when empty: tag, length, UTF-8 bytes. */
function stringField(tagBytes: number, value: string): number {
  return value === "" ? 0 : presentString(tagBytes, value);
}

/** An optional string field that is set (written even when empty). */
function presentString(tagBytes: number, value: string): number {
  const bytes = Buffer.byteLength(value, "utf8");
  return tagBytes + varintSize(bytes) + bytes;
}

function writeString(out: Buffer, at: number, tag: number, value: string): number {
  let p = writeVarint(out, at, tag);
  const bytes = Buffer.byteLength(value, "utf8");
  p = writeVarint(out, p, bytes);
  return p + out.write(value, p, bytes, "utf8");
}

/** google.protobuf.Timestamp of epoch ms >= 0: seconds (field 1) and nanos (field 2), each left out when 0. */
function timestampBody(ms: number): number {
  const seconds = Math.trunc(ms / 1000);
  const nanos = (ms % 1000) * 1_000_000;
  return (seconds === 0 ? 0 : 1 + varintSize(seconds)) + (nanos === 0 ? 0 : 1 + varintSize(nanos));
}

function timestampField(tagBytes: number, ms: number): number {
  const body = timestampBody(ms);
  return tagBytes + varintSize(body) + body;
}

function writeTimestamp(out: Buffer, at: number, tag: number, ms: number): number {
  let p = writeVarint(out, at, tag);
  p = writeVarint(out, p, timestampBody(ms));
  const seconds = Math.trunc(ms / 1000);
  const nanos = (ms % 1000) * 1_000_000;
  if (seconds !== 0) {
    out[p++] = 8;
    p = writeVarint(out, p, seconds);
  }
  if (nanos !== 0) {
    out[p++] = 16;
    p = writeVarint(out, p, nanos);
  }
  return p;
}
