// Which webhook endpoints jobwatch may call (SSRF): https anywhere, plain http only to loopback, and never an
// address that is link-local or a cloud metadata service unless configuration allows it. Checked when a
// webhook is registered and again at every connection (the resolver's answer, so DNS rebinding cannot
// slip past the first check).

import type { LookupAddress, LookupAllOptions, LookupOneOptions } from "node:dns";
import { lookup as dnsLookup } from "node:dns";
import { BlockList, isIP } from "node:net";

/** Addresses no webhook may reach by default: link-local (where cloud metadata lives) and the metadata services. */
const REFUSED: readonly [string, number, "ipv4" | "ipv6"][] = [
  ["169.254.0.0", 16, "ipv4"], // IPv4 link-local; 169.254.169.254 is AWS/GCP/Azure/OpenStack metadata
  ["0.0.0.0", 8, "ipv4"], // "this network": reaches the host itself on Linux
  ["100.100.100.200", 32, "ipv4"], // Alibaba Cloud metadata
  ["fe80::", 10, "ipv6"], // IPv6 link-local
  ["fd00:ec2::", 32, "ipv6"], // AWS IPv6 metadata (fd00:ec2::254)
];

/** What may be reached besides: CIDRs from JOBWATCH_WEBHOOK_ALLOW_ADDRESSES ("169.254.10.0/24,fe80::/10"). */
export interface AddressPolicy {
  /** Why `address` may not be called, or undefined when it may. */
  refusal(address: string): string | undefined;
}

/** The policy: REFUSED unless in `allowed` (CIDR strings, already checked by config). */
export function addressPolicy(allowed: readonly string[] = []): AddressPolicy {
  const refused = new BlockList();
  for (const [net, prefix, type] of REFUSED) refused.addSubnet(net, prefix, type);
  const allow = new BlockList();
  for (const cidr of allowed) {
    const [net = "", prefix] = cidr.split("/");
    const type = isIP(net) === 6 ? "ipv6" : "ipv4";
    allow.addSubnet(net, Number(prefix ?? (type === "ipv6" ? 128 : 32)), type);
  }
  return {
    refusal(address) {
      const type: "ipv4" | "ipv6" = isIP(address) === 6 ? "ipv6" : "ipv4";
      // An IPv4-mapped IPv6 address is the IPv4 address.
      const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
      const [plain, plainType]: [string, "ipv4" | "ipv6"] = mapped === undefined ? [address, type] : [mapped, "ipv4"];
      if (!refused.check(plain, plainType) || allow.check(plain, plainType)) return undefined;
      return `${address} is a link-local or cloud metadata address (allow it with JOBWATCH_WEBHOOK_ALLOW_ADDRESSES)`;
    },
  };
}

/** True when the URL's host is a loopback address or name (plain http is allowed there, for tests and sidecars). */
function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, "");
  return bare === "localhost" || bare === "::1" || /^127\.\d+\.\d+\.\d+$/.test(bare);
}

/** Why `url` cannot be a webhook endpoint (scheme, host), or undefined; DNS is checked by checkResolved. */
export function urlRefusal(url: string): string | undefined {
  if (url.length > 2048) return "must be at most 2048 characters";
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return `must be an absolute https:// URL; got '${url.slice(0, 100)}'`;
  }
  if (parsed.username !== "" || parsed.password !== "") return "must not carry a user or password";
  if (parsed.protocol === "https:") return undefined;
  if (parsed.protocol === "http:" && isLoopbackHost(parsed.hostname)) return undefined;
  if (parsed.protocol === "http:") return "must be https:// (plain http:// only to 127.0.0.1, [::1] or localhost)";
  return `must be an https:// URL; got scheme '${parsed.protocol}'`;
}

/** Resolves the URL's host and returns why one of its addresses is refused, or undefined when all may be called. */
export async function resolvedRefusal(url: string, policy: AddressPolicy): Promise<string | undefined> {
  const host = new URL(url).hostname.replace(/^\[|\]$/g, "");
  const addresses = await new Promise<LookupAddress[]>((resolve, reject) =>
    dnsLookup(host, { all: true }, (error, found) => (error ? reject(error) : resolve(found))),
  ).catch((error: NodeJS.ErrnoException) => {
    throw new Error(`host '${host}' does not resolve (${error.code ?? error.message})`);
  });
  for (const { address } of addresses) {
    const why = policy.refusal(address);
    if (why !== undefined) return `host '${host}' resolves to ${why}`;
  }
  return undefined;
}

/** A `lookup` for http(s).request that fails the connection when the host resolves to a refused address. */
export function guardedLookup(policy: AddressPolicy) {
  return (
    hostname: string,
    options: LookupOneOptions | LookupAllOptions,
    callback: (error: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void,
  ): void => {
    dnsLookup(hostname, { ...options, all: true }, (error, addresses) => {
      if (error) return callback(error, []);
      for (const { address } of addresses) {
        const why = policy.refusal(address);
        if (why !== undefined) return callback(Object.assign(new Error(why), { code: "EADDRREFUSED" }), []);
      }
      if ((options as LookupAllOptions).all) return callback(null, addresses);
      const [first] = addresses;
      return callback(null, first?.address ?? "", first?.family);
    });
  };
}
