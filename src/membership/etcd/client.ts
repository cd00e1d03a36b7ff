import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import type { Etcd3, IOptions } from "etcd3";
import { ConfigError } from "../../errors/config-error.ts";
import type { EtcdConnection } from "./config.ts";

// etcd3 brings gRPC and protobufjs (nearly half of the install, most of the
// import time), so it is an optional peer dependency: loaded when the first
// client is made, not when the library is imported, and installed only by those
// who use etcd. Both etcd3 and cockatiel are CommonJS, so a synchronous require
// keeps constructors synchronous.
const require = createRequire(import.meta.url);

/**
 * etcd3 and the cockatiel it was built with (taken from etcd3's own
 * dependencies, so its fault-handling policies are the ones etcd3 checks for).
 * Without etcd3 installed, a ConfigError on `field` says what to install.
 */
export function loadEtcd3(field = "membership.etcd"): {
  etcd3: typeof import("etcd3");
  cockatiel: typeof import("cockatiel");
} {
  let path: string;
  try {
    path = require.resolve("etcd3");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "MODULE_NOT_FOUND") throw error;
    throw new ConfigError(field, "the etcd source needs the etcd3 package: npm install etcd3");
  }
  return { etcd3: require(path), cockatiel: createRequire(path)("cockatiel") };
}

/**
 * An etcd v3 client for a connection config. etcd3's own retries and circuit
 * breaker are turned off: the source and the member retry on their own
 * clock, and a breaker held open for seconds after etcd restarts would only
 * delay the resync.
 */
export function createEtcdClient(
  connection: Pick<EtcdConnection, "endpoints" | "tls" | "username" | "password" | "dialTimeout">,
): Etcd3 {
  const { etcd3, cockatiel } = loadEtcd3();
  const noop = cockatiel.noop;
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
  return new etcd3.Etcd3(options);
}
