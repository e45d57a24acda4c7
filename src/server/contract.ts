// The contract as the server reads it at run time: the permission table from each rpc's
// `required_permission` option, and the exact file descriptors that server reflection serves.

import type { FileRegistry } from "@bufbuild/protobuf";
import { createFileRegistry, fromBinary, getOption, hasOption } from "@bufbuild/protobuf";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { descriptorSetBase64 } from "../gen/descriptor-set.js";

const SET_BYTES: Uint8Array = new Uint8Array(Buffer.from(descriptorSetBase64, "base64"));

/** The contract and its imports as a serialized google.protobuf.FileDescriptorSet (a fresh copy). */
export function descriptorSetBytes(): Buffer {
  return Buffer.from(SET_BYTES);
}

/**
 * Each FileDescriptorProto of the set, byte for byte as `buf` produced it, in dependency order.
 * Split from the raw set rather than decoded and re-encoded, so reflection clients get the dependency
 * lists, comments and custom options exactly as compiled.
 */
export function fileDescriptorProtos(): Buffer[] {
  const files: Buffer[] = [];
  const reader = new BinaryReader(SET_BYTES);
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    // FileDescriptorSet.file = 1; nothing else is defined, but skip anything unknown.
    if (field === 1 && wireType === WireType.LengthDelimited) files.push(Buffer.from(reader.bytes()));
    else reader.skip(wireType, field);
  }
  return files;
}

/**
 * The compiled contract, its imports, health and reflection as a registry of descriptors: the server side's
 * one decoding of the set (the permission table, reflection's index, request decoding and the web routes
 * all read this one).
 */
export const CONTRACT_REGISTRY: FileRegistry = createFileRegistry(fromBinary(FileDescriptorSetSchema, SET_BYTES));

/** The full name of the method option through which the contract declares an rpc's permission. */
const REQUIRED_PERMISSION_OPTION = "jobwatch.v1.required_permission";

/**
 * gRPC path ("/jobwatch.v1.JobService/GetJobDetails") -> the permission its rpc declares, for every
 * rpc of every jobwatch.v1 service. An rpc without the option is absent, so the interceptor refuses it.
 */
function readPermissionTable(registry: FileRegistry = CONTRACT_REGISTRY): ReadonlyMap<string, string> {
  const option = registry.getExtension(REQUIRED_PERMISSION_OPTION);
  if (!option) {
    throw new Error(`the descriptor set does not define ${REQUIRED_PERMISSION_OPTION}; run 'npm run generate'`);
  }
  const table = new Map<string, string>();
  for (const type of registry) {
    if (type.kind !== "service") continue;
    for (const method of type.methods) {
      if (!hasOption(method, option)) continue;
      const permission: unknown = getOption(method, option);
      if (typeof permission === "string" && permission !== "") {
        table.set(`/${type.typeName}/${method.name}`, permission);
      }
    }
  }
  return table;
}

/** The permission table of the compiled contract (see readPermissionTable). */
export const PERMISSION_TABLE: ReadonlyMap<string, string> = readPermissionTable();
