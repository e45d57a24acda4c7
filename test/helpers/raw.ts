// Calls with raw request bytes (identity serializers), as a client in another language or a broken one sends them.
import * as grpc from "@grpc/grpc-js";
import type { TestServer } from "./server.js";

/** How a raw call ended: its status code and message, its error (for details) and how many messages came. */
export interface RawOutcome {
  code: grpc.status;
  details: string;
  error?: grpc.ServiceError;
  messages: number;
}

const identity = (b: Buffer): Buffer => b;

/** A channel for raw calls to the test server; close it when done. */
export function rawClient(s: TestServer): grpc.Client {
  return new grpc.Client(s.address, grpc.credentials.createInsecure());
}

function metadataFor(token: string | undefined): grpc.Metadata {
  const metadata = new grpc.Metadata();
  if (token !== undefined) metadata.set("authorization", `Bearer ${token}`);
  return metadata;
}

/**
 * Sends `body` as the one request message of `path` and waits for the status. A streaming response is
 * cancelled after its first message (the call got past decoding: that is all a caller wants to know here).
 */
export function rawCall(
  client: grpc.Client,
  path: string,
  kind: { requestStream: boolean; responseStream: boolean },
  body: Buffer,
  token: string | undefined,
): Promise<RawOutcome> {
  const metadata = metadataFor(token);
  const options = { deadline: Date.now() + 20_000 };
  return new Promise((resolve) => {
    let messages = 0;
    const done = (error: grpc.ServiceError | null): void => {
      if (error === null) resolve({ code: grpc.status.OK, details: "", messages });
      else resolve({ code: error.code, details: error.details, error, messages });
    };
    if (!kind.requestStream && !kind.responseStream) {
      client.makeUnaryRequest(path, identity, identity, body, metadata, options, (error) => {
        messages = error ? 0 : 1;
        done(error);
      });
      return;
    }
    const call = kind.requestStream
      ? client.makeBidiStreamRequest(path, identity, identity, metadata, options)
      : client.makeServerStreamRequest(path, identity, identity, body, metadata, options);
    let settled = false;
    call.on("data", () => {
      messages++;
      if (!settled) {
        settled = true;
        call.cancel();
        resolve({ code: grpc.status.OK, details: "", messages });
      }
    });
    call.on("error", (error: grpc.ServiceError) => {
      if (!settled) {
        settled = true;
        done(error);
      }
    });
    call.on("status", (status: grpc.StatusObject) => {
      if (!settled && status.code === grpc.status.OK) {
        settled = true;
        done(null);
      }
    });
    if (kind.requestStream) {
      const duplex = call as grpc.ClientDuplexStream<Buffer, Buffer>;
      duplex.write(body);
      duplex.end();
    }
  });
}

/** rawCall for a unary method. */
export function rawUnary(client: grpc.Client, path: string, body: Buffer, token?: string): Promise<RawOutcome> {
  return rawCall(client, path, { requestStream: false, responseStream: false }, body, token);
}
