// grpc.health.v1 from a test: one Check, or wait until a server reports a status.
//
// API:
//   healthCheck(address, service?)           the status Check answers ("" = the whole server)
//   waitForHealth(address, want, withinMs)   polls Check every 50 ms until it answers `want`; rejects
//                                            after withinMs naming the last answer
import { setTimeout as sleep } from "node:timers/promises";
import type { ServiceError } from "@grpc/grpc-js";
import * as grpc from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";

/** A serving status as grpc-health-check's client decodes it. */
export type ServingStatus = "SERVING" | "NOT_SERVING" | "UNKNOWN" | "SERVICE_UNKNOWN";

const HealthClient = grpc.makeGenericClientConstructor(healthService, "grpc.health.v1.Health") as unknown as new (
  address: string,
  credentials: grpc.ChannelCredentials,
) => grpc.Client & {
  check(
    request: { service: string },
    options: Partial<grpc.CallOptions>,
    callback: (error: ServiceError | null, response: { status: ServingStatus }) => void,
  ): void;
};

/** One health Check of `service` on `address`. */
export function healthCheck(address: string, service = ""): Promise<ServingStatus> {
  const client = new HealthClient(address, grpc.credentials.createInsecure());
  return new Promise((resolve, reject) => {
    client.check({ service }, { deadline: Date.now() + 5000 }, (error, response) => {
      client.close();
      if (error) reject(error);
      else resolve(response.status);
    });
  });
}

/** Polls Check until it answers `want`; resolves with the ms it took. */
export async function waitForHealth(address: string, want: ServingStatus, withinMs: number): Promise<number> {
  const started = Date.now();
  let last = "no answer";
  while (Date.now() - started < withinMs) {
    try {
      last = await healthCheck(address);
      if (last === want) return Date.now() - started;
    } catch (error) {
      last = (error as Error).message;
    }
    await sleep(50);
  }
  throw new Error(`health of ${address} is not ${want} after ${withinMs} ms (last: ${last})`);
}
