import { type ChildProcess, spawn } from "node:child_process";
import { createSocket } from "node:dgram";
import { Resolver } from "node:dns/promises";
import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { until } from "./until.ts";

/** The Debian package dnsmasq-base installs it here; CI installs the package. */
export const dnsmasqPath = "/usr/sbin/dnsmasq";

/** Every test name lives under this domain, which dnsmasq answers for itself (NXDOMAIN for unknown names). */
export const zone = "ringroute.test";

export interface SrvRecord {
  /** e.g. `_http._tcp.web.ringroute.test` */
  name: string;
  target: string;
  port: number;
  priority?: number;
  weight?: number;
}

export interface Records {
  /** SRV records: written to the main config file, which dnsmasq reads only at start. */
  srv?: SrvRecord[];
  /** name → addresses (IPv4 or IPv6): written to an extra hosts file, which dnsmasq rereads on SIGHUP. */
  hosts?: Record<string, string[]>;
}

/** A name that always resolves: the helper queries it to know dnsmasq is answering. */
const probeName = `probe.${zone}`;

/**
 * A real dnsmasq on 127.0.0.1 serving only the records it is given.
 *
 * How records change: dnsmasq rereads its --addn-hosts files on SIGHUP, so
 * A/AAAA changes are a rewrite plus SIGHUP. It does not reread srv-host
 * lines from the main config on SIGHUP (checked with dnsmasq 2.90), so an
 * SRV change restarts dnsmasq on the same port; lookups in between fail
 * with ECONNREFUSED, like a DNS server restarting.
 */
export class Dnsmasq {
  readonly port: number;
  readonly #dir: string;
  #records: Records;
  #child: ChildProcess | undefined;
  #log = "";

  private constructor(dir: string, port: number, records: Records) {
    this.#dir = dir;
    this.port = port;
    this.#records = records;
  }

  /** Starts dnsmasq on a free port (UDP and TCP) with `records`. */
  static async start(records: Records): Promise<Dnsmasq> {
    const dir = await mkdtemp(join(tmpdir(), "ringroute-dnsmasq-"));
    let lastError: unknown;
    for (let attempt = 0; attempt < 5; attempt++) {
      const server = new Dnsmasq(dir, await freePort(), records);
      try {
        await server.#launch();
        return server;
      } catch (error) {
        lastError = error; // most likely another process took the port between probe and bind
      }
    }
    await rm(dir, { recursive: true, force: true });
    throw lastError;
  }

  /** "127.0.0.1:port", for the resolver's setServers. */
  get server(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Whether the process is running (false after kill()). */
  get running(): boolean {
    return this.#child !== undefined;
  }

  /** What dnsmasq wrote to its log, for failure messages. */
  get log(): string {
    return this.#log;
  }

  /** Replaces all records; returns once dnsmasq answers with the new ones. */
  async setRecords(records: Records): Promise<void> {
    const srvChanged = JSON.stringify(records.srv ?? []) !== JSON.stringify(this.#records.srv ?? []);
    this.#records = records;
    if (srvChanged || !this.#child) {
      await this.kill();
      await this.#launch();
      return;
    }
    await this.#writeFiles();
    const reads = this.#hostsReads();
    this.#child.kill("SIGHUP");
    await until(() => this.#hostsReads() > reads, { what: "dnsmasq to reread its hosts file" });
  }

  /** Stops dnsmasq; the port then refuses queries (ECONNREFUSED). */
  async kill(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    this.#child = undefined;
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      await once(child, "exit");
    }
  }

  /** Starts dnsmasq again on the same port with the current records. */
  async restart(): Promise<void> {
    await this.kill();
    await this.#launch();
  }

  async stop(): Promise<void> {
    await this.kill();
    await rm(this.#dir, { recursive: true, force: true });
  }

  async #writeFiles(): Promise<void> {
    const conf = [
      `port=${this.port}`,
      "listen-address=127.0.0.1",
      "bind-interfaces",
      "no-resolv", // no upstream servers: nothing leaves the machine
      "no-hosts", // not /etc/hosts
      `local=/${zone}/`, // answer NXDOMAIN for unknown names in the zone instead of REFUSED
      "local-ttl=0",
      "log-queries",
      `host-record=${probeName},127.0.0.1`,
      ...(this.#records.srv ?? []).map(
        (r) => `srv-host=${r.name},${r.target},${r.port},${r.priority ?? 0},${r.weight ?? 10}`,
      ),
    ];
    const hosts = Object.entries(this.#records.hosts ?? {}).flatMap(([name, addresses]) =>
      addresses.map((address) => `${address} ${name}`),
    );
    await writeFile(join(this.#dir, "dnsmasq.conf"), `${conf.join("\n")}\n`);
    await writeFile(join(this.#dir, "hosts"), `${hosts.join("\n")}\n`);
  }

  #hostsReads(): number {
    return this.#log.split(`read ${join(this.#dir, "hosts")}`).length - 1;
  }

  async #launch(): Promise<void> {
    await this.#writeFiles();
    const child = spawn(
      dnsmasqPath,
      [
        "--keep-in-foreground", // no fork, so the test owns the process
        `--conf-file=${join(this.#dir, "dnsmasq.conf")}`,
        `--addn-hosts=${join(this.#dir, "hosts")}`,
        "--pid-file=", // no pid file
        "--log-facility=-", // log to stderr
        // Stay the current user: as root it would switch to nobody, who cannot read the temp dir.
        `--user=${userInfo().username}`,
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    this.#child = child;
    child.stderr?.setEncoding("utf8").on("data", (chunk: string) => (this.#log += chunk));
    let exited = false;
    child.on("exit", () => (exited = true));
    const spawned = await Promise.race([
      once(child, "spawn").then(() => true),
      once(child, "error").then(([error]) => {
        throw new Error(`cannot start ${dnsmasqPath} (Debian package dnsmasq-base): ${error}`);
      }),
    ]);
    if (!spawned) throw new Error("dnsmasq did not start");
    const probe = new Resolver({ timeout: 200, tries: 1 });
    probe.setServers([this.server]);
    const outcome = await until(
      async () => {
        if (exited) return "exited";
        return probe
          .resolve4(probeName)
          .then(() => "answers")
          .catch(() => undefined);
      },
      { what: `dnsmasq on ${this.server} to answer`, interval: 20 },
    ).catch((error: Error) => error);
    if (outcome !== "answers") {
      this.#child = undefined;
      if (!exited) child.kill("SIGKILL");
      throw outcome === "exited" ? new Error(`dnsmasq exited:\n${this.#log}`) : outcome;
    }
  }
}

/** A port free for both UDP and TCP on 127.0.0.1 (DNS uses both). */
async function freePort(): Promise<number> {
  for (;;) {
    const udp = createSocket("udp4");
    udp.bind(0, "127.0.0.1");
    await once(udp, "listening");
    const { port } = udp.address();
    const tcp = createServer();
    const free = await new Promise<boolean>((resolve) => {
      tcp.once("error", () => resolve(false));
      tcp.listen(port, "127.0.0.1", () => resolve(true));
    });
    udp.close();
    if (free) await new Promise((resolve) => tcp.close(resolve));
    if (free) return port;
  }
}
