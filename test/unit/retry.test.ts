// The client's retry rule: each rpc's idempotency_level as the contract declares it, and the decision per status code.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { status } from "@grpc/grpc-js";
import type { Idempotency } from "../../src/client/contract.js";
import { idempotencyOf, loadContract } from "../../src/client/contract.js";
import { isRetryable } from "../../src/client/retry.js";

describe("idempotency from the contract", () => {
  test("every jobwatch rpc is read, with the level its .proto declares", async () => {
    const jobwatch = [...(await loadContract()).idempotency].filter(([path]) => path.startsWith("/jobwatch.v1."));
    assert.deepEqual(Object.fromEntries(jobwatch), {
      "/jobwatch.v1.JobService/GetJobDetails": "NO_SIDE_EFFECTS",
      "/jobwatch.v1.JobService/WatchJob": "NO_SIDE_EFFECTS",
      "/jobwatch.v1.JobService/WatchJobs": "NO_SIDE_EFFECTS",
      "/jobwatch.v1.JobService/ListJobs": "NO_SIDE_EFFECTS",
      "/jobwatch.v1.JobService/GetJobStatistics": "NO_SIDE_EFFECTS",
      "/jobwatch.v1.JobService/CancelJob": "IDEMPOTENT",
      "/jobwatch.v1.JobService/GetJobHistory": "NO_SIDE_EFFECTS",
      "/jobwatch.v1.JobWorkerService/CreateJob": "IDEMPOTENT",
      "/jobwatch.v1.JobWorkerService/StartJob": "IDEMPOTENCY_UNKNOWN",
      "/jobwatch.v1.JobWorkerService/ReportProgress": "IDEMPOTENT",
      "/jobwatch.v1.JobWorkerService/Heartbeat": "IDEMPOTENT",
      "/jobwatch.v1.JobWorkerService/CompleteJob": "IDEMPOTENCY_UNKNOWN",
      "/jobwatch.v1.JobWorkerService/FailJob": "IDEMPOTENCY_UNKNOWN",
      "/jobwatch.v1.JobWorkerService/MarkCancelled": "IDEMPOTENCY_UNKNOWN",
      "/jobwatch.v1.JobWebhookService/CreateWebhook": "IDEMPOTENCY_UNKNOWN",
      "/jobwatch.v1.JobWebhookService/ListWebhooks": "NO_SIDE_EFFECTS",
      "/jobwatch.v1.JobWebhookService/DeleteWebhook": "IDEMPOTENT",
      "/jobwatch.v1.JobWebhookService/ListWebhookDeliveries": "NO_SIDE_EFFECTS",
      "/jobwatch.v1.JobWebhookService/ReplayWebhookDeliveries": "IDEMPOTENT",
    });
  });

  test("a path the contract does not know is IDEMPOTENCY_UNKNOWN: never assumed safe", async () => {
    assert.equal(await idempotencyOf("/jobwatch.v1.JobService/NoSuchRpc"), "IDEMPOTENCY_UNKNOWN");
  });
});

describe("isRetryable", () => {
  const LEVELS: Idempotency[] = ["NO_SIDE_EFFECTS", "IDEMPOTENT", "IDEMPOTENCY_UNKNOWN"];
  const sent = "read ECONNRESET";
  const check = (code: status, message: string, expected: [boolean, boolean, boolean], cancelledByUs = false) => {
    LEVELS.forEach((level, i) => {
      assert.equal(
        isRetryable({ code, message, cancelledByUs }, level),
        expected[i],
        `${status[code]} "${message}"${cancelledByUs ? " (cancelled by us)" : ""} for ${level}`,
      );
    });
  };

  test("UNAVAILABLE: a repeatable call always; any other only when it never left the client", () => {
    check(status.UNAVAILABLE, sent, [true, true, false]);
    check(status.UNAVAILABLE, "server is shutting down: reconnect and resume with after_revision=3", [
      true,
      true,
      false,
    ]);
    check(
      status.UNAVAILABLE,
      "No connection established. Last error: connect ECONNREFUSED 127.0.0.1:1. Resolution note: ",
      [true, true, true],
    );
    check(status.UNAVAILABLE, "round_robin: No connection established. Last error: x", [true, true, true]);
  });

  test("ABORTED: the server wrote nothing, so every call goes again", () => {
    check(status.ABORTED, "lost a race with other writers; try again", [true, true, true]);
  });

  test("CANCELLED: a server that went away is like UNAVAILABLE; our own cancel never", () => {
    check(status.CANCELLED, "Cancelled on client", [true, true, false]);
    check(status.CANCELLED, "Cancelled on client", [false, false, false], true);
  });

  test("INTERNAL: only a stream reset by a torn-down connection, for a repeatable call", () => {
    check(status.INTERNAL, "Received RST_STREAM with code 2 triggered by internal client error", [true, true, false]);
    check(status.INTERNAL, "internal error (see server log)", [false, false, false]);
  });

  test("every other code is the server's answer or the caller's budget: never repeated", () => {
    const never = [
      status.OK,
      status.UNKNOWN,
      status.INVALID_ARGUMENT,
      status.DEADLINE_EXCEEDED,
      status.NOT_FOUND,
      status.ALREADY_EXISTS,
      status.PERMISSION_DENIED,
      status.RESOURCE_EXHAUSTED,
      status.FAILED_PRECONDITION,
      status.OUT_OF_RANGE,
      status.UNIMPLEMENTED,
      status.DATA_LOSS,
      status.UNAUTHENTICATED,
    ];
    for (const code of never) check(code, "No connection established", [false, false, false]);
  });
});
