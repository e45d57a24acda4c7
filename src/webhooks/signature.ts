// The Standard Webhooks signature: webhook-id, webhook-timestamp and webhook-signature headers, HMAC-SHA256.
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

/** The prefix of a signing secret; the rest is the base64 of the key. */
const PREFIX = "whsec_";

/** A new signing secret: "whsec_" and the base64 of 24 random bytes. */
export function newSecret(): string {
  return PREFIX + randomBytes(24).toString("base64");
}

/** "v1,<base64 HMAC-SHA256(key, `${id}.${timestamp}.${body}`)>", the key being the secret's base64 part decoded. */
export function sign(secret: string, id: string, timestamp: number, body: string): string {
  const key = Buffer.from(secret.startsWith(PREFIX) ? secret.slice(PREFIX.length) : secret, "base64");
  return `v1,${createHmac("sha256", key).update(`${id}.${timestamp}.${body}`).digest("base64")}`;
}

/**
 * True when one of the space-separated signatures in `header` is `sign(secret, id, timestamp, body)`:
 * what a receiver checks (it should also refuse a timestamp far from its clock, against replays).
 */
export function verify(secret: string, id: string, timestamp: number, body: string, header: string): boolean {
  const expected = Buffer.from(sign(secret, id, timestamp, body));
  return header.split(" ").some((candidate) => {
    const got = Buffer.from(candidate);
    return got.length === expected.length && timingSafeEqual(got, expected);
  });
}
