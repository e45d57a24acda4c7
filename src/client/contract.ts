// The contract as the client reads it at run time: its descriptors, and each rpc's declared idempotency_level.
import { createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import type { FileRegistry } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema, MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { descriptorSetBase64 } from "../gen/descriptor-set.js";

/** What repeating an rpc does, as its `option idempotency_level` in the .proto says (google.protobuf.MethodOptions). */
export type Idempotency = "NO_SIDE_EFFECTS" | "IDEMPOTENT" | "IDEMPOTENCY_UNKNOWN";

let registry: FileRegistry | undefined;

/** The registry of the contract and its imports, built on first use from the descriptor set buf compiled. */
function contractRegistry(): FileRegistry {
  registry ??= createFileRegistry(fromBinary(FileDescriptorSetSchema, Buffer.from(descriptorSetBase64, "base64")));
  return registry;
}

/**
 * gRPC path ("/jobwatch.v1.JobService/GetJobDetails") -> the idempotency level its rpc declares, for
 * every rpc of every service in the descriptor set; an rpc that declares none is IDEMPOTENCY_UNKNOWN.
 */
export function readIdempotencyTable(files: FileRegistry = contractRegistry()): ReadonlyMap<string, Idempotency> {
  const table = new Map<string, Idempotency>();
  for (const type of files) {
    if (type.kind !== "service") continue;
    for (const method of type.methods) {
      const level =
        method.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS
          ? "NO_SIDE_EFFECTS"
          : method.idempotency === MethodOptions_IdempotencyLevel.IDEMPOTENT
            ? "IDEMPOTENT"
            : "IDEMPOTENCY_UNKNOWN";
      table.set(`/${type.typeName}/${method.name}`, level);
    }
  }
  return table;
}

let idempotencyTable: ReadonlyMap<string, Idempotency> | undefined;

/** The idempotency level the contract declares for the rpc at `path`; IDEMPOTENCY_UNKNOWN when none. */
export function idempotencyOf(path: string): Idempotency {
  idempotencyTable ??= readIdempotencyTable();
  return idempotencyTable.get(path) ?? "IDEMPOTENCY_UNKNOWN";
}
