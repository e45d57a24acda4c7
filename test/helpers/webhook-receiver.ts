// A webhook receiver for tests, as a user would write one: it verifies each POST's Standard Webhooks
// signature and deduplicates by webhook-id; it can answer at once, refuse (be down), or hold requests.
//
// API:
//   startReceiver(secret?)  { url, mode, answerDelayMs, requests, unique(), held, overlaps, abandoned,
//                             waitFor(pred, ms), setSecret(s), close() }
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { verify } from "../../src/webhooks/signature.js";

/** One POST as received. */
export interface Received {
  id: string;
  timestamp: number;
  /** true when webhook-signature verifies with the secret. */
  verified: boolean;
  body: {
    type: string;
    timestamp: string;
    data: { jobId: string; revision: number; status: string } & Record<string, unknown>;
  };
}

/** How the receiver answers: 200 at once, 503 (down), or not at all until released (hold). */
export type ReceiverMode = "ok" | "down" | "hold";

export interface Receiver {
  readonly url: string;
  mode: ReceiverMode;
  /** Every request received, duplicates included (at least once on the wire). */
  readonly requests: Received[];
  /** The requests deduplicated by webhook-id, in the order first received. */
  unique(): Received[];
  /** Requests being held (mode "hold"). */
  readonly held: ServerResponse[];
  /** In mode "ok", how long each answer waits (a receiver that takes its time; 0: at once). */
  answerDelayMs: number;
  /** webhook-ids that had two requests open at once (two senders attempting one delivery together). */
  readonly overlaps: string[];
  /** webhook-ids whose sender closed the connection before the answer (it died, or gave up waiting). */
  readonly abandoned: Set<string>;
  setSecret(secret: string): void;
  /** Resolves when `predicate` holds; rejects after `ms` with what was received. */
  waitFor(predicate: (r: Receiver) => boolean, ms?: number): Promise<void>;
  close(): Promise<void>;
}

export async function startReceiver(): Promise<Receiver> {
  let secret = "";
  const wake = new Set<() => void>();
  const receiver: Receiver = {
    url: "",
    mode: "ok",
    requests: [],
    held: [],
    answerDelayMs: 0,
    overlaps: [],
    abandoned: new Set(),
    unique() {
      const seen = new Set<string>();
      return receiver.requests.filter((r) => !seen.has(r.id) && seen.add(r.id));
    },
    setSecret(s) {
      secret = s;
    },
    waitFor(predicate, ms = 20_000) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          if (!predicate(receiver)) return;
          wake.delete(check);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(() => {
          wake.delete(check);
          const got = receiver
            .unique()
            .map((r) => `${r.body.data.jobId.slice(0, 8)}@${r.body.data.revision} ${r.body.type}`);
          reject(
            new Error(
              `receiver: condition not met in ${ms} ms; got ${receiver.requests.length} requests: ${got.join(", ")}`,
            ),
          );
        }, ms);
        wake.add(check);
        check();
      });
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  const open = new Map<string, number>();
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const opened = String(req.headers["webhook-id"] ?? "");
    const already = open.get(opened) ?? 0;
    if (already > 0) receiver.overlaps.push(opened);
    open.set(opened, already + 1);
    res.on("close", () => {
      open.set(opened, (open.get(opened) ?? 1) - 1);
      if (!res.writableFinished) receiver.abandoned.add(opened);
    });
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const raw = Buffer.concat(chunks).toString("utf8");
      const id = String(req.headers["webhook-id"] ?? "");
      const timestamp = Number(req.headers["webhook-timestamp"]);
      const signature = String(req.headers["webhook-signature"] ?? "");
      if (receiver.mode === "down") {
        res.writeHead(503).end();
        return;
      }
      receiver.requests.push({
        id,
        timestamp,
        verified: verify(secret, id, timestamp, raw, signature),
        body: JSON.parse(raw),
      });
      for (const w of wake) w();
      if (receiver.mode === "hold") receiver.held.push(res);
      else if (receiver.answerDelayMs > 0)
        setTimeout(() => res.destroyed || res.writeHead(200).end(), receiver.answerDelayMs);
      else res.writeHead(200).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  (receiver as { url: string }).url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  return receiver;
}
