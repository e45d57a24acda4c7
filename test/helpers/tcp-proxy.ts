// A TCP proxy in front of a database, for fault tests: cut connections, or make the server disappear and come back.
//
// API:
//   startProxy(target)      listens on 127.0.0.1:<free port> and forwards every connection to target
//                           ("host:port"). `port`; `via(url)` rewrites a mysql:// URL to go through it.
//   cutNext(pattern)        destroys the connection carrying the next client packet whose bytes match
//                           `pattern` (query text travels in clear), before forwarding it: the
//                           statement never reaches the database, the client sees the connection lost.
//                           Resolves when the cut happened.
//   down()                  closes the listener and destroys every connection: the database is "gone"
//                           (connects are refused) until up() listens on the same port again.
//   cutAll()                destroys every open connection, keeps accepting new ones.
//   close()                 down() for good.

import type { Server } from "node:net";
import { createServer, Socket } from "node:net";

/** A running proxy (see the file header). */
export interface TcpProxy {
  readonly port: number;
  via(url: string): string;
  cutNext(pattern: RegExp): Promise<void>;
  cutAll(): void;
  down(): Promise<void>;
  up(): Promise<void>;
  close(): Promise<void>;
  /** Connections cut by cutNext so far. */
  readonly cuts: number;
}

/** Starts a proxy to `target` ("host:port"). */
export async function startProxy(target: string): Promise<TcpProxy> {
  const [host, portText] = target.split(":") as [string, string];
  const targetPort = Number(portText);
  const pairs = new Set<[Socket, Socket]>();
  const armed: { pattern: RegExp; done(): void }[] = [];
  let cuts = 0;

  const onConnection = (client: Socket): void => {
    const upstream = new Socket();
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    const end = (): void => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
    client.pause();
    upstream.connect(targetPort, host, () => client.resume());
    client.on("data", (chunk: Buffer) => {
      const text = chunk.toString("latin1");
      const i = armed.findIndex((a) => a.pattern.test(text));
      if (i >= 0) {
        const [hit] = armed.splice(i, 1);
        cuts++;
        end();
        hit!.done();
        return;
      }
      upstream.write(chunk);
    });
    upstream.on("data", (chunk: Buffer) => client.write(chunk));
  };

  let server: Server = createServer(onConnection);
  const listen = (port: number): Promise<number> =>
    new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => {
        server.off("error", reject);
        resolve((server.address() as { port: number }).port);
      });
    });
  const port = await listen(0);
  let listening = true;

  const cutAll = (): void => {
    for (const [a, b] of [...pairs]) {
      a.destroy();
      b.destroy();
    }
    pairs.clear();
  };
  const down = async (): Promise<void> => {
    if (!listening) return;
    listening = false;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    cutAll();
    await closed;
  };

  return {
    port,
    via(url: string) {
      const u = new URL(url);
      u.hostname = "127.0.0.1";
      u.port = String(port);
      return u.toString();
    },
    cutNext(pattern: RegExp) {
      return new Promise<void>((resolve) => armed.push({ pattern, done: resolve }));
    },
    cutAll,
    down,
    async up() {
      if (listening) return;
      server = createServer(onConnection);
      await listen(port);
      listening = true;
    },
    close: down,
    get cuts() {
      return cuts;
    },
  };
}
