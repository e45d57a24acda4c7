// Server reflection at the protocol level, v1 and v1alpha: every request kind, its answers and its errors,
// checked against what grpc-go's reference server answers (the behaviour grpcurl and buf curl rely on).
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { status } from "@grpc/grpc-js";
import type { ServerReflectionResponse } from "../src/gen/grpc/reflection/v1/reflection.js";
import { fileDescriptorProtos } from "../src/server/contract.js";
import { askOnce, openReflection, REFLECTION_VERSIONS } from "./helpers/reflection-client.js";
import type { TestServer } from "./helpers/server.js";
import { startTestServer } from "./helpers/server.js";

/** The compiled bytes of each file of the embedded set, by file name. */
const COMPILED = new Map(
  fileDescriptorProtos().map((bytes) => [fromBinary(FileDescriptorProtoSchema, bytes).name, bytes]),
);

/** The file names of a file_descriptor_response, in order; fails on any other kind of answer. */
function fileNames(response: ServerReflectionResponse): string[] {
  assert.equal(response.errorResponse, undefined, `error response: ${response.errorResponse?.errorMessage}`);
  const files = response.fileDescriptorResponse?.fileDescriptorProto;
  assert.ok(files !== undefined, "no file_descriptor_response");
  return files.map((bytes) => fromBinary(FileDescriptorProtoSchema, bytes).name);
}

/** The NOT_FOUND error_response's message; fails on any other answer. */
function notFound(response: ServerReflectionResponse): string {
  assert.equal(response.errorResponse?.errorCode, status.NOT_FOUND, JSON.stringify(response));
  return response.errorResponse?.errorMessage ?? "";
}

/** `root` and every file it imports, transitively. */
function closure(root: string): Set<string> {
  const out = new Set<string>();
  const visit = (name: string): void => {
    if (out.has(name)) return;
    out.add(name);
    const bytes = COMPILED.get(name);
    assert.ok(bytes, `${name} is not in the set`);
    for (const dep of fromBinary(FileDescriptorProtoSchema, bytes).dependency) visit(dep);
  };
  visit(root);
  return out;
}

describe("server reflection protocol", () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer({ dialect: "sqlite" });
  });
  after(async () => {
    await s?.stop();
  });

  for (const version of REFLECTION_VERSIONS) {
    describe(`grpc.reflection.${version}`, () => {
      test("list_services names every registered service, both reflection versions included, sorted", async () => {
        const response = await askOnce(s.address, version, { host: "example:1", listServices: "*" });
        assert.equal(response.validHost, "example:1");
        assert.equal(response.originalRequest?.listServices, "*");
        assert.deepEqual(
          response.listServicesResponse?.service.map((x) => x.name),
          [
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
            "jobwatch.v1.JobService",
            "jobwatch.v1.JobWebhookService",
            "jobwatch.v1.JobWorkerService",
          ],
        );
        // grpcurl sends an empty list_services; it is still a list_services request.
        const empty = await askOnce(s.address, version, { listServices: "" });
        assert.equal(empty.listServicesResponse?.service.length, 6);
      });

      test("every listed service is described by its file", async () => {
        const list = await askOnce(s.address, version, { listServices: "" });
        const expected: Record<string, string> = {
          "grpc.health.v1.Health": "grpc/health/v1/health.proto",
          "grpc.reflection.v1.ServerReflection": "grpc/reflection/v1/reflection.proto",
          "grpc.reflection.v1alpha.ServerReflection": "grpc/reflection/v1alpha/reflection.proto",
          "jobwatch.v1.JobService": "jobwatch/v1/job_service.proto",
          "jobwatch.v1.JobWebhookService": "jobwatch/v1/job_webhook_service.proto",
          "jobwatch.v1.JobWorkerService": "jobwatch/v1/job_worker_service.proto",
        };
        for (const { name } of list.listServicesResponse?.service ?? []) {
          const names = fileNames(await askOnce(s.address, version, { fileContainingSymbol: name }));
          assert.equal(names[0], expected[name], name);
        }
      });

      test("file_by_filename: the file first, then each transitive import once, byte for byte as compiled", async () => {
        const response = await askOnce(s.address, version, { fileByFilename: "jobwatch/v1/job_service.proto" });
        const names = fileNames(response);
        assert.equal(names[0], "jobwatch/v1/job_service.proto");
        assert.deepEqual(new Set(names), closure("jobwatch/v1/job_service.proto"));
        assert.equal(new Set(names).size, names.length, "a file sent twice");
        (response.fileDescriptorResponse?.fileDescriptorProto ?? []).forEach((bytes, i) => {
          assert.deepEqual(Buffer.from(bytes), COMPILED.get(names[i] ?? ""), `${names[i]} differs from buf's`);
        });
      });

      test("file_by_filename of an unknown file is NOT_FOUND, and the stream keeps answering", async () => {
        const stream = openReflection(s.address, version);
        try {
          assert.match(notFound(await stream.ask({ fileByFilename: "nope.proto" })), /file not found: nope\.proto/);
          assert.deepEqual(fileNames(await stream.ask({ fileByFilename: "google/rpc/status.proto" })), [
            "google/rpc/status.proto",
            "google/protobuf/any.proto",
          ]);
        } finally {
          stream.close();
        }
      });

      const symbols: [kind: string, symbol: string, file: string][] = [
        ["service", "jobwatch.v1.JobService", "jobwatch/v1/job_service.proto"],
        ["method", "jobwatch.v1.JobWorkerService.CreateJob", "jobwatch/v1/job_worker_service.proto"],
        ["message", "jobwatch.v1.Job", "jobwatch/v1/job.proto"],
        ["nested message", "google.rpc.BadRequest.FieldViolation", "google/rpc/error_details.proto"],
        ["map entry", "google.rpc.ErrorInfo.MetadataEntry", "google/rpc/error_details.proto"],
        ["enum", "jobwatch.v1.JobStatus", "jobwatch/v1/job.proto"],
        ["enum value", "jobwatch.v1.JOB_STATUS_RUNNING", "jobwatch/v1/job.proto"],
        ["nested enum", "grpc.health.v1.HealthCheckResponse.ServingStatus", "grpc/health/v1/health.proto"],
        ["nested enum value", "grpc.health.v1.HealthCheckResponse.SERVING", "grpc/health/v1/health.proto"],
        ["field", "jobwatch.v1.WatchJobRequest.after_revision", "jobwatch/v1/job_service.proto"],
        ["oneof", "grpc.reflection.v1.ServerReflectionRequest.message_request", "grpc/reflection/v1/reflection.proto"],
        ["extension", "jobwatch.v1.required_permission", "jobwatch/v1/options.proto"],
        ["well-known type", "google.protobuf.Struct", "google/protobuf/struct.proto"],
      ];
      for (const [kind, symbol, file] of symbols) {
        test(`file_containing_symbol finds a ${kind} (${symbol})`, async () => {
          const names = fileNames(await askOnce(s.address, version, { fileContainingSymbol: symbol }));
          assert.equal(names[0], file);
          assert.deepEqual(new Set(names), closure(file));
        });
      }

      test("file_containing_symbol: unknown names, a leading dot and partial names are NOT_FOUND", async () => {
        for (const symbol of ["jobwatch.v1.Nope", ".jobwatch.v1.Job", "Job", "jobwatch", "jobwatch.v1", ""]) {
          const message = notFound(await askOnce(s.address, version, { fileContainingSymbol: symbol }));
          assert.match(message, /symbol not found/, symbol);
        }
        const dotted = notFound(await askOnce(s.address, version, { fileContainingSymbol: ".jobwatch.v1.Job" }));
        assert.match(dotted, /without a leading dot/);
      });

      test("file_containing_extension finds required_permission by its extendee and number", async () => {
        const names = fileNames(
          await askOnce(s.address, version, {
            fileContainingExtension: { containingType: "google.protobuf.MethodOptions", extensionNumber: 50001 },
          }),
        );
        assert.deepEqual(names, ["jobwatch/v1/options.proto", "google/protobuf/descriptor.proto"]);
      });

      test("file_containing_extension: a leading dot, another number or an unknown type is NOT_FOUND", async () => {
        const cases = [
          { containingType: ".google.protobuf.MethodOptions", extensionNumber: 50001 },
          { containingType: "google.protobuf.MethodOptions", extensionNumber: 50002 },
          { containingType: "google.protobuf.FieldOptions", extensionNumber: 50001 },
          { containingType: "no.such.Type", extensionNumber: 1 },
        ];
        for (const fileContainingExtension of cases) {
          const message = notFound(await askOnce(s.address, version, { fileContainingExtension }));
          assert.match(message, /extension \d+ of \S+ not found/);
        }
      });

      test("all_extension_numbers_of_type: the numbers of an extended message, [] for one without extensions", async () => {
        const extended = await askOnce(s.address, version, {
          allExtensionNumbersOfType: "google.protobuf.MethodOptions",
        });
        assert.deepEqual(extended.allExtensionNumbersResponse, {
          baseTypeName: "google.protobuf.MethodOptions",
          extensionNumber: [50001],
        });
        // grpcurl asks this for every message it meets; NOT_FOUND here is what kept it from decoding details.
        for (const type of [
          "google.rpc.BadRequest",
          "jobwatch.v1.Job",
          "google.protobuf.Any",
          "google.rpc.ErrorInfo.MetadataEntry",
        ]) {
          const response = await askOnce(s.address, version, { allExtensionNumbersOfType: type });
          assert.deepEqual(response.allExtensionNumbersResponse, { baseTypeName: type, extensionNumber: [] }, type);
        }
      });

      test("all_extension_numbers_of_type: an unknown type or a leading dot is NOT_FOUND", async () => {
        for (const type of ["no.such.Type", ".google.protobuf.MethodOptions", "jobwatch", ""]) {
          const message = notFound(await askOnce(s.address, version, { allExtensionNumbersOfType: type }));
          assert.match(message, /type not found/, type);
        }
      });

      test("all_extension_numbers_of_type of another known symbol (enum, service) is [], as grpc-go answers", async () => {
        for (const type of ["jobwatch.v1.JobStatus", "jobwatch.v1.JobService"]) {
          const response = await askOnce(s.address, version, { allExtensionNumbersOfType: type });
          assert.deepEqual(response.allExtensionNumbersResponse, { baseTypeName: type, extensionNumber: [] }, type);
        }
      });

      test("one stream sends each dependency once; the file asked for is always sent", async () => {
        const stream = openReflection(s.address, version);
        try {
          const first = fileNames(await stream.ask({ fileContainingSymbol: "jobwatch.v1.JobService" }));
          assert.ok(first.includes("google/protobuf/timestamp.proto"));
          const second = fileNames(await stream.ask({ fileContainingSymbol: "jobwatch.v1.JobWorkerService" }));
          // job_worker_service.proto imports nothing that job_service.proto did not bring already.
          assert.deepEqual(second, ["jobwatch/v1/job_worker_service.proto"]);
          const again = fileNames(await stream.ask({ fileByFilename: "jobwatch/v1/job.proto" }));
          assert.deepEqual(again, ["jobwatch/v1/job.proto"]);
        } finally {
          stream.close();
        }
        // A new stream starts afresh.
        const fresh = fileNames(await askOnce(s.address, version, { fileByFilename: "jobwatch/v1/job.proto" }));
        assert.deepEqual(new Set(fresh), closure("jobwatch/v1/job.proto"));
      });

      test("requests pipelined on one stream are answered in order, each echoing its request", async () => {
        const stream = openReflection(s.address, version);
        try {
          const answers = await Promise.all([
            stream.ask({ listServices: "" }),
            stream.ask({ fileContainingSymbol: "nope" }),
            stream.ask({ allExtensionNumbersOfType: "jobwatch.v1.Job" }),
            stream.ask({ fileByFilename: "google/protobuf/any.proto" }),
          ]);
          assert.equal(answers[0]?.originalRequest?.listServices, "");
          assert.equal(answers[1]?.originalRequest?.fileContainingSymbol, "nope");
          assert.ok(answers[1]?.errorResponse);
          assert.deepEqual(answers[2]?.allExtensionNumbersResponse?.extensionNumber, []);
          assert.deepEqual(fileNames(answers[3] as ServerReflectionResponse), ["google/protobuf/any.proto"]);
        } finally {
          stream.close();
        }
      });

      test("a request that asks nothing ends the stream with INVALID_ARGUMENT", async () => {
        const stream = openReflection(s.address, version);
        await assert.rejects(stream.ask({ host: "x" }), (error: { code?: number; details?: string }) => {
          assert.equal(error.code, status.INVALID_ARGUMENT);
          assert.match(error.details ?? "", /set one of file_by_filename/);
          return true;
        });
        stream.close();
      });
    });
  }
});
