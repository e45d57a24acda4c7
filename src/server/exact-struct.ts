// A decoder of google.protobuf.Struct that keeps every key, so CompleteJob sees the result exactly as sent.
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import type { JobWorkerServiceService } from "../gen/jobwatch/v1/job_worker_service.js";

/** A decoded google.protobuf.Value: what JSON holds, or undefined for a Value with no kind set. */
type Decoded = null | boolean | number | string | Decoded[] | { [key: string]: Decoded } | undefined;

/** Sets an own, enumerable property, even for a key such as "__proto__" that `obj[key] = v` would not create. */
function setOwn(object: { [key: string]: Decoded }, key: string, value: Decoded): void {
  Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true });
}

function decodeStruct(bytes: Uint8Array): { [key: string]: Decoded } {
  const out: { [key: string]: Decoded } = {};
  const reader = new BinaryReader(bytes);
  while (reader.pos < reader.len) {
    const [no, type] = reader.tag();
    if (no !== 1 || type !== WireType.LengthDelimited) {
      reader.skip(type, no);
      continue;
    }
    const entry = new BinaryReader(reader.bytes());
    let key = "";
    let value: Decoded;
    while (entry.pos < entry.len) {
      const [eno, etype] = entry.tag();
      if (eno === 1 && etype === WireType.LengthDelimited) key = entry.string();
      else if (eno === 2 && etype === WireType.LengthDelimited) value = decodeValue(entry.bytes());
      else entry.skip(etype, eno);
    }
    setOwn(out, key, value);
  }
  return out;
}

function decodeValue(bytes: Uint8Array): Decoded {
  const reader = new BinaryReader(bytes);
  let value: Decoded;
  while (reader.pos < reader.len) {
    const [no, type] = reader.tag();
    if (no === 1 && type === WireType.Varint) {
      reader.int32();
      value = null;
    } else if (no === 2 && type === WireType.Bit64) value = reader.double();
    else if (no === 3 && type === WireType.LengthDelimited) value = reader.string();
    else if (no === 4 && type === WireType.Varint) value = reader.bool();
    else if (no === 5 && type === WireType.LengthDelimited) value = decodeStruct(reader.bytes());
    else if (no === 6 && type === WireType.LengthDelimited) value = decodeList(reader.bytes());
    else reader.skip(type, no);
  }
  return value;
}

function decodeList(bytes: Uint8Array): Decoded[] {
  const out: Decoded[] = [];
  const reader = new BinaryReader(bytes);
  while (reader.pos < reader.len) {
    const [no, type] = reader.tag();
    if (no === 1 && type === WireType.LengthDelimited) out.push(decodeValue(reader.bytes()));
    else reader.skip(type, no);
  }
  return out;
}

/** The bytes of the last occurrence of a length-delimited field of a message, if any. */
function lastField(bytes: Uint8Array, field: number): Uint8Array | undefined {
  const reader = new BinaryReader(bytes);
  let found: Uint8Array | undefined;
  while (reader.pos < reader.len) {
    const [no, type] = reader.tag();
    if (no === field && type === WireType.LengthDelimited) found = reader.bytes();
    else reader.skip(type, no);
  }
  return found;
}

/**
 * JobWorkerService's definition with CompleteJob's result decoded by decodeStruct. The generated decoder
 * assigns map keys with `obj[key] = value`, so a "__proto__" key vanished and an empty Value was dropped,
 * and the call said OK over a result that was not the one sent. Decoded exactly, the validator can refuse
 * what JSON cannot hold as sent. The generated decoder still runs first, so malformed bytes fail as before.
 */
export function withExactResults(service: typeof JobWorkerServiceService): typeof JobWorkerServiceService {
  const decode = service.completeJob.requestDeserialize;
  const requestDeserialize = (bytes: Buffer): ReturnType<typeof decode> => {
    const request = decode(bytes);
    const raw = lastField(bytes, 2);
    if (raw !== undefined) request.result = decodeStruct(raw);
    return request;
  };
  return { ...service, completeJob: { ...service.completeJob, requestDeserialize } };
}
