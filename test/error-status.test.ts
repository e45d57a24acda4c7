// errorToStatus for the quota and out-of-range errors: the code a client sees and the detail it can decode.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import pino from "pino";
import { OutOfRangeError, ResourceExhaustedError } from "../src/errors.js";
import { QuotaFailure } from "../src/gen/google/rpc/error_details.js";
import { Status } from "../src/gen/google/rpc/status.js";
import { STATUS_DETAILS_TRAILER, errorToStatus } from "../src/server/error-status.js";

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
