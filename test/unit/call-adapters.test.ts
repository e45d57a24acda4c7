// The call adapters on a real grpc-js server (127.0.0.1:0, no database): context, errors, backpressure, release.
import assert from "node:assert/strict";
import http2 from "node:http2";
import { after, before, describe, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import * as grpc from "@grpc/grpc-js";
import pino from "pino";
import type { Principal } from "../../src/auth/principal.js";
import { attachPrincipal } from "../../src/auth/principal.js";
import { NotFoundError } from "../../src/errors.js";
import type { CallContext, PushContext, StreamContext } from "../../src/server/call-adapters.js";
import { serverPushHandler, serverStreamingHandler, unaryHandler } from "../../src/server/call-adapters.js";

const silent = pino({ level: "silent" });
const alice: Principal = { tokenId: "t1", username: "alice", role: "normal_user" };

/** The header with which a test call says it is alice; the test server's interceptor stands in for auth. */
const AS = "x-test-as";

/** Attaches alice as the principal of calls that carry the AS header, as the auth interceptor would. */
const testAuth: grpc.ServerInterceptor = (_method, call) =>
  new grpc.ServerInterceptingCall(call, {
    start(next) {
      next({
        onReceiveMetadata(metadata, mdNext) {
          if (metadata.get(AS)[0] === "alice") attachPrincipal(metadata, alice);
          mdNext(metadata);
        },
      });
    },
  });

/** Messages are strings, as UTF-8 bytes. */
const text = {
  requestSerialize: (value: string) => Buffer.from(value),
  requestDeserialize: (bytes: Buffer) => bytes.toString(),
  responseSerialize: (value: string) => Buffer.from(value),
  responseDeserialize: (bytes: Buffer) => bytes.toString(),
};

const SERVICE = {
  ask: { path: "/test.Adapters/Ask", requestStream: false, responseStream: false, ...text },
  stream: { path: "/test.Adapters/Stream", requestStream: false, responseStream: true, ...text },
  // Its serializer passes Buffers through, as WatchJob's does (shared-encoding.ts).
  push: {
    path: "/test.Adapters/Push",
    requestStream: false,
    responseStream: true,
    ...text,
    responseSerialize: (value: string | Buffer) => (Buffer.isBuffer(value) ? value : Buffer.from(value)),
  },
} satisfies grpc.ServiceDefinition;

/** What the handlers saw, for the test to assert on. */
interface Seen {
  context?: CallContext | StreamContext;
  /** Responses the stream's generator has yielded so far. */
  yielded: number;
  /** Resolves when the stream's generator ran its finally. */
  released: Promise<void>;
  release(): void;
}

/** A way for a streaming test to decide what the generator does with a request. */
type Script = (context: StreamContext, seen: Seen) => AsyncGenerator<string>;

/** Waits until the signal aborts (rejecting with its reason), as any signal-aware wait does. */
function aborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    signal.addEventListener("abort", () => reject(signal.reason), { once: true });
  });
}

describe("call adapters", { timeout: 60_000 }, () => {
  let server: grpc.Server;
  let client: grpc.Client;
  let port: number;
  const sessions: http2.ClientHttp2Session[] = [];
  const closing = new AbortController();
  const scripts = new Map<string, Script>();
  /** What the push handler does with a request. */
  const pushes = new Map<string, (context: PushContext<string>) => void>();
  let pushContext: PushContext<string> | undefined;
  /** Streams the push method admitted and released. */
  const admission = { admitted: 0, released: 0 };
  let seen: Seen;

  const fresh = (): Seen => {
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    return { yielded: 0, released, release };
  };

  before(async () => {
    server = new grpc.Server({ interceptors: [testAuth] });
    server.addService(SERVICE, {
      ask: unaryHandler<string, string>(silent, async (request, context) => {
        seen.context = context;
        try {
          if (request === "missing") throw new NotFoundError("job 'x' not found");
          if (request === "wait") await aborted(context.signal);
          return `hello ${context.principal.username}`;
        } finally {
          seen.release();
        }
      }),
      stream: serverStreamingHandler<string, string>(
        silent,
        async function* (request, context) {
          seen.context = context;
          const script = scripts.get(request);
          assert.ok(script, `no script ${request}`);
          try {
            for await (const message of script(context, seen)) {
              seen.yielded++;
              yield message;
            }
          } finally {
            seen.release();
          }
        },
        { closing: closing.signal },
      ),
      push: serverPushHandler<string, string>(
        silent,
        (request, context) => {
          pushContext = context;
          const push = pushes.get(request);
          assert.ok(push, `no push ${request}`);
          push(context);
        },
        {
          admit: () => {
            admission.admitted++;
            return () => admission.released++;
          },
        },
      ),
    });
    port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
    );
    client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  });
  after(() => {
    for (const session of sessions) session.destroy();
    client.close();
    server.forceShutdown();
  });

  const metadata = (): grpc.Metadata => {
    const m = new grpc.Metadata();
    m.set(AS, "alice");
    return m;
  };

  const ask = (request: string, md = metadata()): { call: grpc.ClientUnaryCall; result: Promise<string> } => {
    let call!: grpc.ClientUnaryCall;
    const result = new Promise<string>((resolve, reject) => {
      call = client.makeUnaryRequest(
        SERVICE.ask.path,
        text.requestSerialize,
        text.responseDeserialize,
        request,
        md,
        {},
        (e, v) => (e ? reject(e) : resolve(v as string)),
      );
    });
    return { call, result };
  };

  const stream = (name: string, md = metadata(), path = SERVICE.stream.path): grpc.ClientReadableStream<string> =>
    client.makeServerStreamRequest(path, text.requestSerialize, text.responseDeserialize, name, md, {});

  /** Every message of a stream and how it ended. */
  async function collect(
    call: grpc.ClientReadableStream<string>,
  ): Promise<{ messages: string[]; status: grpc.StatusObject }> {
    const messages: string[] = [];
    call.on("data", (m: string) => messages.push(m));
    call.on("error", () => undefined);
    const status = await new Promise<grpc.StatusObject>((resolve) => call.on("status", resolve));
    return { messages, status };
  }

  test("a unary handler gets the caller as context.principal and answers once", async () => {
    seen = fresh();
    assert.equal(await ask("hi").result, "hello alice");
    assert.deepEqual(seen.context?.principal, alice);
    assert.equal(seen.context?.signal.aborted, false);
  });

  test("a thrown domain error becomes its status; a call without a principal is UNAUTHENTICATED", async () => {
    seen = fresh();
    await assert.rejects(ask("missing").result, { code: grpc.status.NOT_FOUND, details: "job 'x' not found" });
    await assert.rejects(ask("hi", new grpc.Metadata()).result, { code: grpc.status.UNAUTHENTICATED });
  });

  test("a unary call the client cancels aborts context.signal", async () => {
    seen = fresh();
    const { call, result } = ask("wait");
    while (seen.context === undefined) await delay(5);
    call.cancel();
    await assert.rejects(result, { code: grpc.status.CANCELLED });
    // The handler's wait on the signal ends: it does not hold on to a call nobody waits for.
    await seen.released;
    assert.equal(seen.context.signal.aborted, true);
  });

  test("a stream sends what the generator yields, in order, and ends OK when it returns", async () => {
    seen = fresh();
    scripts.set("three", async function* () {
      yield "a";
      yield "b";
      yield "c";
    });
    const { messages, status } = await collect(stream("three"));
    assert.deepEqual(messages, ["a", "b", "c"]);
    assert.equal(status.code, grpc.status.OK);
    await seen.released;
  });

  test("a generator that throws ends the stream with the error's status after what it sent", async () => {
    seen = fresh();
    scripts.set("fails", async function* () {
      yield "a";
      throw new NotFoundError("gone");
    });
    const { messages, status } = await collect(stream("fails"));
    assert.deepEqual(messages, ["a"]);
    assert.equal(status.code, grpc.status.NOT_FOUND);
    assert.equal(status.details, "gone");
  });

  test("a client cancel aborts the signal and releases a generator waiting for its next item", async () => {
    seen = fresh();
    scripts.set("waits", async function* (context) {
      yield "first";
      await aborted(context.signal);
    });
    const call = stream("waits");
    const first = await new Promise<string>((resolve) => call.once("data", resolve));
    assert.equal(first, "first");
    call.on("error", () => undefined);
    call.cancel();
    await seen.released;
    assert.equal(seen.context?.signal.aborted, true);
  });

  /**
   * A raw HTTP/2 client that opens the stream and reads nothing, so flow control fills up. (A paused
   * grpc-js client keeps receiving into its own memory, so it cannot play a reader that does not read.)
   */
  function stalledStream(name: string, path = SERVICE.stream.path): http2.ClientHttp2Stream {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    sessions.push(session);
    const request = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": "application/grpc",
      te: "trailers",
      [AS]: "alice",
    });
    const message = Buffer.from(name);
    const frame = Buffer.alloc(5 + message.length);
    frame.writeUInt32BE(message.length, 1);
    message.copy(frame, 5);
    request.end(frame);
    request.on("error", () => undefined);
    return request;
  }

  /** Waits until the generator stops being pulled (the stream's buffers are full). */
  async function untilStalled(): Promise<number> {
    let before = -1;
    while (seen.yielded !== before) {
      before = seen.yielded;
      await delay(100);
    }
    return seen.yielded;
  }

  test("a client that does not read holds the generator at a bounded count; a stream reset releases it", async () => {
    seen = fresh();
    const big = "x".repeat(64 * 1024);
    scripts.set("endless", async function* () {
      for (;;) yield big;
    });
    const request = stalledStream("endless");
    const pulled = await untilStalled();
    assert.ok(pulled > 0, "the generator ran");
    // The stream's own buffer (16 messages) plus what HTTP/2's window lets through; not an endless backlog.
    assert.ok(pulled <= 20, `generator pulled ${pulled} times for a reader that reads nothing`);
    request.close(http2.constants.NGHTTP2_CANCEL);
    await seen.released;
    assert.equal(seen.context?.signal.aborted, true);
  });

  test("server shutdown (closing) stops a wait for 'drain', so the generator can end the stream", async () => {
    seen = fresh();
    const big = "y".repeat(64 * 1024);
    scripts.set("until-closing", async function* () {
      while (!closing.signal.aborted) yield big;
      throw new NotFoundError("ended by the generator at shutdown");
    });
    const request = stalledStream("until-closing");
    assert.ok((await untilStalled()) <= 20, "the stream waits for 'drain'");
    closing.abort();
    // Without closing, the generator would wait for a 'drain' that never comes, and never end.
    await seen.released;
    assert.ok(seen.yielded <= 20, `the generator ended after ${seen.yielded} messages`);
    const trailers = new Promise<http2.IncomingHttpHeaders>((resolve) => request.on("trailers", resolve));
    request.resume();
    const { "grpc-status": code, "grpc-message": message } = await trailers;
    assert.equal(Number(code), grpc.status.NOT_FOUND);
    assert.equal(decodeURIComponent(String(message)), "ended by the generator at shutdown");
  });

  test("a push handler's writes arrive in order, a pre-serialized Buffer as it is; end() ends OK; admission released once", async () => {
    const before = { ...admission };
    pushes.set("later", (context) => {
      context.write("a");
      // Written later, from outside the handler, as the hub does.
      setTimeout(() => {
        context.write(Buffer.from("b"));
        context.write("c");
        context.end();
        context.write("after the end");
      }, 20);
    });
    const { messages, status } = await collect(stream("later", metadata(), SERVICE.push.path));
    assert.deepEqual(messages, ["a", "b", "c"]);
    assert.equal(status.code, grpc.status.OK);
    assert.equal(admission.admitted - before.admitted, 1);
    assert.equal(admission.released - before.released, 1);
  });

  test("a push handler that throws, or fails the stream after writing, ends it with the error's status", async () => {
    pushes.set("throws", () => {
      throw new NotFoundError("job 'y' not found");
    });
    pushes.set("fails", (context) => {
      context.write("a");
      setTimeout(() => context.fail(new NotFoundError("gone later")), 10);
    });
    const thrown = await collect(stream("throws", metadata(), SERVICE.push.path));
    assert.deepEqual([thrown.messages, thrown.status.code], [[], grpc.status.NOT_FOUND]);
    const failed = await collect(stream("fails", metadata(), SERVICE.push.path));
    assert.deepEqual(
      [failed.messages, failed.status.code, failed.status.details],
      [["a"], grpc.status.NOT_FOUND, "gone later"],
    );
    // No principal: refused before the handler runs, and nothing is admitted.
    const before = { ...admission };
    const anonymous = await collect(stream("fails", new grpc.Metadata(), SERVICE.push.path));
    assert.equal(anonymous.status.code, grpc.status.UNAUTHENTICATED);
    assert.deepEqual(admission, before);
  });

  test("push: write() says false once a reader that reads nothing fills the stream; 'drain' comes when it reads", async () => {
    const big = "z".repeat(64 * 1024);
    let written = 0;
    let drained = 0;
    pushes.set("fill", (context) => {
      const fill = (): void => {
        while (written < 1000) {
          written++;
          if (!context.write(big)) return;
        }
        context.end();
      };
      context.onDrain(() => {
        drained++;
        fill();
      });
      fill();
    });
    const request = stalledStream("fill", SERVICE.push.path);
    await delay(300);
    // The stream's own buffer (16 messages) plus what HTTP/2's window lets through; not 1000.
    assert.ok(written > 0 && written <= 20, `wrote ${written} messages for a reader that reads nothing`);
    const trailers = new Promise<http2.IncomingHttpHeaders>((resolve) => request.on("trailers", resolve));
    request.resume();
    assert.equal(Number((await trailers)["grpc-status"]), grpc.status.OK);
    assert.equal(written, 1000);
    assert.ok(drained > 0);
  });

  test("push: a client cancel or reset aborts the signal and releases the stream once; later writes are ignored", async () => {
    pushes.set("hold", (context) => {
      context.write("first");
    });
    const before = { ...admission };
    const call = stream("hold", metadata(), SERVICE.push.path);
    assert.equal(await new Promise<string>((resolve) => call.once("data", resolve)), "first");
    call.on("error", () => undefined);
    const context = pushContext!;
    call.cancel();
    await aborted(context.signal).catch(() => undefined);
    assert.equal(context.signal.aborted, true);
    assert.equal(context.write("too late"), false);
    context.fail(new NotFoundError("nobody to tell"));
    assert.equal(admission.released - before.released, 1);

    const reset = stalledStream("hold", SERVICE.push.path);
    await delay(100);
    const held = pushContext!;
    reset.close(http2.constants.NGHTTP2_CANCEL);
    await aborted(held.signal).catch(() => undefined);
    assert.equal(admission.released - before.released, 2);
  });
});
