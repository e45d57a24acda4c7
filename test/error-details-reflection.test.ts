// Every error detail the server sends decodes in a client that knows nothing but the reflection protocol,
// the way grpcurl does it: google.rpc.Status and each detail's type (from its type URL) are resolved through
// the server's reflection, asked for their extensions, and decoded with a registry built from the returned
// FileDescriptorProtos. Nothing of jobwatch's generated code decodes anything here.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import { after, before, describe, test } from "node:test";
import type { FileRegistry, JsonObject } from "@bufbuild/protobuf";
import { create, createFileRegistry, fromBinary, toJson } from "@bufbuild/protobuf";
import type { FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import pino from "pino";
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  OutOfRangeError,
  PermissionDeniedError,
  ResourceExhaustedError,
  UnauthenticatedError,
  UnavailableError,
} from "../src/errors.js";
import { errorToStatus, STATUS_DETAILS_TRAILER } from "../src/server/error-status.js";
import { DIALECTS } from "./helpers/databases.js";
import type { ReflectionStream } from "./helpers/reflection-client.js";
import { openReflection } from "./helpers/reflection-client.js";
import type { TestServer } from "./helpers/server.js";
import { failure, startTestServer } from "./helpers/server.js";

/**
 * What grpcurl does with a status it cannot decode by itself: for each type name, file_containing_symbol,
 * then all_extension_numbers_of_type (an error here made grpcurl give up on the detail), on one stream.
 */
class ReflectionResolver {
  private readonly files = new Map<string, Uint8Array>();
  constructor(private readonly stream: ReflectionStream) {}

  /** Fetches the file of `typeName` and its imports, and checks the type's extensions can be listed. */
  async resolve(typeName: string): Promise<void> {
    const found = await this.stream.ask({ fileContainingSymbol: typeName });
    assert.equal(found.errorResponse, undefined, `${typeName}: ${found.errorResponse?.errorMessage}`);
    for (const bytes of found.fileDescriptorResponse?.fileDescriptorProto ?? []) {
      this.files.set(fromBinary(FileDescriptorProtoSchema, bytes).name, bytes);
    }
    const extensions = await this.stream.ask({ allExtensionNumbersOfType: typeName });
    assert.equal(extensions.errorResponse, undefined, `${typeName}: ${extensions.errorResponse?.errorMessage}`);
    assert.deepEqual(extensions.allExtensionNumbersResponse?.extensionNumber, []);
  }

  /** A registry of every file fetched so far (imports first, as a FileDescriptorSet must list them). */
  registry(): FileRegistry {
    const ordered: FileDescriptorProto[] = [];
    const seen = new Set<string>();
    const visit = (name: string): void => {
      const bytes = this.files.get(name);
      if (seen.has(name) || bytes === undefined) return;
      seen.add(name);
      const file = fromBinary(FileDescriptorProtoSchema, bytes);
      for (const dep of file.dependency) visit(dep);
      ordered.push(file);
    };
    for (const name of this.files.keys()) visit(name);
    return createFileRegistry(create(FileDescriptorSetSchema, { file: ordered }));
  }
}

/**
 * grpc-status-details-bin decoded through reflection alone, printed as grpcurl prints it: the Status in the
 * proto3 JSON mapping, each detail with its "@type".
 */
async function decodeThroughReflection(address: string, detailsBin: Buffer): Promise<JsonObject> {
  const stream = openReflection(address, "v1");
  try {
    const resolver = new ReflectionResolver(stream);
    await resolver.resolve("google.rpc.Status");
    const statusType = resolver.registry().getMessage("google.rpc.Status");
    assert.ok(statusType, "google.rpc.Status not resolvable");
    // Read the type URLs first (Status.details is a repeated Any), then resolve each type.
    const bare = fromBinary(statusType, detailsBin) as unknown as { details: { typeUrl: string }[] };
    for (const { typeUrl } of bare.details) await resolver.resolve(typeUrl.slice(typeUrl.lastIndexOf("/") + 1));
    const registry = resolver.registry();
    return toJson(statusType, fromBinary(statusType, detailsBin), { registry }) as JsonObject;
  } finally {
    stream.close();
  }
}

/** The grpc-status-details-bin trailer of a failed call. */
function detailsBin(error: grpc.ServiceError): Buffer {
  const [bytes] = error.metadata?.get(STATUS_DETAILS_TRAILER) ?? [];
  assert.ok(Buffer.isBuffer(bytes), `no ${STATUS_DETAILS_TRAILER} trailer`);
  return bytes;
}

for (const dialect of DIALECTS) {
  describe(`error details decode through reflection alone (${dialect})`, () => {
    let s: TestServer;
    before(async () => {
      s = await startTestServer({ dialect });
    });
    after(async () => {
      await s?.stop();
    });

    test("INVALID_ARGUMENT: google.rpc.BadRequest with its field violations", async () => {
      const error = await failure(s.as(s.tokens.alice).jobs.getJobDetails({ jobId: "not-a-uuid" }));
      assert.equal(error.code, grpc.status.INVALID_ARGUMENT);
      const json = await decodeThroughReflection(s.address, detailsBin(error));
      assert.deepEqual(json, {
        code: grpc.status.INVALID_ARGUMENT,
        message: error.details,
        details: [
          {
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            fieldViolations: [
              {
                field: "job_id",
                description: "must be a UUID like 3f0e2c1a-9b7d-4c2e-8f1a-2b3c4d5e6f70; got 'not-a-uuid'",
              },
            ],
          },
        ],
      });
    });

    test("UNAUTHENTICATED and PERMISSION_DENIED: google.rpc.ErrorInfo with reason, domain and metadata", async () => {
      const unauthenticated = await failure(s.as("not-a-token").jobs.getJobDetails({ jobId: randomUUID() }));
      assert.equal(unauthenticated.code, grpc.status.UNAUTHENTICATED);
      assert.deepEqual((await decodeThroughReflection(s.address, detailsBin(unauthenticated))).details, [
        { "@type": "type.googleapis.com/google.rpc.ErrorInfo", reason: "INVALID_TOKEN", domain: "jobwatch.v1" },
      ]);
      const denied = await failure(s.as(s.tokens.alice).worker.createJob({ operationType: "x", username: "alice" }));
      assert.equal(denied.code, grpc.status.PERMISSION_DENIED);
      assert.deepEqual((await decodeThroughReflection(s.address, detailsBin(denied))).details, [
        {
          "@type": "type.googleapis.com/google.rpc.ErrorInfo",
          reason: "MISSING_PERMISSION",
          domain: "jobwatch.v1",
          metadata: { permission: "report_jobs" },
        },
      ]);
    });

    test("ALREADY_EXISTS: google.rpc.ErrorInfo naming the active job; FAILED_PRECONDITION: PreconditionFailure", async () => {
      const { worker } = s.as(s.tokens.worker);
      const resource = randomUUID();
      const { job } = await worker.createJob({ operationType: "add_golden_repo", username: "alice", resource });
      const jobId = job?.jobId ?? "";
      const duplicate = await failure(
        worker.createJob({ operationType: "add_golden_repo", username: "alice", resource }),
      );
      assert.equal(duplicate.code, grpc.status.ALREADY_EXISTS);
      const [info] = (await decodeThroughReflection(s.address, detailsBin(duplicate))).details as JsonObject[];
      assert.equal(info?.["@type"], "type.googleapis.com/google.rpc.ErrorInfo");
      assert.equal(info?.domain, "jobwatch.v1");
      assert.deepEqual((info?.metadata as JsonObject | undefined)?.job_id, jobId);

      await worker.startJob({ jobId });
      const startedTwice = await failure(worker.startJob({ jobId }));
      assert.equal(startedTwice.code, grpc.status.FAILED_PRECONDITION);
      const [precondition] = (await decodeThroughReflection(s.address, detailsBin(startedTwice)))
        .details as JsonObject[];
      assert.equal(precondition?.["@type"], "type.googleapis.com/google.rpc.PreconditionFailure");
      const [violation] = (precondition?.violations ?? []) as JsonObject[];
      assert.equal(violation?.subject, jobId);
      assert.equal(typeof violation?.type, "string");
    });

    test("every detail type the error mapping can send resolves and decodes through reflection", async () => {
      // One error of each class the mapping knows, so a detail type added later is covered here too.
      const errors = [
        InvalidArgumentError.field("job_id", "bad"),
        new NotFoundError("missing"),
        new FailedPreconditionError("not running", "STATUS", "a-job"),
        new AlreadyExistsError("exists", "JOB_ALREADY_ACTIVE", { job_id: "a-job" }),
        new UnauthenticatedError("who"),
        new PermissionDeniedError("no", "report_jobs"),
        new UnavailableError("down"),
        new OutOfRangeError("too far"),
        new ResourceExhaustedError("too many watches", "watches of alice"),
      ];
      const log = pino({ level: "silent" });
      const sent = new Set<string>();
      for (const error of errors) {
        const status = errorToStatus(error, log);
        const [bytes] = status.metadata?.get(STATUS_DETAILS_TRAILER) ?? [];
        assert.ok(Buffer.isBuffer(bytes), `${error.name}: no details trailer`);
        const json = await decodeThroughReflection(s.address, bytes);
        assert.equal(json.code, status.code);
        for (const detail of (json.details ?? []) as JsonObject[]) sent.add(String(detail["@type"]));
      }
      // Every type the mapping packs (read from its source, so a new detail type fails here until an
      // error of it is added to the list above).
      const source = await readFile(new URL("../src/server/error-status.ts", import.meta.url), "utf8");
      const packed = new Set([...source.matchAll(/pack\(\s*"([\w.]+)"/g)].map((m) => `type.googleapis.com/${m[1]}`));
      assert.deepEqual([...sent].sort(), [...packed].sort());
      assert.deepEqual([...sent].sort(), [
        "type.googleapis.com/google.rpc.BadRequest",
        "type.googleapis.com/google.rpc.ErrorInfo",
        "type.googleapis.com/google.rpc.PreconditionFailure",
        "type.googleapis.com/google.rpc.QuotaFailure",
      ]);
    });
  });
}
