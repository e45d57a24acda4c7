// Undecodable request bodies become INVALID_ARGUMENT naming the field, instead of grpc-js's INTERNAL.
//
// grpc-js decodes a request before any handler or interceptor sees it, and answers INTERNAL "Error
// deserializing request" when the decoder throws: for an int64 above 2^53-1 (ts-proto's forceLong=number),
// a google.protobuf.Struct nested past the decoder's recursion limit, or bytes that are not the message at
// all. Each is the caller's mistake. So every method's decoder is wrapped to return a MalformedRequest
// instead of throwing, and an interceptor answers that with the server's one error mapping.
import type { DescField, DescMessage, Registry } from "@bufbuild/protobuf";
import { fromBinary, ScalarType } from "@bufbuild/protobuf";
import type { ReflectMessage } from "@bufbuild/protobuf/reflect";
import { isReflectMessage, reflect } from "@bufbuild/protobuf/reflect";
import * as grpc from "@grpc/grpc-js";
import type { FieldViolation } from "../errors.js";
import { InvalidArgumentError, ResourceExhaustedError } from "../errors.js";
import { LIMITS, nestingDescription } from "./validate.js";

/** What a wrapped decoder returns for bytes it cannot (or will not) decode: the error the call will end with. */
export class MalformedRequest {
  constructor(readonly error: InvalidArgumentError | ResourceExhaustedError) {}
}

/** The largest magnitude JavaScript numbers hold exactly, and so the range of every int64 jobwatch reads. */
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const INT64_TYPES = new Set([
  ScalarType.INT64,
  ScalarType.UINT64,
  ScalarType.SINT64,
  ScalarType.FIXED64,
  ScalarType.SFIXED64,
]);
const JSON_TYPES = new Set(["google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"]);

/** True for a 64-bit integer (decoded as bigint) that a JavaScript number cannot hold exactly. */
function isWide(value: unknown): value is bigint {
  return typeof value === "bigint" && (value > MAX_SAFE || value < -MAX_SAFE);
}

function outOfRange(field: string, value: bigint): FieldViolation {
  return {
    field,
    description: `${value} is out of range: 64-bit integers must be between -${MAX_SAFE} and ${MAX_SAFE} (2^53-1)`,
  };
}

/** 64-bit integers outside ±(2^53-1), depth-first, with their field paths ("since.seconds", "ids[2]"). */
function* unsafeIntegers(message: ReflectMessage, prefix: string): Generator<FieldViolation> {
  for (const field of message.fields) {
    if (!message.isSet(field)) continue;
    const path = prefix + field.name;
    switch (field.fieldKind) {
      case "scalar": {
        const value = message.get(field);
        if (INT64_TYPES.has(field.scalar) && isWide(value)) yield outOfRange(path, value);
        break;
      }
      case "list": {
        let i = 0;
        for (const item of message.get(field)) {
          if (isWide(item)) yield outOfRange(`${path}[${i}]`, item);
          else if (isReflectMessage(item)) yield* unsafeIntegers(item, `${path}[${i}].`);
          i++;
        }
        break;
      }
      case "map":
        for (const [key, item] of message.get(field)) {
          if (isWide(item)) yield outOfRange(`${path}[${String(key)}]`, item);
          else if (isReflectMessage(item)) yield* unsafeIntegers(item, `${path}[${String(key)}].`);
        }
        break;
      case "message":
        yield* unsafeIntegers(message.get(field), `${path}.`);
        break;
      default:
        break;
    }
  }
}

/** Top-level fields that hold free-form JSON (google.protobuf.Struct and kin), the only recursive types. */
function jsonFields(desc: DescMessage): DescField[] {
  return desc.fields.filter((f) => f.message !== undefined && JSON_TYPES.has(f.message.typeName));
}

/** google.protobuf.Struct, Value and ListValue as @bufbuild/protobuf decodes them. */
type JsonMessage =
  | { $typeName: "google.protobuf.Struct"; fields: Record<string, JsonMessage> }
  | { $typeName: "google.protobuf.ListValue"; values: JsonMessage[] }
  | { $typeName: "google.protobuf.Value"; kind: { case: string | undefined; value?: unknown } };

/** How deep objects and arrays nest in a decoded Struct, Value or ListValue (as validate.ts's jsonDepth). */
function jsonMessageDepth(message: JsonMessage): number {
  switch (message.$typeName) {
    case "google.protobuf.Struct":
      return 1 + deepest(Object.values(message.fields));
    case "google.protobuf.ListValue":
      return 1 + deepest(message.values);
    default: {
      const { kind } = message;
      const nested = kind.case === "structValue" || kind.case === "listValue";
      return nested ? jsonMessageDepth(kind.value as JsonMessage) : 0;
    }
  }
}

/** The greatest depth among values (a loop: a list may hold more values than a call takes arguments). */
function deepest(values: readonly JsonMessage[]): number {
  let max = 0;
  for (const value of values) max = Math.max(max, jsonMessageDepth(value));
  return max;
}

/** The top-level JSON fields nested deeper than a result may be. */
function* tooDeep(message: ReflectMessage): Generator<FieldViolation> {
  for (const field of jsonFields(message.desc)) {
    if (field.fieldKind !== "message" || !message.isSet(field)) continue;
    const depth = jsonMessageDepth(message.get(field).message as unknown as JsonMessage);
    if (depth > LIMITS.resultDepth) yield { field: field.name, description: nestingDescription(depth) };
  }
}

/** The reason a decoder gave, short enough for a status message. */
function reasonOf(cause: unknown): string {
  const text = cause instanceof Error ? cause.message : String(cause);
  return text.length > 200 ? `${text.slice(0, 200)}...` : text;
}

/**
 * Why `bytes` could not be decoded as `desc`, naming the fields where it can: decoded again with
 * @bufbuild/protobuf, which reads 64-bit integers as bigint, so the out-of-range ones can be pointed at.
 */
function diagnose(desc: DescMessage | undefined, bytes: Uint8Array, cause: unknown): InvalidArgumentError {
  const typeName = desc?.typeName ?? "request";
  const undecodable = (): InvalidArgumentError =>
    new InvalidArgumentError(
      [],
      `the request body is not a valid ${typeName} message (${reasonOf(cause)}); encode it with the contract's .proto files`,
    );
  if (desc === undefined) return undecodable();
  let decoded: ReflectMessage;
  try {
    decoded = reflect(desc, fromBinary(desc, bytes, { readUnknownFields: false }));
  } catch (error) {
    const recursive = jsonFields(desc);
    if (/recursion/i.test(reasonOf(error)) && recursive.length > 0) {
      return new InvalidArgumentError(recursive.map((f) => ({ field: f.name, description: nestingDescription() })));
    }
    return undecodable();
  }
  const violations = [...unsafeIntegers(decoded, ""), ...tooDeep(decoded)];
  if (violations.length === 0) return undecodable();
  return new InvalidArgumentError(violations);
}

/** The request message of every method of the registry's services, by gRPC path. */
function requestTypes(registry: Registry): Map<string, DescMessage> {
  const types = new Map<string, DescMessage>();
  for (const type of registry) {
    if (type.kind !== "service") continue;
    for (const method of type.methods) types.set(`/${type.typeName}/${method.name}`, method.input);
  }
  return types;
}

/**
 * A copy of `definition` whose request decoders never throw: bytes they reject decode to a
 * MalformedRequest (see malformedRequestInterceptor). `registry` supplies the request types by path;
 * `limitOf` each rpc's largest request (request-limits.ts), above which it is RESOURCE_EXHAUSTED undecoded.
 */
export function guardRequestDecoding(
  definition: grpc.ServiceDefinition,
  registry: Registry,
  limitOf: (path: string) => number | undefined = () => undefined,
): grpc.ServiceDefinition {
  const types = requestTypes(registry);
  return Object.fromEntries(
    Object.entries(definition).map(([name, method]) => {
      const decode = method.requestDeserialize;
      const desc = types.get(method.path);
      const limit = limitOf(method.path);
      const requestDeserialize = (bytes: Buffer): unknown => {
        if (limit !== undefined && bytes.length > limit) {
          return new MalformedRequest(
            new ResourceExhaustedError(
              `the request is ${bytes.length} bytes; ${method.path.slice(1)} takes at most ${limit}: send less`,
              "request_bytes",
            ),
          );
        }
        try {
          return decode(bytes);
        } catch (cause) {
          return new MalformedRequest(diagnose(desc, bytes, cause));
        }
      };
      return [name, { ...method, requestDeserialize }];
    }),
  );
}

/**
 * grpc-js handlers that answer a MalformedRequest themselves (unaryHandler ends the call with its error
 * before the handler runs, after the auth interceptor as here): the interceptor adds no layer to their
 * calls, a layer that every GetJobDetails and ReportProgress otherwise paid for in the profile.
 */
export const guardingHandlers = new WeakSet<object>();

/**
 * Ends a call whose request decoded to a MalformedRequest with `toStatus` of its error (INVALID_ARGUMENT
 * with a google.rpc.BadRequest); the handler never sees the call. Put it after the auth interceptor, so a
 * caller without a valid token learns nothing about its request. Paths for which `guardedItself` is true
 * are passed on untouched: their handler (one of guardingHandlers) does the same.
 */
export function malformedRequestInterceptor(
  toStatus: (error: unknown) => grpc.StatusObject,
  guardedItself: (path: string) => boolean = () => false,
): grpc.ServerInterceptor {
  return (method, call) => {
    // grpc-js chains whatever each interceptor returns (getServerInterceptingCall); its type names the class.
    if (guardedItself(method.path)) return call as grpc.ServerInterceptingCall;
    let refused = false;
    return new grpc.ServerInterceptingCall(call, {
      start(next) {
        next({
          onReceiveMessage(message, nextMessage) {
            if (refused) return;
            if (message instanceof MalformedRequest) {
              refused = true;
              call.sendStatus(toStatus(message.error));
              return;
            }
            nextMessage(message);
          },
          onReceiveHalfClose(nextHalfClose) {
            if (!refused) nextHalfClose();
          },
        });
      },
    });
  };
}
