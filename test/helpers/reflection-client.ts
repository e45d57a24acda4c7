// A grpc.reflection client (v1 or v1alpha) for tests: one bidirectional stream, one answer per request, in order.
import * as grpc from "@grpc/grpc-js";
import type { ServerReflectionRequest, ServerReflectionResponse } from "../../src/gen/grpc/reflection/v1/reflection.js";
import { ServerReflectionClient as ClientV1 } from "../../src/gen/grpc/reflection/v1/reflection.js";
import { ServerReflectionClient as ClientV1Alpha } from "../../src/gen/grpc/reflection/v1alpha/reflection.js";

/** The reflection protocol versions the server speaks (their messages are identical on the wire). */
export const REFLECTION_VERSIONS = ["v1", "v1alpha"] as const;
export type ReflectionVersion = (typeof REFLECTION_VERSIONS)[number];

/** One open ServerReflectionInfo stream. */
export interface ReflectionStream {
  /** Sends a request and resolves with the next response (rejects when the stream ends with an error). */
  ask(request: Partial<ServerReflectionRequest>): Promise<ServerReflectionResponse>;
  /** Resolves with the stream's final status once it ends (after end() or an error). */
  readonly done: Promise<grpc.StatusObject>;
  /** Half-closes the stream and closes the channel. */
  close(): void;
}

/** Opens ServerReflectionInfo on `address` with the given protocol version. */
export function openReflection(address: string, version: ReflectionVersion): ReflectionStream {
  const Client = version === "v1" ? ClientV1 : ClientV1Alpha;
  const client = new Client(address, grpc.credentials.createInsecure());
  const call = client.serverReflectionInfo() as unknown as grpc.ClientDuplexStream<
    ServerReflectionRequest,
    ServerReflectionResponse
  >;
  const waiting: { resolve(r: ServerReflectionResponse): void; reject(e: Error): void }[] = [];
  call.on("data", (response: ServerReflectionResponse) => waiting.shift()?.resolve(response));
  call.on("error", (error: Error) => {
    for (const w of waiting.splice(0)) w.reject(error);
  });
  const done = new Promise<grpc.StatusObject>((resolve) => call.on("status", resolve));
  return {
    ask: (request) =>
      new Promise((resolve, reject) => {
        waiting.push({ resolve, reject });
        call.write({ host: "", ...request });
      }),
    done,
    close: () => {
      call.end();
      client.close();
    },
  };
}

/** One request on a fresh stream. */
export async function askOnce(
  address: string,
  version: ReflectionVersion,
  request: Partial<ServerReflectionRequest>,
): Promise<ServerReflectionResponse> {
  const stream = openReflection(address, version);
  try {
    return await stream.ask(request);
  } finally {
    stream.close();
  }
}
