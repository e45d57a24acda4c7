// A minimal HTTP/2 client over a plain socket, for requests Node's http2 refuses to send (two
// `authorization` headers). It encodes headers as HPACK literals and reports the frames of the reply.
//
// API:
//   rawGrpcCall(address, path, headers, message)  -> { dataBytes, ended }: the length of the DATA
//   frames the server sent on the stream (0 for a trailers-only error) and whether the stream ended.
import { connect } from "node:net";

/** An HPACK integer with an n-bit prefix (RFC 7541 5.1). */
function hpackInteger(value: number, prefixBits: number, firstByteFlags: number): number[] {
  const max = (1 << prefixBits) - 1;
  if (value < max) return [firstByteFlags | value];
  const out = [firstByteFlags | max];
  let rest = value - max;
  while (rest >= 128) {
    out.push((rest % 128) + 128);
    rest = Math.floor(rest / 128);
  }
  out.push(rest);
  return out;
}

/** A header as "literal without indexing, new name", no Huffman (RFC 7541 6.2.2). */
function literal(name: string, value: string): Buffer {
  const n = Buffer.from(name, "latin1");
  const v = Buffer.from(value, "latin1");
  return Buffer.concat([
    Buffer.from([0x00]),
    Buffer.from(hpackInteger(n.length, 7, 0)),
    n,
    Buffer.from(hpackInteger(v.length, 7, 0)),
    v,
  ]);
}

function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head.writeUInt8(type, 3);
  head.writeUInt8(flags, 4);
  head.writeUInt32BE(streamId, 5);
  return Buffer.concat([head, payload]);
}

/** What came back on the request's stream. */
export interface RawReply {
  /** Bytes of DATA frames: above 0 when a response message was sent, 0 for an error (trailers only). */
  dataBytes: number;
  /** The stream ended (END_STREAM or RST_STREAM) before the socket closed. */
  ended: boolean;
}

/** Sends one gRPC request with exactly these extra headers (repeats allowed) and a serialized message. */
export function rawGrpcCall(
  address: string,
  path: string,
  headers: [string, string][],
  message: Uint8Array,
): Promise<RawReply> {
  const [host, port] = [address.replace(/:\d+$/, ""), Number(/:(\d+)$/.exec(address)![1])];
  const block = Buffer.concat([
    literal(":method", "POST"),
    literal(":scheme", "http"),
    literal(":path", path),
    literal(":authority", address),
    literal("content-type", "application/grpc"),
    literal("te", "trailers"),
    ...headers.map(([name, value]) => literal(name, value)),
  ]);
  const body = Buffer.alloc(5 + message.length);
  body.writeUInt32BE(message.length, 1);
  Buffer.from(message).copy(body, 5);
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    let buffer = Buffer.alloc(0);
    const reply: RawReply = { dataBytes: 0, ended: false };
    const done = (): void => {
      socket.destroy();
      resolve(reply);
    };
    socket.on("error", reject);
    socket.on("close", () => resolve(reply));
    socket.on("connect", () => {
      socket.write("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
      socket.write(frame(0x4, 0, 0, Buffer.alloc(0)));
      socket.write(frame(0x1, 0x4, 1, block));
      socket.write(frame(0x0, 0x1, 1, body));
    });
    socket.on("data", (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      while (buffer.length >= 9) {
        const length = buffer.readUIntBE(0, 3);
        if (buffer.length < 9 + length) break;
        const type = buffer.readUInt8(3);
        const flags = buffer.readUInt8(4);
        const stream = buffer.readUInt32BE(5) & 0x7fffffff;
        buffer = buffer.subarray(9 + length);
        if (type === 0x4 && (flags & 0x1) === 0) socket.write(frame(0x4, 0x1, 0, Buffer.alloc(0)));
        if (stream !== 1) continue;
        if (type === 0x0) reply.dataBytes += length;
        if (type === 0x3 || ((type === 0x0 || type === 0x1) && (flags & 0x1) !== 0)) {
          reply.ended = true;
          done();
          return;
        }
      }
    });
  });
}
