// Server reflection (v1 and v1alpha) serving the contract's file descriptors exactly as `buf build` compiled them.
import { ReflectionService } from "@grpc/reflection";
import type { Server } from "@grpc/grpc-js";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  FieldDescriptorProto_Label,
  FieldDescriptorProto_Type,
  FileDescriptorProtoSchema,
} from "@bufbuild/protobuf/wkt";
import { fileDescriptorProtos } from "./contract.js";

/**
 * The parts of @grpc/reflection's implementation (v1 and v1alpha share it) that we correct. It indexes
 * files after decoding them with protobufjs, whose re-encoding drops custom options (required_permission)
 * and unknown fields, and it derives each file's dependencies from type references only, which misses
 * imports used just for options (options.proto, descriptor.proto). Both would make a strict client
 * (grpcurl, buf curl) see descriptors that differ from the contract, so we put the originals back.
 */
interface ReflectionInternals {
  files: Record<string, object>;
  fileEncodings: Map<object, Uint8Array>;
  fileDependencies: Map<object, object[]>;
}

function isReflectionInternals(value: unknown): value is ReflectionInternals {
  const v = value as Partial<ReflectionInternals> | null;
  return (
    typeof v === "object" &&
    v !== null &&
    typeof v.files === "object" &&
    v.fileEncodings instanceof Map &&
    v.fileDependencies instanceof Map
  );
}

/** Makes one implementation serve `originals` byte for byte, with dependencies from their import lists. */
function serveOriginals(implementation: unknown, originals: ReadonlyMap<string, Uint8Array>): void {
  if (!isReflectionInternals(implementation)) {
    throw new Error("@grpc/reflection changed its internals; src/server/reflection.ts needs updating");
  }
  const { files, fileEncodings, fileDependencies } = implementation;
  for (const [name, bytes] of originals) {
    const file = files[name];
    if (file === undefined) continue;
    fileEncodings.set(file, bytes);
    const imports = fromBinary(FileDescriptorProtoSchema, bytes).dependency;
    fileDependencies.set(
      file,
      imports.map((dep) => files[dep]).filter((dep): dep is object => dep !== undefined),
    );
  }
}

const { STRING: TYPE_STRING, MESSAGE: TYPE_MESSAGE, ENUM: TYPE_ENUM } = FieldDescriptorProto_Type;
const { OPTIONAL: LABEL_OPTIONAL, REPEATED: LABEL_REPEATED } = FieldDescriptorProto_Label;

/**
 * grpc/health/v1/health.proto as protoc compiles it. grpc-health-check's own copy comes from
 * proto-loader, whose conversion leaves relative type names and a misnamed map entry that strict
 * clients reject ("type_name HealthCheckResponse not found"), so the file is spelled out here. It is
 * encoded with @bufbuild/protobuf, which keeps proto2 fields that are set to their default (labels,
 * enum value 0) as protoc does; Go-based clients (buf curl, grpcurl) need them.
 */
function healthFileDescriptor(): Uint8Array {
  const field = (name: string, number: number, type: FieldDescriptorProto_Type, typeName?: string) => ({
    name,
    number,
    label: LABEL_OPTIONAL,
    type,
    ...(typeName === undefined ? {} : { typeName }),
    jsonName: name,
  });
  const file = create(FileDescriptorProtoSchema, {
    name: "grpc/health/v1/health.proto",
    package: "grpc.health.v1",
    syntax: "proto3",
    messageType: [
      { name: "HealthListRequest" },
      {
        name: "HealthListResponse",
        field: [
          {
            ...field("statuses", 1, TYPE_MESSAGE, ".grpc.health.v1.HealthListResponse.StatusesEntry"),
            label: LABEL_REPEATED,
          },
        ],
        nestedType: [
          {
            name: "StatusesEntry",
            field: [
              field("key", 1, TYPE_STRING),
              field("value", 2, TYPE_MESSAGE, ".grpc.health.v1.HealthCheckResponse"),
            ],
            options: { mapEntry: true },
          },
        ],
      },
      { name: "HealthCheckRequest", field: [field("service", 1, TYPE_STRING)] },
      {
        name: "HealthCheckResponse",
        field: [field("status", 1, TYPE_ENUM, ".grpc.health.v1.HealthCheckResponse.ServingStatus")],
        enumType: [
          {
            name: "ServingStatus",
            value: [
              { name: "UNKNOWN", number: 0 },
              { name: "SERVING", number: 1 },
              { name: "NOT_SERVING", number: 2 },
              { name: "SERVICE_UNKNOWN", number: 3 },
            ],
          },
        ],
      },
    ],
    service: [
      {
        name: "Health",
        method: [
          {
            name: "Check",
            inputType: ".grpc.health.v1.HealthCheckRequest",
            outputType: ".grpc.health.v1.HealthCheckResponse",
          },
          {
            name: "List",
            inputType: ".grpc.health.v1.HealthListRequest",
            outputType: ".grpc.health.v1.HealthListResponse",
          },
          {
            name: "Watch",
            inputType: ".grpc.health.v1.HealthCheckRequest",
            outputType: ".grpc.health.v1.HealthCheckResponse",
            serverStreaming: true,
          },
        ],
      },
    ],
  });
  return toBinary(FileDescriptorProtoSchema, file);
}

/** The descriptors reflection serves: the contract's (from buf) and grpc.health.v1's. */
function descriptorFiles(): Uint8Array[] {
  return [...fileDescriptorProtos().map((b) => new Uint8Array(b)), healthFileDescriptor()];
}

/**
 * Adds grpc.reflection.v1 and v1alpha to the server, so `grpcurl list`, `describe` and calls work with
 * no .proto file. Returns the names of the services it lists.
 */
export function addReflection(server: Pick<Server, "addService">): string[] {
  const files = descriptorFiles();
  const originals = new Map<string, Uint8Array>();
  for (const bytes of files) originals.set(fromBinary(FileDescriptorProtoSchema, bytes).name, bytes);
  // ReflectionService reads Object.values(pkg).forEach(({ fileDescriptorProtos }) => ...), the shape
  // proto-loader gives each entry of a package definition; one entry carrying every file is enough.
  const packageDefinition = { "jobwatch.contract": { fileDescriptorProtos: files } };
  const reflection = new ReflectionService(packageDefinition as never);
  const internals = reflection as unknown as { v1: unknown; v1Alpha: unknown };
  serveOriginals(internals.v1, originals);
  serveOriginals(internals.v1Alpha, originals);
  reflection.addToServer(server);
  return (internals.v1 as { listServices(q: string): { service: { name: string }[] } })
    .listServices("*")
    .service.map((s) => s.name);
}
