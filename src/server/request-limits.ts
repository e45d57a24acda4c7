// The largest request each jobwatch rpc needs, from the contract's field limits: anything larger is refused
// RESOURCE_EXHAUSTED before it is decoded, instead of every rpc taking grpc-js's 4 MiB.
const KIB = 1024;

/** Every jobwatch request fits in this: ids, filters, a 1,000-character detail or reason, a cursor (at most 16 KiB). */
const DEFAULT_RPC_REQUEST_BYTES = 64 * KIB;

/**
 * The rpcs that need more: CompleteJob's result (65,536 bytes of JSON can take about 6 times that as a
 * google.protobuf.Struct: [0,0,...] is 2 bytes of JSON and 11 of protobuf per element) and FailJob's error
 * (16,384 characters, up to 4 bytes each).
 */
const LARGER: Readonly<Record<string, number>> = {
  "/jobwatch.v1.JobWorkerService/CompleteJob": 1024 * KIB,
  "/jobwatch.v1.JobWorkerService/FailJob": 128 * KIB,
};

/**
 * The request limit of the rpc at `path`, never above the server-wide `max` (JOBWATCH_MAX_REQUEST_BYTES);
 * undefined for health and reflection, which keep grpc-js's server-wide limit alone.
 */
export function requestLimit(path: string, max: number): number | undefined {
  if (!path.startsWith("/jobwatch.v1.")) return undefined;
  return Math.min(max, LARGER[path] ?? DEFAULT_RPC_REQUEST_BYTES);
}
