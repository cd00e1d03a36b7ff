/**
 * A real Prometheus server (Debian's `prometheus`) on loopback, scraping the
 * given targets every second, with its TSDB in a temporary directory. Tests
 * query it over its HTTP API as Grafana would.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./serf.ts";
import { until } from "./until.ts";

export const prometheusBinary = "/usr/bin/prometheus";

export interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

export class Prometheus {
  readonly output: string[] = [];
  #child: ChildProcess | undefined;

  private constructor(
    readonly dir: string,
    readonly port: number,
  ) {}

  /** Starts Prometheus scraping `targets` (host:port) as job `job`, and waits until it is ready. */
  static async start(job: string, targets: string[]): Promise<Prometheus> {
    const dir = await mkdtemp(join(tmpdir(), "ringroute-prometheus-"));
    const server = new Prometheus(dir, await freePort());
    const config = {
      global: { scrape_interval: "1s", scrape_timeout: "900ms", evaluation_interval: "1s" },
      scrape_configs: [{ job_name: job, static_configs: [{ targets }] }],
    };
    // JSON is YAML: Prometheus reads this as its config file.
    await writeFile(join(dir, "prometheus.yml"), JSON.stringify(config));
    const child = spawn(
      prometheusBinary,
      [
        `--config.file=${join(dir, "prometheus.yml")}`,
        `--storage.tsdb.path=${join(dir, "data")}`,
        `--web.listen-address=127.0.0.1:${server.port}`,
        "--log.level=warn",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    server.#child = child;
    const keep = (chunk: Buffer) => server.output.push(chunk.toString("utf8"));
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
    await until(
      async () => {
        if (child.exitCode !== null) throw new Error(`prometheus exited ${child.exitCode}: ${server.output.join("")}`);
        const res = await fetch(`${server.url}/-/ready`).catch(() => undefined);
        return res?.status === 200;
      },
      { what: "prometheus /-/ready", timeout: 60_000, interval: 100 },
    );
    return server;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** An instant query; throws Prometheus's error (a bad expression) with the expression. */
  async query(expr: string): Promise<Sample[]> {
    const res = await fetch(`${this.url}/api/v1/query?${new URLSearchParams({ query: expr })}`);
    const body = (await res.json()) as { status: string; error?: string; data?: { result: Sample[] } };
    if (body.status !== "success") throw new Error(`${expr}: ${body.error}`);
    return body.data?.result ?? [];
  }

  /** The scrape targets' health as /api/v1/targets reports it. */
  async targets(): Promise<{ scrapeUrl: string; health: string; lastError: string }[]> {
    const res = await fetch(`${this.url}/api/v1/targets`);
    const body = (await res.json()) as {
      data: { activeTargets: { scrapeUrl: string; health: string; lastError: string }[] };
    };
    return body.data.activeTargets;
  }

  async stop(): Promise<void> {
    const child = this.#child;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = once(child, "exit");
      child.kill("SIGKILL");
      await exited;
    }
    await rm(this.dir, { recursive: true, force: true });
  }
}
