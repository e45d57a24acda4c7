// TLS channel credentials that send no SNI server name for an IP address (RFC 6066), so Node prints no DEP0123.
import { isIP } from "node:net";
import { connect, createSecureContext, type SecureContext } from "node:tls";
import { type CallCredentials, ChannelCredentials, credentials } from "@grpc/grpc-js";

/** TLS settings of a client (PEM Buffers): CA roots instead of the system's, a client certificate for mTLS. */
export interface TlsOptions {
  /** PEM root certificates to trust instead of the system's. */
  rootCerts?: Buffer;
  /** PEM client key, for mutual TLS. */
  privateKey?: Buffer;
  /** PEM client certificate chain, for mutual TLS. */
  certChain?: Buffer;
}

/** The host part of "host:port", "[v6]:port" or "host" (a dns: or ipv4:/ipv6: target's path). */
export function hostOf(target: string): string {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(target);
  if (bracketed) return bracketed[1] as string;
  const colon = target.lastIndexOf(":");
  // A bare IPv6 address has several colons and no port.
  return colon < 0 || target.indexOf(":") !== colon ? target : target.slice(0, colon);
}

/**
 * grpc-js's createSsl always sets the TLS servername to the target's host, and Node warns (DEP0123) when
 * that is an IP address: `JOBWATCH_ADDRESS=127.0.0.1:50051 --ca ...` printed the warning on every run.
 * These credentials connect as createSsl does (ALPN h2, the same secure context, the certificate checked
 * against the host: an IP SAN for an IP), but leave the servername out for an IP address.
 */
class SslCredentials extends ChannelCredentials {
  constructor(private readonly context: SecureContext) {
    super();
  }

  _isSecure(): boolean {
    return true;
  }

  _equals(other: ChannelCredentials): boolean {
    return other === this;
  }

  _createSecureConnector(
    channelTarget: Parameters<ChannelCredentials["_createSecureConnector"]>[0],
    _options: Parameters<ChannelCredentials["_createSecureConnector"]>[1],
    callCredentials?: CallCredentials,
  ): ReturnType<ChannelCredentials["_createSecureConnector"]> {
    const host = hostOf(channelTarget.path);
    const secureContext = this.context;
    // compose() (grpc-js's) passes the call credentials in.
    const perCall = callCredentials ?? credentials.createEmpty();
    return {
      connect: (socket) =>
        new Promise((resolve, reject) => {
          const tlsSocket = connect(
            {
              socket,
              secureContext,
              host,
              ...(isIP(host) === 0 ? { servername: host } : {}),
              ALPNProtocols: ["h2"],
            },
            () => resolve({ socket: tlsSocket, secure: true }),
          );
          tlsSocket.on("error", reject);
        }),
      waitForReady: () => Promise.resolve(),
      getCallCredentials: () => perCall,
      destroy: () => undefined,
    };
  }
}

/** TLS credentials for a channel: the system's roots unless `rootCerts`, a client certificate for mTLS. */
export function sslCredentials(material: TlsOptions = {}): ChannelCredentials {
  const context = createSecureContext({
    ...(material.rootCerts === undefined ? {} : { ca: material.rootCerts }),
    ...(material.certChain === undefined ? {} : { cert: material.certChain }),
    ...(material.privateKey === undefined ? {} : { key: material.privateKey }),
  });
  return new SslCredentials(context);
}
