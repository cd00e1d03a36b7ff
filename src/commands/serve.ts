import type { AddressInfo } from "node:net";
import type { Config, KeySource } from "../config.ts";
import { ConfigError } from "../errors/config-error.ts";
import { startServing } from "../serving/index.ts";
import { checkFiles, summary } from "./check.ts";
import type { Command } from "./command.ts";
import { loadConfig, serveFlags } from "./flags.ts";
import { createLogging } from "./logging.ts";

// The composition of a running proxy lives in serving/; `serve` is its command line.
export { type Reloaded, readTls, type Serving, type ServingOptions, startServing } from "../serving/index.ts";

function url(address: AddressInfo, forCurl: boolean, scheme = "http"): string {
  let host = address.address;
  if (forCurl && (host === "0.0.0.0" || host === "::")) host = "127.0.0.1";
  if (host.includes(":")) host = `[${host}]`;
  return `${scheme}://${host}:${address.port}`;
}

/** A curl that shows the routing with the configured key source. */
export function tryHint(proxyUrl: string, from: KeySource): string {
  switch (from.kind) {
    case "path":
      return `try: curl ${proxyUrl}/users/42   (the same path always reaches the same member)`;
    case "header":
      return `try: curl -H '${from.name}: 42' ${proxyUrl}/   (the same ${from.name} header always reaches the same member)`;
    case "query":
      return `try: curl '${proxyUrl}/?${from.name}=42'   (the same ${from.name} parameter always reaches the same member)`;
    case "cookie":
      return `try: curl -b '${from.name}=42' ${proxyUrl}/   (the same ${from.name} cookie always reaches the same member)`;
    case "regex":
      return `try: curl ${proxyUrl}/PATH with PATH matching /${from.pattern}/   (the same first group always reaches the same member)`;
  }
}

/** `ringroute serve`: runs until SIGTERM or SIGINT, then shuts down gracefully and returns (exit 0). */
export const serve: Command = {
  name: "serve",
  synopsis: "ringroute serve [--config FILE] [flags]",
  description: `Runs the routing proxy and its admin server. With no membership configured
it starts three demo backends in-process and routes to them. Logs go to stderr,
the access log to stdout; SIGHUP reloads the config, SIGTERM drains and stops.`,
  flags: serveFlags,
  run: (_line, args) => runServe(args),
};

async function runServe(args: string[]): Promise<void> {
  const config = loadConfig(args);
  checkFiles(config);
  const logging = await createLogging(config.log);
  const { logger } = logging;
  logger.info(`config: ${summary(config)}`);
  const serving = await startServing(config, { logger, setLogLevel: logging.setLevel });
  const scheme = config.tls === undefined ? "http" : "https";
  const proxyUrl = url(serving.proxy, true, scheme);
  const adminUrl = url(serving.admin, true);
  const { checksum } = serving.cluster.ring;
  // These two lines are stable: scripts and tests wait for them to learn the bound addresses.
  logger.info(
    { listen: url(serving.proxy, false, scheme), members: serving.cluster.size, checksum },
    `proxy listening on ${url(serving.proxy, false, scheme)}, ${serving.cluster.size} members, ring ${checksum}`,
  );
  logger.info(
    { admin: adminUrl },
    `admin on ${adminUrl}: ${adminUrl}/metrics ${adminUrl}/ring ${adminUrl}/readyz ${adminUrl}/events`,
  );
  logger.info(tryHint(proxyUrl, config.key.from));

  let reloading = Promise.resolve();
  const reload = () => {
    reloading = reloading.then(async () => {
      try {
        // Loaded inside reload: a file that no longer parses counts as an invalid reload.
        const { applied, restart } = await serving.reload((): Config => loadConfig(args));
        logger.info(
          { applied, restart, checksum: serving.cluster.ring.checksum },
          restart.length === 0
            ? "SIGHUP: config reloaded"
            : `SIGHUP: config reloaded; ${restart.join(", ")} take effect at the next restart`,
        );
      } catch (error) {
        if (!(error instanceof ConfigError)) throw error;
        logger.error({ field: error.field, problem: error.problem }, `SIGHUP: config not reloaded: ${error.message}`);
      }
    });
  };

  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) {
        logger.warn(`${signal} again: exiting now`);
        process.exit(1);
      }
      stopping = true;
      logger.info({ signal }, `${signal}: shutting down`);
      serving.close().then(() => {
        logger.info("stopped");
        // Everything ringroute opened is closed and the logs are written (synchronously). A
        // handle something else left open must not hold the exit past the shutdown deadline.
        setTimeout(() => process.exit(process.exitCode ?? 0), 250).unref();
        resolve();
      });
    };
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));
    process.on("SIGHUP", reload);
  });
}
