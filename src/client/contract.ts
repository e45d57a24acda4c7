// The contract as the client reads it at run time: the one registry of its descriptors on the client side
// (each rpc's declared idempotency_level, and the proto3 JSON mapping of json.ts), decoded on first use.
// @bufbuild/protobuf's reflection runtime and the decoding cost a CLI command about 40 ms of startup, and
// only a failed call (may it be repeated?) and --json need them, so both are loaded by import() then: the
// same ES module copy of the package whose wire format the generated code imports, never a second one.
import type { FileRegistry } from "@bufbuild/protobuf";

/** What repeating an rpc does, as its `option idempotency_level` in the .proto says (google.protobuf.MethodOptions). */
export type Idempotency = "NO_SIDE_EFFECTS" | "IDEMPOTENT" | "IDEMPOTENCY_UNKNOWN";

/** The loaded contract: the protobuf runtime, the registry of the contract and its imports, each rpc's idempotency. */
export interface ClientContract {
  readonly protobuf: typeof import("@bufbuild/protobuf");
  readonly registry: FileRegistry;
  /** gRPC path ("/jobwatch.v1.JobService/GetJobDetails") -> its rpc's level, for every rpc of every service. */
  readonly idempotency: ReadonlyMap<string, Idempotency>;
}

let loading: Promise<ClientContract> | undefined;
let loaded: ClientContract | undefined;

/** The contract, decoded once per process from the descriptor set buf compiled (loaded by the first caller). */
export function loadContract(): Promise<ClientContract> {
  loading ??= (async () => {
    const [protobuf, wkt, { descriptorSetBase64 }] = await Promise.all([
      import("@bufbuild/protobuf"),
      import("@bufbuild/protobuf/wkt"),
      import("../gen/descriptor-set.js"),
    ]);
    const set = protobuf.fromBinary(wkt.FileDescriptorSetSchema, Buffer.from(descriptorSetBase64, "base64"));
    const registry = protobuf.createFileRegistry(set);
    const { NO_SIDE_EFFECTS, IDEMPOTENT } = wkt.MethodOptions_IdempotencyLevel;
    const idempotency = new Map<string, Idempotency>();
    for (const type of registry) {
      if (type.kind !== "service") continue;
      for (const method of type.methods) {
        const level =
          method.idempotency === NO_SIDE_EFFECTS
            ? "NO_SIDE_EFFECTS"
            : method.idempotency === IDEMPOTENT
              ? "IDEMPOTENT"
              : "IDEMPOTENCY_UNKNOWN";
        idempotency.set(`/${type.typeName}/${method.name}`, level);
      }
    }
    loaded = { protobuf, registry, idempotency };
    return loaded;
  })();
  return loading;
}

/** The contract if loadContract has finished, for code that must stay synchronous (json.ts). */
export function loadedContract(): ClientContract | undefined {
  return loaded;
}

/** The idempotency level the contract declares for the rpc at `path`; IDEMPOTENCY_UNKNOWN when none. */
export async function idempotencyOf(path: string): Promise<Idempotency> {
  return (await loadContract()).idempotency.get(path) ?? "IDEMPOTENCY_UNKNOWN";
}
