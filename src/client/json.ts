// The canonical proto3 JSON mapping of jobwatch messages (int64 as strings, enums by name, RFC 3339
// times, lowerCamelCase names), from the contract's own descriptors, for `--json` output and scripts.
import { createRequire } from "node:module";
import type { JsonValue, Registry } from "@bufbuild/protobuf";
import type { BinaryWriter } from "@bufbuild/protobuf/wire";
import { descriptorSetBase64 } from "../gen/descriptor-set.js";

// @bufbuild/protobuf's reflection runtime costs about 40 ms to load, a quarter of a CLI command's startup,
// and only --json needs it: it is required on first use instead of imported (the package ships CommonJS
// too, and nothing here shares its objects with the generated code, which uses only the wire format).
const require = createRequire(import.meta.url);
let loaded:
  | {
      protobuf: typeof import("@bufbuild/protobuf");
      registry: Registry;
    }
  | undefined;

/** A generated message's codec, as ts-proto emits it (Job, JobEvent, GetJobStatisticsResponse ...). */
export interface MessageCodec<T> {
  encode(message: T): BinaryWriter;
}

/**
 * The proto3 JSON of `message`, whose full protobuf name is `typeName` (e.g. "jobwatch.v1.Job"). ts-proto's
 * own toJSON writes int64 as numbers; this follows the specification, which every proto3 JSON parser reads.
 */
export function toProtoJson<T>(codec: MessageCodec<T>, typeName: string, message: T): JsonValue {
  if (loaded === undefined) {
    const protobuf = require("@bufbuild/protobuf") as typeof import("@bufbuild/protobuf");
    const { FileDescriptorSetSchema } = require("@bufbuild/protobuf/wkt") as typeof import("@bufbuild/protobuf/wkt");
    const set = protobuf.fromBinary(FileDescriptorSetSchema, Buffer.from(descriptorSetBase64, "base64"));
    loaded = { protobuf, registry: protobuf.createFileRegistry(set) };
  }
  const { protobuf, registry } = loaded;
  const schema = registry.getMessage(typeName);
  if (!schema) throw new Error(`unknown message type ${typeName}`);
  return protobuf.toJson(schema, protobuf.fromBinary(schema, codec.encode(message).finish()), { registry });
}
