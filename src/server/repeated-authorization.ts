// Makes a call with two `authorization` headers reach the auth interceptor as two values, so it is refused.
import type { EventEmitter } from "node:events";
import type * as grpc from "@grpc/grpc-js";

const patched = new WeakSet<object>();

/**
 * Node's HTTP/2 layer treats `authorization` as a single-value header: of two, it keeps the first and
 * drops the second before grpc-js builds the call's metadata, so the "exactly one token" rule could
 * never run. The raw header list still has both, and is handed to 'stream' listeners: a listener that
 * runs before grpc-js's own puts every value back, and the interceptor then answers UNAUTHENTICATED.
 *
 * grpc-js keeps its HTTP/2 servers in a private field; a test sends two headers over raw HTTP/2, so a
 * grpc-js that moves the field fails that test rather than silently accepting the call. Call after
 * every bindAsync (servers already patched are skipped).
 */
export function refuseRepeatedAuthorization(grpcServer: grpc.Server): void {
  const servers = (grpcServer as unknown as { http2Servers?: Map<EventEmitter, unknown> }).http2Servers;
  for (const http2Server of servers?.keys() ?? []) {
    if (patched.has(http2Server)) continue;
    patched.add(http2Server);
    http2Server.prependListener(
      "stream",
      (_stream: unknown, headers: Record<string, unknown>, _flags: unknown, rawHeaders: unknown) => {
        if (!Array.isArray(rawHeaders)) return;
        let count = 0;
        for (let i = 0; i < rawHeaders.length; i += 2) {
          if (String(rawHeaders[i]).toLowerCase() === "authorization") count++;
        }
        // Only the count matters: placeholders, so no value (maybe a token) is ever echoed or logged.
        if (count > 1) headers.authorization = Array.from({ length: count }, () => "(repeated header)");
      },
    );
  }
}
