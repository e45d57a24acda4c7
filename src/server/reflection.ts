// Server reflection (v1 and v1alpha) serving the contract's file descriptors exactly as `buf build` compiled them.
import { ReflectionService } from "@grpc/reflection";
import type { Server } from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import { FileDescriptorProto } from "../gen/google/protobuf/descriptor.js";
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
    const imports = FileDescriptorProto.decode(bytes).dependency;
    fileDependencies.set(
      file,
      imports.map((dep) => files[dep]).filter((dep): dep is object => dep !== undefined),
    );
  }
}

/** The descriptors reflection serves: the contract's (from buf) and grpc.health.v1's. */
function descriptorFiles(): Uint8Array[] {
  const files: Uint8Array[] = fileDescriptorProtos().map((b) => new Uint8Array(b));
  // grpc-health-check loads health.proto with proto-loader; the file has no imports, so its
  // re-encoding loses nothing, and listing it lets grpcurl call Health/Check with no .proto at hand.
  const method = Object.values(healthService)[0] as { requestType?: { fileDescriptorProtos?: Buffer[] } } | undefined;
  for (const bytes of method?.requestType?.fileDescriptorProtos ?? []) files.push(new Uint8Array(bytes));
  return files;
}

/**
 * Adds grpc.reflection.v1 and v1alpha to the server, so `grpcurl list`, `describe` and calls work with
 * no .proto file. Returns the names of the services it lists.
 */
export function addReflection(server: Pick<Server, "addService">): string[] {
  const files = descriptorFiles();
  const originals = new Map<string, Uint8Array>();
  for (const bytes of files) originals.set(FileDescriptorProto.decode(bytes).name ?? "", bytes);
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
