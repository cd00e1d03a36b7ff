import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import type { Etcd3, IOptions } from "etcd3";
import type { EtcdConnection } from "./config.ts";

// etcd3 brings gRPC and protobufjs (a third of the install, most of the import
// time): loaded when the first client is made, not when the library is imported.
// Both packages are CommonJS, so a synchronous require keeps constructors synchronous.
const require = createRequire(import.meta.url);

/**
 * An etcd v3 client for a connection config. etcd3's own retries and circuit
 * breaker are turned off: the source and the member retry on their own
 * clock, and a breaker held open for seconds after etcd restarts would only
 * delay the resync.
 */
export function createEtcdClient(
  connection: Pick<EtcdConnection, "endpoints" | "tls" | "username" | "password" | "dialTimeout">,
): Etcd3 {
  const { Etcd3 } = require("etcd3") as typeof import("etcd3");
  const { noop } = require("cockatiel") as typeof import("cockatiel");
  const options: IOptions = {
    hosts: connection.endpoints,
    dialTimeout: connection.dialTimeout,
    faultHandling: { host: () => noop, global: noop },
  };
  const { tls } = connection;
  if (tls) {
    options.credentials = {
      rootCertificate: tls.ca ? readFileSync(tls.ca) : Buffer.alloc(0),
      ...(tls.cert && tls.key ? { certChain: readFileSync(tls.cert), privateKey: readFileSync(tls.key) } : {}),
    };
  }
  if (connection.username !== undefined && connection.password !== undefined) {
    options.auth = { username: connection.username, password: connection.password };
  }
  return new Etcd3(options);
}
