// Server reflection (grpc.reflection.v1 and v1alpha) answered from the embedded descriptor set, byte for byte.
//
// A small implementation of the protocol, not @grpc/reflection: that package re-encodes descriptors through
// protobufjs (losing custom options and import lists) and looks up names with a leading dot only, so grpcurl
// could not resolve error details. Behaviour follows grpc-go's reference server (reflection/internal).
import type { FileRegistry } from "@bufbuild/protobuf";
import type { DescriptorProto, EnumDescriptorProto, FieldDescriptorProto } from "@bufbuild/protobuf/wkt";
import type { ServerDuplexStream, ServiceDefinition, UntypedServiceImplementation } from "@grpc/grpc-js";
import { status } from "@grpc/grpc-js";
import type { ServerReflectionRequest, ServerReflectionResponse } from "../gen/grpc/reflection/v1/reflection.js";
import { ServerReflectionService as ReflectionV1 } from "../gen/grpc/reflection/v1/reflection.js";
import { ServerReflectionService as ReflectionV1Alpha } from "../gen/grpc/reflection/v1alpha/reflection.js";
import { CONTRACT_REGISTRY, fileDescriptorProtos } from "./contract.js";

/** One file of the set: its bytes as compiled and the files it imports. */
interface IndexedFile {
  readonly bytes: Buffer;
  readonly dependencies: readonly string[];
}

/** Every name reflection can be asked about, each mapped to the file that defines it. */
class DescriptorIndex {
  private readonly files = new Map<string, IndexedFile>();
  /** Fully-qualified name (no leading dot) of every element -> the file defining it. */
  private readonly symbols = new Map<string, string>();
  /** Extended message -> extension number -> the file declaring the extension. */
  private readonly extensions = new Map<string, Map<number, string>>();

  /** `fileBytes`: each file as compiled; `registry`: the same files decoded (their names, symbols, imports). */
  constructor(fileBytes: readonly Buffer[], registry: FileRegistry) {
    const decoded = [...registry.files];
    if (decoded.length !== fileBytes.length) throw new Error("the registry does not hold the files given");
    for (const [i, bytes] of fileBytes.entries()) {
      const file = decoded[i]!.proto;
      this.files.set(file.name, { bytes, dependencies: file.dependency });
      const scope = file.package === "" ? "" : `${file.package}.`;
      for (const message of file.messageType) this.addMessage(file.name, scope, message);
      for (const e of file.enumType) this.addEnum(file.name, scope, e);
      for (const extension of file.extension) this.addExtension(file.name, scope, extension);
      for (const service of file.service) {
        const name = scope + service.name;
        this.addSymbol(file.name, name);
        for (const method of service.method) this.addSymbol(file.name, `${name}.${method.name}`);
      }
    }
  }

  private addSymbol(file: string, name: string): void {
    const other = this.symbols.get(name);
    if (other !== undefined) throw new Error(`descriptor set defines ${name} twice (${other}, ${file})`);
    this.symbols.set(name, file);
  }

  private addMessage(file: string, scope: string, message: DescriptorProto): void {
    const name = scope + message.name;
    this.addSymbol(file, name);
    for (const field of message.field) this.addSymbol(file, `${name}.${field.name}`);
    for (const oneof of message.oneofDecl) this.addSymbol(file, `${name}.${oneof.name}`);
    for (const nested of message.nestedType) this.addMessage(file, `${name}.`, nested);
    for (const e of message.enumType) this.addEnum(file, `${name}.`, e);
    for (const extension of message.extension) this.addExtension(file, `${name}.`, extension);
  }

  private addEnum(file: string, scope: string, e: EnumDescriptorProto): void {
    this.addSymbol(file, scope + e.name);
    // Enum values are siblings of their enum (C++ scoping), as protoc names them.
    for (const value of e.value) this.addSymbol(file, scope + value.name);
  }

  private addExtension(file: string, scope: string, extension: FieldDescriptorProto): void {
    this.addSymbol(file, scope + extension.name);
    const extendee = extension.extendee.replace(/^\./, "");
    let numbers = this.extensions.get(extendee);
    if (numbers === undefined) {
      numbers = new Map();
      this.extensions.set(extendee, numbers);
    }
    numbers.set(extension.number, file);
  }

  /** The file defining a symbol (message, field, enum, enum value, service, method, extension, oneof). */
  fileOfSymbol(name: string): string | undefined {
    return this.symbols.get(name);
  }

  /** The file declaring extension `number` of message `extendee`. */
  fileOfExtension(extendee: string, number: number): string | undefined {
    return this.extensions.get(extendee)?.get(number);
  }

  /**
   * The extension numbers of a message, ascending ([] when it has none); undefined for an unknown name. As
   * grpc-go does, any other known symbol (a service, an enum) has none rather than being unknown.
   */
  extensionNumbers(name: string): number[] | undefined {
    if (!this.symbols.has(name)) return undefined;
    return [...(this.extensions.get(name)?.keys() ?? [])].sort((a, b) => a - b);
  }

  /** True when the set holds a file of this name. */
  hasFile(name: string): boolean {
    return this.files.has(name);
  }

  /**
   * `root` first, then each of its transitive imports that `sent` does not hold yet, breadth-first; marks
   * them sent. As grpc-go does, the root is always sent and a stream never sends a dependency twice, so a
   * client that keeps one stream open receives each file once.
   */
  withDependencies(root: string, sent: Set<string>): Buffer[] {
    const out: Buffer[] = [];
    const queue = [root];
    for (let name = queue.shift(); name !== undefined; name = queue.shift()) {
      const file = this.files.get(name);
      if (file === undefined || (out.length > 0 && sent.has(name))) continue;
      sent.add(name);
      out.push(file.bytes);
      queue.push(...file.dependencies);
    }
    return out;
  }
}

/** A hint for the most common mistake, a name written as in a descriptor's type_name field. */
function nameHint(name: string): string {
  return name.startsWith(".") ? " (write fully-qualified names without a leading dot)" : "";
}

/**
 * The answer to one request, or undefined when it sets none of the request kinds (the stream then ends
 * with INVALID_ARGUMENT, as grpc-go does). Lookup failures are NOT_FOUND error responses on an open stream.
 */
function answer(
  index: DescriptorIndex,
  services: () => readonly string[],
  request: ServerReflectionRequest,
  sent: Set<string>,
): ServerReflectionResponse | undefined {
  const base = { validHost: request.host, originalRequest: request };
  const notFound = (message: string): ServerReflectionResponse => ({
    ...base,
    errorResponse: { errorCode: status.NOT_FOUND, errorMessage: message },
  });
  const files = (root: string | undefined, missing: string): ServerReflectionResponse =>
    root === undefined
      ? notFound(missing)
      : { ...base, fileDescriptorResponse: { fileDescriptorProto: index.withDependencies(root, sent) } };

  if (request.fileByFilename !== undefined) {
    const name = request.fileByFilename;
    return files(index.hasFile(name) ? name : undefined, `file not found: ${name}`);
  }
  if (request.fileContainingSymbol !== undefined) {
    const name = request.fileContainingSymbol;
    return files(index.fileOfSymbol(name), `symbol not found: ${name}${nameHint(name)}`);
  }
  if (request.fileContainingExtension !== undefined) {
    const { containingType, extensionNumber } = request.fileContainingExtension;
    return files(
      index.fileOfExtension(containingType, extensionNumber),
      `extension ${extensionNumber} of ${containingType} not found${nameHint(containingType)}`,
    );
  }
  if (request.allExtensionNumbersOfType !== undefined) {
    const name = request.allExtensionNumbersOfType;
    const numbers = index.extensionNumbers(name);
    if (numbers === undefined) return notFound(`type not found: ${name}${nameHint(name)}`);
    return { ...base, allExtensionNumbersResponse: { baseTypeName: name, extensionNumber: numbers } };
  }
  if (request.listServices !== undefined) {
    const names = [...services()].sort();
    return { ...base, listServicesResponse: { service: names.map((name) => ({ name })) } };
  }
  return undefined;
}

/** The ServerReflectionInfo handler: one answer per request, in order, with per-stream dependency tracking. */
function serverReflectionInfo(index: DescriptorIndex, services: () => readonly string[]) {
  return (call: ServerDuplexStream<ServerReflectionRequest, ServerReflectionResponse>): void => {
    const sent = new Set<string>();
    call.on("data", (request: ServerReflectionRequest) => {
      const response = answer(index, services, request, sent);
      if (response === undefined) {
        call.emit("error", {
          code: status.INVALID_ARGUMENT,
          details:
            "invalid reflection request: set one of file_by_filename, file_containing_symbol, " +
            "file_containing_extension, all_extension_numbers_of_type, list_services",
        });
        return;
      }
      // A client that sends without reading must not make the server buffer answers without bound.
      if (!call.write(response)) {
        call.pause();
        call.once("drain", () => call.resume());
      }
    });
    call.on("end", () => call.end());
  };
}

/** Where reflection registers itself: the server, or a wrapper that also records and guards services. */
export interface ServiceRegistrar {
  addService(service: ServiceDefinition, implementation: UntypedServiceImplementation): void;
}

/**
 * Adds grpc.reflection.v1 and v1alpha (the same answers on both: their messages are identical on the wire),
 * serving the contract, its imports, health and reflection's own descriptors. `services` is read at each
 * list_services request: the names of every service registered on the server, reflection's included.
 */
export function addReflection(server: ServiceRegistrar, services: () => readonly string[]): void {
  const index = new DescriptorIndex(fileDescriptorProtos(), CONTRACT_REGISTRY);
  const implementation = { serverReflectionInfo: serverReflectionInfo(index, services) };
  server.addService(ReflectionV1, implementation);
  server.addService(ReflectionV1Alpha as unknown as ServiceDefinition, implementation);
}
