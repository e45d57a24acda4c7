// The canonical proto3 JSON mapping of jobwatch messages (int64 as strings, enums by name, RFC 3339
// times, lowerCamelCase names), from the contract's own descriptors, for `--json` output and scripts.
import type { JsonValue } from "@bufbuild/protobuf";
import type { BinaryWriter } from "@bufbuild/protobuf/wire";
import { loadContract, loadedContract } from "./contract.js";

/** A generated message's codec, as ts-proto emits it (Job, JobEvent, GetJobStatisticsResponse ...). */
export interface MessageCodec<T> {
  encode(message: T): BinaryWriter;
}

/**
 * Loads what toProtoJson needs (the client's contract registry, see contract.ts); a command that prints
 * JSON awaits it once before its first toProtoJson, so the others never load @bufbuild/protobuf's runtime.
 */
export async function loadProtoJson(): Promise<void> {
  await loadContract();
}

/**
 * The proto3 JSON of `message`, whose full protobuf name is `typeName` (e.g. "jobwatch.v1.Job"). ts-proto's
 * own toJSON writes int64 as numbers; this follows the specification, which every proto3 JSON parser reads.
 * Only after loadProtoJson has finished.
 */
export function toProtoJson<T>(codec: MessageCodec<T>, typeName: string, message: T): JsonValue {
  const contract = loadedContract();
  if (contract === undefined) throw new Error("toProtoJson before loadProtoJson finished");
  const { protobuf, registry } = contract;
  const schema = registry.getMessage(typeName);
  if (!schema) throw new Error(`unknown message type ${typeName}`);
  return protobuf.toJson(schema, protobuf.fromBinary(schema, codec.encode(message).finish()), { registry });
}
