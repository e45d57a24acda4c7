// errorToStatus, the one error mapping, without a server: unexpected errors hide their detail, aborts are
// CANCELLED, quota and out-of-range errors carry the detail a client can decode.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import pino from "pino";
import { NotFoundError, OutOfRangeError, ResourceExhaustedError, UnavailableError } from "../../src/errors.js";
import { QuotaFailure } from "../../src/gen/google/rpc/error_details.js";
import { Status } from "../../src/gen/google/rpc/status.js";
import { errorToStatus, INTERNAL_MESSAGE, STATUS_DETAILS_TRAILER } from "../../src/server/error-status.js";

const log = pino({ level: "silent" });

/** The google.rpc.Status a rich-error client decodes from the trailer. */
function richDetails(status: grpc.StatusObject): Status {
  const [bytes] = status.metadata.get(STATUS_DETAILS_TRAILER);
  assert.ok(Buffer.isBuffer(bytes), "the status carries grpc-status-details-bin");
  return Status.decode(bytes);
}

describe("errorToStatus: quotas and positions", () => {
  test("ResourceExhaustedError is RESOURCE_EXHAUSTED with a QuotaFailure naming the subject", () => {
    const status = errorToStatus(
      new ResourceExhaustedError("alice has 100 open watches (the limit)", "user:alice"),
      log,
    );
    assert.equal(grpc.status[status.code], "RESOURCE_EXHAUSTED");
    assert.equal(status.details, "alice has 100 open watches (the limit)");
    const rich = richDetails(status);
    assert.equal(rich.details.length, 1);
    const any = rich.details[0]!;
    assert.equal(any.typeUrl, "type.googleapis.com/google.rpc.QuotaFailure");
    assert.deepEqual(QuotaFailure.decode(any.value).violations, [
      { subject: "user:alice", description: "alice has 100 open watches (the limit)" },
    ]);
  });

  test("OutOfRangeError is OUT_OF_RANGE with its message", () => {
    const status = errorToStatus(new OutOfRangeError("cursor too old: start again"), log);
    assert.equal(grpc.status[status.code], "OUT_OF_RANGE");
    assert.equal(status.details, "cursor too old: start again");
    assert.equal(richDetails(status).code, grpc.status.OUT_OF_RANGE);
  });
});

describe("errorToStatus", () => {
  test("an unexpected error is INTERNAL with a fixed message: no stack or detail reaches the client", () => {
    const status = errorToStatus(
      new TypeError("cannot read properties of undefined (reading 'x') at /srv/secret.ts:1"),
      log,
    );
    assert.equal(grpc.status[status.code], "INTERNAL");
    assert.equal(status.details, INTERNAL_MESSAGE);
    assert.deepEqual(status.metadata.getMap(), {});
    assert.equal(grpc.status[errorToStatus("a string", log).code], "INTERNAL");
  });

  test("an abort is CANCELLED; domain errors keep their code", () => {
    const aborted = new AbortController();
    aborted.abort();
    assert.equal(grpc.status[errorToStatus(aborted.signal.reason, log).code], "CANCELLED");
    assert.equal(grpc.status[errorToStatus(new UnavailableError("down"), log).code], "UNAVAILABLE");
    assert.equal(grpc.status[errorToStatus(new NotFoundError("gone"), log).code], "NOT_FOUND");
  });
});
