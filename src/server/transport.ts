// The transport's limits: grpc-js server options for each TransportLimits setting, the keepalive policy grpc-js does
// not enforce (a client pinging too often is told GOAWAY ENHANCE_YOUR_CALM), and each rpc's largest request.
import type { EventEmitter } from "node:events";
import { constants, type Http2Session } from "node:http2";
import type * as grpc from "@grpc/grpc-js";
import type { Logger } from "pino";
import type { TransportLimits } from "../config.js";

/** grpc-js server options for the limits grpc-js and Node's HTTP/2 enforce themselves. */
export function transportOptions(limits: TransportLimits): grpc.ServerOptions {
  return {
    // SETTINGS_MAX_CONCURRENT_STREAMS: a client's calls beyond it wait on its side for a free stream.
    "grpc.max_concurrent_streams": limits.maxStreamsPerConnection,
    // GOAWAY at the age (grpc-js adds up to 10% jitter), then the calls still open get the grace to finish.
    "grpc.max_connection_age_ms": limits.maxConnectionAgeMs,
    "grpc.max_connection_age_grace_ms": limits.maxConnectionAgeGraceMs,
    "grpc.max_connection_idle_ms": limits.maxConnectionIdleMs,
    // Node's maxSessionMemory (MB): past it, new streams on the connection are refused (ENHANCE_YOUR_CALM).
    "grpc-node.max_session_memory": limits.maxSessionMemoryMb,
    "grpc.max_receive_message_length": limits.maxRequestBytes,
  };
}

/** The bytes "too_many_pings" a GOAWAY carries, as gRPC servers send it (grpc-js clients then ping less often). */
const TOO_MANY_PINGS = Buffer.from("too_many_pings");

const policed = new WeakSet<object>();

/**
 * gRPC's keepalive enforcement (grpc-core's ping abuse policy), which grpc-js servers lack: a PING received
 * sooner than `minPingIntervalMs` after the previous one is a strike, a new call clears the strikes, and past
 * `maxPingStrikes` the connection gets GOAWAY ENHANCE_YOUR_CALM "too_many_pings" and is closed, instead of
 * the server answering pings forever. Like refuseRepeatedAuthorization it reaches grpc-js's HTTP/2 servers
 * through a private field (test/transport-limits.test.ts fails if that moves); call after every bindAsync.
 */
export function enforcePingPolicy(
  grpcServer: grpc.Server,
  limits: Pick<TransportLimits, "minPingIntervalMs" | "maxPingStrikes">,
  log: Logger,
): void {
  const servers = (grpcServer as unknown as { http2Servers?: Map<EventEmitter, unknown> }).http2Servers;
  for (const http2Server of servers?.keys() ?? []) {
    if (policed.has(http2Server)) continue;
    policed.add(http2Server);
    http2Server.on("session", (session: Http2Session) => {
      let last = Number.NEGATIVE_INFINITY;
      let strikes = 0;
      let lastStreamId = 0;
      session.on("stream", (stream: { id?: number }) => {
        strikes = 0;
        lastStreamId = Math.max(lastStreamId, stream.id ?? 0);
      });
      session.on("ping", () => {
        const now = Date.now();
        if (now - last < limits.minPingIntervalMs) strikes++;
        last = now;
        if (strikes <= limits.maxPingStrikes || session.closed || session.destroyed) return;
        log.warn(
          { peer: session.socket?.remoteAddress, strikes },
          "a client pinged more often than allowed: GOAWAY ENHANCE_YOUR_CALM",
        );
        session.goaway(constants.NGHTTP2_ENHANCE_YOUR_CALM, lastStreamId, TOO_MANY_PINGS);
        // A connection error: its calls end; the frame gets a moment to leave first.
        setTimeout(() => session.destroy(), 100).unref();
      });
    });
  }
}
