// The canonical proto3 JSON mapping of jobwatch messages (int64 as strings, enums by name, RFC 3339
// times, lowerCamelCase names), from the contract's own descriptors, for `--json` output and scripts.
import { createFileRegistry, fromBinary, toJson } from "@bufbuild/protobuf";
import type { JsonValue, Registry } from "@bufbuild/protobuf";
import type { BinaryWriter } from "@bufbuild/protobuf/wire";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { descriptorSetBase64 } from "../gen/descriptor-set.js";

let registry: Registry | undefined;

/** A generated message's codec, as ts-proto emits it (Job, JobEvent, GetJobStatisticsResponse ...). */
export interface MessageCodec<T> {
  encode(message: T): BinaryWriter;
}

/**
 * The proto3 JSON of `message`, whose full protobuf name is `typeName` (e.g. "jobwatch.v1.Job"). ts-proto's
 * own toJSON writes int64 as numbers; this follows the specification, which every proto3 JSON parser reads.
 */
export function toProtoJson<T>(codec: MessageCodec<T>, typeName: string, message: T): JsonValue {
  registry ??= createFileRegistry(fromBinary(FileDescriptorSetSchema, Buffer.from(descriptorSetBase64, "base64")));
  const schema = registry.getMessage(typeName);
  if (!schema) throw new Error(`unknown message type ${typeName}`);
  return toJson(schema, fromBinary(schema, codec.encode(message).finish()), { registry });
}
