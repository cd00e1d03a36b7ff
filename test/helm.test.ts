import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import test from "ava";
import { parse as parseYaml } from "yaml";
import { expectedReadme, type SchemaNode, valuesTable } from "../scripts/chart-values.ts";
import { loadConfig } from "../src/commands/flags.ts";
import { parseConfig } from "../src/config.ts";
import { membershipSourceKinds } from "../src/membership/config.ts";
import { parseDnsConfig } from "../src/membership/dns.ts";
import { parseMembersFile } from "../src/membership/file.ts";

// helm is not installed here: helm/ringroute is rendered by test/helm/render.go,
// Go's text/template with sprig (helm's engine) plus helm's include, tpl,
// required and toYaml, built once from Debian's golang-go and sprig packages.
const run = promisify(execFile);
const repo = fileURLToPath(new URL("..", import.meta.url));
const chart = join(repo, "helm/ringroute");
let work = "";
let renderer = "";

test.before(async () => {
  work = await mkdtemp(join(tmpdir(), "ringroute-helm-"));
  renderer = join(work, "render");
  const env = {
    ...process.env,
    GO111MODULE: "off", // GOPATH mode: Debian's Go packages live in /usr/share/gocode
    GOPATH: "/usr/share/gocode",
    GOCACHE: join(work, "gocache"),
    GOFLAGS: "",
    GOPROXY: "off", // never the network
  };
  try {
    await run("go", ["build", "-o", renderer, join(repo, "test/helm/render.go")], { env, timeout: 120_000 });
  } catch (error) {
    throw new Error(
      `cannot build test/helm/render.go (Debian packages golang-go and golang-github-masterminds-sprig-dev): ${
        (error as { stderr?: string }).stderr ?? error
      }`,
    );
  }
});

test.after.always(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

interface Rendered {
  source: string;
  manifest: string;
}

// biome-ignore lint/suspicious/noExplicitAny: rendered Kubernetes objects are checked field by field
type K8sObject = any;

let overrideCount = 0;

/** Renders the chart with values merged over values.yaml; throws helm's error message on a template error. */
async function render(values: object = {}, args: string[] = []): Promise<Rendered[]> {
  const file = join(work, `values-${overrideCount++}.json`);
  await writeFile(file, JSON.stringify(values));
  try {
    const { stdout } = await run(renderer, ["-chart", chart, "-values", file, "-namespace", "shop", ...args]);
    return JSON.parse(stdout) as Rendered[];
  } catch (error) {
    throw new Error((error as { stderr?: string }).stderr?.trim() ?? String(error));
  }
}

/** Every rendered manifest parsed as one YAML document (strict: duplicate keys fail). */
async function objects(values: object = {}, args: string[] = []): Promise<K8sObject[]> {
  const rendered = await render(values, args);
  return rendered
    .filter((r) => !r.source.endsWith("NOTES.txt"))
    .map((r) => {
      try {
        return parseYaml(r.manifest, { uniqueKeys: true, strict: true });
      } catch (error) {
        throw new Error(`${r.source} does not parse: ${(error as Error).message}\n${r.manifest}`);
      }
    });
}

function byKind(docs: K8sObject[], kind: string): K8sObject[] {
  return docs.filter((d) => d.kind === kind);
}

function one(docs: K8sObject[], kind: string): K8sObject {
  const found = byKind(docs, kind);
  if (found.length !== 1) throw new Error(`expected one ${kind}, got ${found.length}`);
  return found[0];
}

/** Whether every label the selector asks for is on the object. */
function selects(selector: Record<string, string>, labels: Record<string, string>): boolean {
  return Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels?.[k] === v);
}

/** The ConfigMap holding ringroute.yaml (a file source adds one with the members). */
function configMapOf(docs: K8sObject[]): K8sObject {
  const found = byKind(docs, "ConfigMap").filter((c) => c.data?.["ringroute.yaml"] !== undefined);
  if (found.length !== 1) throw new Error(`expected one ConfigMap with ringroute.yaml, got ${found.length}`);
  return found[0];
}

function ringrouteYaml(docs: K8sObject[]): Record<string, unknown> {
  const text = configMapOf(docs).data["ringroute.yaml"];
  return parseYaml(text, { uniqueKeys: true, strict: true });
}

/** The structural checks Kubernetes makes on any object, and those of each kind this chart makes. */
function checkKubernetes(t: import("ava").ExecutionContext, docs: K8sObject[]): void {
  const dnsLabel = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
  for (const doc of docs) {
    const what = `${doc?.kind}/${doc?.metadata?.name}`;
    t.is(typeof doc.apiVersion, "string", `${what} apiVersion`);
    t.is(typeof doc.kind, "string", `${what} kind`);
    t.regex(doc.metadata?.name ?? "", dnsLabel, `${what} metadata.name`);
    t.true(doc.metadata.name.length <= 63, `${what} name fits a DNS label`);
    for (const [k, v] of Object.entries(doc.metadata.labels ?? {})) {
      t.is(typeof v, "string", `${what} label ${k} is a string`);
      t.true((v as string).length <= 63, `${what} label ${k} value length`);
    }
  }
  const expectedVersions: Record<string, string> = {
    Deployment: "apps/v1",
    Service: "v1",
    ConfigMap: "v1",
    ServiceMonitor: "monitoring.coreos.com/v1",
    PrometheusRule: "monitoring.coreos.com/v1",
    Secret: "v1",
    ServiceAccount: "v1",
    NetworkPolicy: "networking.k8s.io/v1",
    PodDisruptionBudget: "policy/v1",
    HorizontalPodAutoscaler: "autoscaling/v2",
  };
  for (const doc of docs) t.is(doc.apiVersion, expectedVersions[doc.kind], `${doc.kind} apiVersion`);

  const deployment = one(docs, "Deployment");
  const pod = deployment.spec.template;
  t.true(selects(deployment.spec.selector.matchLabels, pod.metadata.labels), "Deployment selector matches its pods");
  const container = pod.spec.containers.find((c: K8sObject) => c.name === "ringroute");
  const ports = new Map<string | number, number>();
  for (const p of container.ports) {
    ports.set(p.name, p.containerPort);
    ports.set(p.containerPort, p.containerPort);
  }
  for (const [probe, path] of [
    ["startupProbe", "/healthz"],
    ["livenessProbe", "/healthz"],
    ["readinessProbe", "/readyz"],
  ] as const) {
    const get = container[probe]?.httpGet;
    t.is(get?.path, path, `${probe} path`);
    t.true(ports.has(get?.port), `${probe} port ${get?.port} is a container port`);
  }
  t.is(ports.get(container.readinessProbe.httpGet.port), ports.get("admin"), "probes use the admin port");

  const volumes = new Set(pod.spec.volumes.map((v: K8sObject) => v.name));
  for (const mount of container.volumeMounts) t.true(volumes.has(mount.name), `volume ${mount.name} exists`);
  const configVolume = pod.spec.volumes.find((v: K8sObject) => v.name === "config");
  t.is(configVolume.configMap.name, configMapOf(docs).metadata.name, "the pod mounts the chart's ConfigMap");
  for (const e of container.env ?? []) {
    const ref = e.valueFrom?.secretKeyRef;
    const mine = ref && byKind(docs, "Secret").find((s) => s.metadata.name === ref.name);
    if (mine) t.truthy(mine.data[ref.key], `${e.name}: the Secret has key ${ref.key}`);
  }
  const mount = container.volumeMounts.find((m: K8sObject) => m.name === configVolume.name);
  const configArg = container.args[container.args.indexOf("--config") + 1];
  t.true(configArg.startsWith(`${mount.mountPath}/`), "--config points into the mounted ConfigMap");
  t.true(configArg.endsWith("/ringroute.yaml"));

  const services = byKind(docs, "Service");
  t.is(services.length, 2, "a traffic Service and an admin Service");
  const isAdmin = (s: K8sObject) => s.metadata.labels["app.kubernetes.io/component"] === "admin";
  const service = services.find((s) => !isAdmin(s));
  const adminService = services.find(isAdmin);
  for (const s of services) {
    t.true(selects(s.spec.selector, pod.metadata.labels), `${s.metadata.name} selects the pods`);
    for (const p of s.spec.ports) t.true(ports.has(p.targetPort), `Service targetPort ${p.targetPort}`);
  }
  t.deepEqual(
    service.spec.ports.map((p: K8sObject) => p.targetPort),
    ["proxy"],
    "the traffic Service carries the proxy port only",
  );
  t.is(adminService.spec.type, "ClusterIP", "the admin port never leaves the cluster");
  t.deepEqual(
    adminService.spec.ports.map((p: K8sObject) => p.targetPort),
    ["admin"],
  );

  const seconds = (d: unknown) => {
    const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(String(d));
    return m ? Number(m[1]) * { ms: 0.001, s: 1, m: 60, h: 3600 }[m[2] as "s"] : Number(d ?? 0);
  };
  const yaml = ringrouteYaml(docs);
  t.true(
    pod.spec.terminationGracePeriodSeconds > seconds(yaml.shutdownDelay) + seconds(yaml.shutdownTimeout ?? "10s"),
    "the kubelet waits longer than the drain",
  );

  // The admin server must listen where the kubelet's probes and the Service reach it.
  const config = ringrouteYaml(docs);
  t.regex(config.admin as string, new RegExp(`^0\\.0\\.0\\.0:${ports.get("admin")}$`));
  t.regex(config.listen as string, new RegExp(`^0\\.0\\.0\\.0:${ports.get("proxy")}$`));

  for (const monitor of byKind(docs, "ServiceMonitor")) {
    t.true(selects(monitor.spec.selector.matchLabels, adminService.metadata.labels), "ServiceMonitor selects admin");
    t.false(selects(monitor.spec.selector.matchLabels, service.metadata.labels), "and not the traffic Service");
    const portNames = adminService.spec.ports.map((p: K8sObject) => p.name);
    for (const e of monitor.spec.endpoints) t.true(portNames.includes(e.port), `ServiceMonitor port ${e.port}`);
  }
  for (const pdb of byKind(docs, "PodDisruptionBudget")) {
    t.true(selects(pdb.spec.selector.matchLabels, pod.metadata.labels), "PDB selects the pods");
    t.not(pdb.spec.minAvailable === undefined, pdb.spec.maxUnavailable === undefined, "exactly one of the two");
  }
  for (const hpa of byKind(docs, "HorizontalPodAutoscaler")) {
    t.deepEqual(hpa.spec.scaleTargetRef, { apiVersion: "apps/v1", kind: "Deployment", name: deployment.metadata.name });
    t.true(hpa.spec.minReplicas <= hpa.spec.maxReplicas);
    t.true(hpa.spec.metrics.length > 0);
    t.is(deployment.spec.replicas, undefined, "the HPA owns the replica count");
  }
}

const modes: Record<string, object> = {
  dns: {},
  tls: { tls: { secretName: "proxy-cert", ca: true } },
  "dns with A records": { membership: { dns: { type: "A", port: 8080 } } },
  static: {
    membership: {
      source: "static",
      static: { members: [{ name: "a", url: "http://backend-a:8080" }] },
      health: { path: "/healthz", interval: "2s" },
    },
  },
  serf: { membership: { source: "serf", serf: { rpc: "127.0.0.1:7373", tags: { ring: "^active$" } } } },
  file: {
    membership: {
      source: "file",
      file: {
        members: [
          { name: "web-0", url: "http://web-0.web:8080" },
          { name: "web-1", url: "http://web-1.web:8080" },
        ],
      },
    },
  },
  "file from an existing ConfigMap": {
    membership: { source: "file", file: { existingConfigMap: "pool", key: "members.yaml", pollInterval: "1s" } },
  },
  etcd: {
    membership: {
      source: "etcd",
      etcd: {
        endpoints: ["https://etcd-0.etcd:2379", "https://etcd-1.etcd:2379"],
        cluster: "shop",
        handoff: "immediate",
        username: "ringroute",
        password: "s3cret",
        tls: { secretName: "etcd-client", clientCert: true },
      },
    },
  },
  "etcd with TLS to the clients too": {
    tls: { secretName: "proxy-cert" },
    membership: { source: "etcd", etcd: { username: "ringroute", existingSecret: "etcd-auth" } },
  },
};

/** Kinds each mode adds to the ConfigMap, Deployment, PodDisruptionBudget and two Services of every render. */
const extraKinds: Record<string, string[]> = { file: ["ConfigMap"], etcd: ["Secret"] };

for (const [mode, values] of Object.entries(modes)) {
  test(`membership ${mode}: every document is a valid Kubernetes object and the parts fit together`, async (t) => {
    const docs = await objects(values);
    t.deepEqual(
      docs.map((d) => d.kind).sort(),
      ["ConfigMap", "Deployment", "PodDisruptionBudget", "Service", "Service", ...(extraKinds[mode] ?? [])].sort(),
    );
    checkKubernetes(t, docs);
  });
}

test("by default ringroute polls the SRV record of the backend's headless Service, in natural order", async (t) => {
  const config = ringrouteYaml(await objects());
  t.deepEqual(config.membership, {
    dns: {
      name: "_http._tcp.backend.shop.svc.cluster.local",
      type: "SRV",
      interval: "5s",
      timeout: "2s",
      emptyAfter: 3,
    },
  });
  t.is((config.ring as { order: string }).order, "natural");
  // What ringroute itself will do with the section.
  const dns = parseDnsConfig((config.membership as { dns: unknown }).dns);
  t.is(dns.interval, 5000);
  t.is(dns.type, "SRV");
});

test("the rendered ringroute.yaml passes ringroute's own config validation", async (t) => {
  const staticConfig = ringrouteYaml(await objects(modes.static as object));
  const parsed = parseConfig(staticConfig);
  t.deepEqual(parsed.listen, { host: "0.0.0.0", port: 8080 });
  t.deepEqual(parsed.admin, { host: "0.0.0.0", port: 9090 });
  t.is(parsed.ring.order, "natural");
  t.is(parsed.shutdownTimeout, 10_000);

  // Every membership mode, source section included.
  // Secrets arrive as variables, as in the pod.
  const env = { RINGROUTE_ETCD_PASSWORD: "password" };
  for (const [mode, values] of Object.entries(modes)) {
    const text = configMapOf(await objects(values as object)).data["ringroute.yaml"];
    const parsed = loadConfig(["--config", "ringroute.yaml"], { env, readFile: () => text });
    t.truthy(parsed.membership, mode);
  }
  t.is(parseConfig(ringrouteYaml(await objects())).membership?.dns?.interval, 5000);
  const proxy = { proxy: { timeouts: { connect: "1s" }, retry: { attempts: 1 } } };
  t.is(parseConfig(ringrouteYaml(await objects({ ...modes.static, config: proxy }))).proxy.retry.attempts, 1);
});

test("each membership source renders its own section of ringroute.yaml", async (t) => {
  const a = ringrouteYaml(await objects(modes["dns with A records"] as object));
  t.deepEqual(a.membership, {
    dns: {
      name: "backend.shop.svc.cluster.local",
      type: "A",
      port: 8080,
      interval: "5s",
      timeout: "2s",
      emptyAfter: 3,
    },
  });
  t.deepEqual(parseDnsConfig((a.membership as { dns: unknown }).dns).port, 8080);

  const s = ringrouteYaml(await objects(modes.static as object));
  t.deepEqual(s.membership, {
    static: { members: [{ name: "a", url: "http://backend-a:8080" }] },
    health: { path: "/healthz", interval: "2s" },
  });

  const serf = ringrouteYaml(await objects(modes.serf as object));
  t.deepEqual(serf.membership, {
    serf: {
      rpc: "127.0.0.1:7373",
      urlTag: "http",
      tags: { ring: "^active$" },
      tagMatch: "all",
      urlScheme: "http",
      reconnectMax: "5s",
      timeout: "5s",
    },
  });

  const named = ringrouteYaml(
    await objects({ membership: { dns: { name: "_web._tcp.pool.{{ .Release.Namespace }}.example" } } }),
  );
  t.is(
    (named.membership as { dns: { name: string } }).dns.name,
    "_web._tcp.pool.shop.example",
    "name goes through tpl",
  );
});

test("missing required values fail with a message naming the value", async (t) => {
  await t.throwsAsync(render({ membership: { dns: { service: "" } } }), { message: /membership\.dns\.service/ });
  await t.throwsAsync(render({ membership: { dns: { type: "AAAA" } } }), { message: /membership\.dns\.port/ });
  await t.throwsAsync(render({ membership: { source: "static" } }), { message: /membership\.static\.members/ });
  await t.throwsAsync(render({ membership: { source: "consul" } }), { message: /membership\.source/ });
  await t.throwsAsync(render({ membership: { source: "file" } }), { message: /membership\.file/ });
  await t.throwsAsync(render({ membership: { source: "etcd", etcd: { endpoints: [] } } }), {
    message: /membership\.etcd\.endpoints/,
  });
  await t.throwsAsync(render({ membership: { source: "etcd", etcd: { username: "u" } } }), {
    message: /membership\.etcd\.username: set membership\.etcd\.password/,
  });
  await t.throwsAsync(render({ podDisruptionBudget: { enabled: true, maxUnavailable: 1 } }), { message: /not both/ });
  await t.throwsAsync(render({ networkPolicy: { enabled: true, monitoringNamespace: "" } }), {
    message: /networkPolicy\.monitoringNamespace/,
  });
});

/** The ringroute container of the Deployment. */
function container(docs: K8sObject[]): K8sObject {
  return one(docs, "Deployment").spec.template.spec.containers.find((c: K8sObject) => c.name === "ringroute");
}

const serf = { source: "serf", serf: { rpc: "127.0.0.1:7373" } };

test("the Serf auth key reaches the pod from a Secret, never through the ConfigMap", async (t) => {
  const key = "QUJDREVGR0hJSktMTU5PUA==";
  const docs = await objects({ membership: { ...serf, serf: { ...serf.serf, authKey: key } } });
  checkKubernetes(t, docs);
  const configMap = configMapOf(docs);
  t.false(JSON.stringify(configMap).includes(key), "not in the ConfigMap");
  t.false(JSON.stringify(one(docs, "Deployment")).includes(key), "not in the Deployment");
  const secret = one(docs, "Secret");
  t.is(Buffer.from(secret.data["serf-auth-key"], "base64").toString(), key);
  const env = container(docs).env.find((e: K8sObject) => e.name === "RINGROUTE_SERF_AUTH_KEY");
  t.deepEqual(env.valueFrom.secretKeyRef, { name: secret.metadata.name, key: "serf-auth-key" });

  // ringroute reads the two together as one Serf source with that key.
  const dir = await mkdtemp(join(tmpdir(), "ringroute-helm-config-"));
  const path = join(dir, "ringroute.yaml");
  await writeFile(path, configMap.data["ringroute.yaml"]);
  const config = loadConfig(["--config", path], { env: { RINGROUTE_SERF_AUTH_KEY: key } });
  t.is(config.membership?.serf?.authKey, key);
  await rm(dir, { recursive: true });

  const existing = await objects({
    membership: { ...serf, serf: { ...serf.serf, existingSecret: "serf-keys", existingSecretKey: "key" } },
  });
  t.deepEqual(byKind(existing, "Secret"), [], "no Secret made when one exists");
  t.deepEqual(
    container(existing).env.find((e: K8sObject) => e.name === "RINGROUTE_SERF_AUTH_KEY").valueFrom.secretKeyRef,
    { name: "serf-keys", key: "key" },
  );
  t.is(container(await objects({ membership: serf })).env, undefined, "no key, no variable");
});

test("a LoadBalancer traffic Service carries the proxy port only; the admin port stays on a ClusterIP Service", async (t) => {
  const docs = await objects({ service: { type: "LoadBalancer" }, adminService: { port: 9191 } });
  checkKubernetes(t, docs);
  const [admin, traffic] = byKind(docs, "Service").sort((a: K8sObject, b: K8sObject) =>
    a.metadata.name.endsWith("-admin") ? -1 : b.metadata.name.endsWith("-admin") ? 1 : 0,
  );
  t.is(traffic.spec.type, "LoadBalancer");
  t.deepEqual(
    traffic.spec.ports.map((p: K8sObject) => p.name),
    ["http"],
  );
  t.is(admin.spec.type, "ClusterIP");
  t.deepEqual(
    admin.spec.ports.map((p: K8sObject) => [p.name, p.port]),
    [["admin", 9191]],
  );
});

test("shutdownDelay is in the config and the grace period must outlast the drain", async (t) => {
  const docs = await objects({
    config: { shutdownDelay: "8s", shutdownTimeout: "15s" },
    terminationGracePeriodSeconds: 30,
  });
  checkKubernetes(t, docs);
  const config = parseConfig(ringrouteYaml(docs));
  t.is(config.shutdownDelay, 8000);
  t.is(config.shutdownTimeout, 15_000);
  t.is(parseConfig(ringrouteYaml(await objects())).shutdownDelay, 5000, "the chart's default delay");
  await t.throwsAsync(render({ config: { shutdownDelay: "20s", shutdownTimeout: "10s" } }), {
    message:
      /terminationGracePeriodSeconds: must be larger than config\.shutdownDelay \+ config\.shutdownTimeout \(30 s\), got 30/,
  });
  await t.throwsAsync(render({ config: { shutdownDelay: "500ms", shutdownTimeout: "1m" } }), {
    message: /terminationGracePeriodSeconds/,
  });
  await t.notThrowsAsync(
    render({ config: { shutdownDelay: "500ms", shutdownTimeout: "1m" }, terminationGracePeriodSeconds: 61 }),
  );
});

test("startupProbe, extraEnv, podAnnotations and an image digest reach the pod", async (t) => {
  const digest = `sha256:${"ab".repeat(32)}`;
  const docs = await objects({
    image: { repository: "registry.example.com/ringroute", tag: "9.9.9", digest },
    extraEnv: [{ name: "RINGROUTE_LOG_LEVEL", value: "debug" }],
    podAnnotations: { "example.com/team": "routing" },
    startupProbe: { periodSeconds: 3, failureThreshold: 20 },
  });
  checkKubernetes(t, docs);
  const c = container(docs);
  t.is(c.image, `registry.example.com/ringroute@${digest}`, "the digest wins over the tag");
  t.deepEqual(c.env, [{ name: "RINGROUTE_LOG_LEVEL", value: "debug" }]);
  t.like(c.startupProbe, { httpGet: { path: "/healthz", port: "admin" }, periodSeconds: 3, failureThreshold: 20 });
  t.is(one(docs, "Deployment").spec.template.metadata.annotations["example.com/team"], "routing");
  t.is(container(await objects({ image: { tag: "1.2.3" } })).image, "ringroute:1.2.3");
});

test("a ServiceAccount is made only when asked; a named one is used as is", async (t) => {
  const made = await objects({ serviceAccount: { create: true, annotations: { "example.com/role": "r" } } });
  checkKubernetes(t, made);
  const account = one(made, "ServiceAccount");
  t.is(account.metadata.annotations["example.com/role"], "r");
  t.false(account.automountServiceAccountToken);
  const pod = one(made, "Deployment").spec.template.spec;
  t.is(pod.serviceAccountName, account.metadata.name);
  t.false(pod.automountServiceAccountToken);

  const named = await objects({ serviceAccount: { name: "shared" } });
  t.deepEqual(byKind(named, "ServiceAccount"), []);
  t.is(one(named, "Deployment").spec.template.spec.serviceAccountName, "shared");
  t.is(one(await objects(), "Deployment").spec.template.spec.serviceAccountName, undefined);
});

test("the NetworkPolicy opens the proxy port to all and the admin port to the monitoring namespace only", async (t) => {
  const docs = await objects({
    networkPolicy: { enabled: true, monitoringNamespace: "observability", monitoringPodLabels: { app: "prometheus" } },
  });
  checkKubernetes(t, docs);
  const policy = one(docs, "NetworkPolicy");
  const pod = one(docs, "Deployment").spec.template;
  t.true(selects(policy.spec.podSelector.matchLabels, pod.metadata.labels));
  t.deepEqual(policy.spec.policyTypes, ["Ingress"]);
  const [traffic, admin] = policy.spec.ingress;
  t.is(traffic.from, undefined, "traffic from anywhere");
  t.deepEqual(traffic.ports, [{ port: "proxy", protocol: "TCP" }]);
  t.deepEqual(admin.from, [
    {
      namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "observability" } },
      podSelector: { matchLabels: { app: "prometheus" } },
    },
  ]);
  t.deepEqual(admin.ports, [{ port: "admin", protocol: "TCP" }]);
  t.deepEqual(byKind(await objects(), "NetworkPolicy"), [], "off by default");
});

test("the config checksum on the pod template changes exactly when the config does", async (t) => {
  const checksum = async (values: object) =>
    one(await objects(values), "Deployment").spec.template.metadata.annotations["checksum/config"];
  const base = await checksum({});
  t.regex(base, /^[0-9a-f]{64}$/);
  t.is(await checksum({ replicaCount: 5, resources: { limits: { memory: "1Gi" } } }), base, "non-config values");
  t.not(await checksum({ config: { ring: { partitions: 1024 } } }), base);
  t.not(await checksum({ membership: { dns: { interval: "10s" } } }), base);
  t.not(await checksum({ ports: { admin: 9191 } }), base);
});

test("the container runs as non-root on a read-only root filesystem, without privileges", async (t) => {
  const pod = one(await objects(), "Deployment").spec.template.spec;
  const sc = pod.containers[0].securityContext;
  t.true(pod.securityContext.runAsNonRoot);
  t.true(pod.securityContext.runAsUser > 0);
  t.true(sc.runAsNonRoot);
  t.true(sc.readOnlyRootFilesystem);
  t.false(sc.allowPrivilegeEscalation);
  t.false(sc.privileged);
  t.deepEqual(sc.capabilities.drop, ["ALL"]);
  t.false(pod.automountServiceAccountToken);
  t.truthy(pod.containers[0].resources.requests.cpu);
});

test("ServiceMonitor, PodDisruptionBudget and HorizontalPodAutoscaler appear only when enabled", async (t) => {
  const docs = await objects(
    {
      serviceMonitor: { enabled: true, labels: { release: "prometheus" } },
      podDisruptionBudget: { enabled: true },
      autoscaling: { enabled: true, targetMemoryUtilizationPercentage: 75 },
    },
    ["-api-versions", "monitoring.coreos.com/v1"],
  );
  t.deepEqual(docs.map((d) => d.kind).sort(), [
    "ConfigMap",
    "Deployment",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "Service",
    "Service",
    "ServiceMonitor",
  ]);
  checkKubernetes(t, docs);
  const monitor = one(docs, "ServiceMonitor");
  t.is(monitor.metadata.labels.release, "prometheus");
  t.deepEqual(
    monitor.spec.endpoints.map((e: K8sObject) => e.path),
    ["/metrics"],
  );
  t.is(one(docs, "PodDisruptionBudget").spec.minAvailable, 1);
  t.deepEqual(
    one(docs, "HorizontalPodAutoscaler").spec.metrics.map((m: K8sObject) => m.resource.name),
    ["cpu", "memory"],
  );

  const pdb = one(
    await objects({ podDisruptionBudget: { enabled: true, minAvailable: null, maxUnavailable: "25%" } }),
    "PodDisruptionBudget",
  );
  t.is(pdb.spec.maxUnavailable, "25%");
  t.is(pdb.spec.minAvailable, undefined);
});

test("the longest release name helm accepts still gives valid resource names", async (t) => {
  const release = "r".repeat(53); // helm's limit; with "-ringroute" appended it passes 63
  const docs = await objects({}, ["-release", release]);
  checkKubernetes(t, docs);
  t.is(one(docs, "Deployment").metadata.name.length, 63);
});

test("NOTES.txt renders the DNS name it polls", async (t) => {
  const notes = (await render()).find((r) => r.source.endsWith("NOTES.txt"));
  t.regex(notes?.manifest ?? "", /DNS SRV _http\._tcp\.backend\.shop\.svc\.cluster\.local/);
  t.regex(notes?.manifest ?? "", /port-forward service\/release-name-ringroute-admin 9090:9090\n/, "the admin Service");
  t.notRegex(notes?.manifest ?? "", /no value/);
});

// values.schema.json: helm validates values against it on install. A small
// validator for the keywords the schema uses stands in for helm's.
type Schema = {
  type?: string | string[];
  properties?: Record<string, Schema>;
  additionalProperties?: boolean | Schema;
  required?: string[];
  enum?: unknown[];
  items?: Schema;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  pattern?: string;
};
const schemaKeywords = new Set([
  "$schema",
  "title",
  "description",
  "type",
  "properties",
  "additionalProperties",
  "required",
  "enum",
  "items",
  "minimum",
  "maximum",
  "minLength",
  "pattern",
]);

function typeOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "number") return Number.isInteger(value) ? "integer" : "number";
  return typeof value;
}

function validate(schema: Schema, value: unknown, path = "values"): string[] {
  for (const keyword of Object.keys(schema)) {
    if (!schemaKeywords.has(keyword)) return [`${path}: schema keyword ${keyword} not understood by this validator`];
  }
  const errors: string[] = [];
  const type = typeOf(value);
  if (schema.type !== undefined) {
    const allowed = [schema.type].flat();
    if (!allowed.includes(type) && !(type === "integer" && allowed.includes("number"))) {
      return [`${path}: expected ${allowed.join("|")}, got ${type}`];
    }
  }
  if (schema.enum && !schema.enum.includes(value)) errors.push(`${path}: ${JSON.stringify(value)} not in enum`);
  if (typeof value === "number") {
    if (schema.minimum !== undefined && value < schema.minimum) errors.push(`${path}: below ${schema.minimum}`);
    if (schema.maximum !== undefined && value > schema.maximum) errors.push(`${path}: above ${schema.maximum}`);
  }
  if (typeof value === "string") {
    if (schema.minLength !== undefined && value.length < schema.minLength) errors.push(`${path}: too short`);
    if (schema.pattern !== undefined && !new RegExp(schema.pattern).test(value)) errors.push(`${path}: pattern`);
  }
  if (type === "array" && schema.items) {
    (value as unknown[]).forEach((item, i) => {
      errors.push(...validate(schema.items as Schema, item, `${path}[${i}]`));
    });
  }
  if (type === "object") {
    const object = value as Record<string, unknown>;
    for (const key of schema.required ?? []) if (!(key in object)) errors.push(`${path}.${key}: required`);
    for (const [key, item] of Object.entries(object)) {
      const property = schema.properties?.[key];
      if (property) errors.push(...validate(property, item, `${path}.${key}`));
      else if (schema.additionalProperties === false) errors.push(`${path}.${key}: not allowed`);
      else if (typeof schema.additionalProperties === "object") {
        errors.push(...validate(schema.additionalProperties, item, `${path}.${key}`));
      }
    }
  }
  return errors;
}

/** values.yaml with overrides merged in as helm merges them (null deletes). */
function merged(base: unknown, override: unknown): unknown {
  if (typeOf(base) !== "object" || typeOf(override) !== "object") return override;
  const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  for (const [k, v] of Object.entries(override as Record<string, unknown>)) {
    if (v === null) delete out[k];
    else out[k] = merged(out[k], v);
  }
  return out;
}

test("values.schema.json accepts the defaults and every mode, and rejects typos and bad values", async (t) => {
  const schema = JSON.parse(await readFile(join(chart, "values.schema.json"), "utf8")) as Schema;
  const defaults = parseYaml(await readFile(join(chart, "values.yaml"), "utf8"));
  t.deepEqual(validate(schema, defaults), []);
  for (const values of Object.values(modes)) t.deepEqual(validate(schema, merged(defaults, values)), []);

  const bad: [object, RegExp][] = [
    [{ replicaCont: 3 }, /values\.replicaCont: not allowed/],
    [{ membership: { source: "consul" } }, /values\.membership\.source: .* not in enum/],
    [{ membership: { etcd: { handoff: "lazy" } } }, /values\.membership\.etcd\.handoff/],
    [{ config: { proxy: { retry: { attemps: 2 } } } }, /values\.config\.proxy\.retry\.attemps: not allowed/],
    [
      { config: { proxy: { retry: { grpcMethods: ["Store.Get"] } } } },
      /values\.config\.proxy\.retry\.grpcMethods\[0\]: pattern/,
    ],
    [{ config: { workers: "many" } }, /values\.config\.workers: pattern/],
    [{ tls: { secret: "x" } }, /values\.tls\.secret: not allowed/],
    [{ podAntiAffinity: "strict" }, /values\.podAntiAffinity/],
    [{ membership: { dns: { interval: 5 } } }, /values\.membership\.dns\.interval: expected string/],
    [{ membership: { dns: { interval: "5 seconds" } } }, /values\.membership\.dns\.interval: pattern/],
    [{ config: { ring: { order: "random" } } }, /values\.config\.ring\.order/],
    [{ ports: { admin: 70000 } }, /values\.ports\.admin: above/],
    [
      { membership: { static: { members: [{ name: "a", url: "http://a:1", protocol: "h2" }] } } },
      /values\.membership\.static\.members\[0\]\.protocol: .* not in enum/,
    ],
    [{ membership: { dns: { memberProtocol: "grpc" } } }, /values\.membership\.dns\.memberProtocol: .* not in enum/],
    [{ membership: { serf: { protocol: "h3" } } }, /values\.membership\.serf\.protocol: .* not in enum/],
    [{ config: { http2: "yes" } }, /values\.config\.http2: expected boolean/],
  ];
  for (const [override, message] of bad) {
    const errors = validate(schema, merged(defaults, override));
    t.true(
      errors.some((e) => message.test(e)),
      `${JSON.stringify(override)}: ${errors.join("; ")}`,
    );
  }
});

test("the chart README's values table is generated from values.schema.json and in sync", async (t) => {
  const { current, expected } = expectedReadme();
  t.is(current, expected, "run tsx scripts/chart-values.ts");
  // Every value in values.yaml is documented: it, or the object holding it, has a schema description.
  const schema = JSON.parse(await readFile(join(chart, "values.schema.json"), "utf8")) as Schema & SchemaNode;
  const defaults = parseYaml(await readFile(join(chart, "values.yaml"), "utf8"));
  const undocumented: string[] = [];
  const walk = (value: unknown, node: (Schema & SchemaNode) | undefined, path: string, described: boolean) => {
    const documented = described || node?.description !== undefined;
    const children = typeOf(value) === "object" ? Object.entries(value as object) : [];
    if (children.length === 0 || node?.properties === undefined) {
      if (!documented) undocumented.push(path);
      return;
    }
    for (const [k, v] of children)
      walk(v, node.properties[k] as Schema & SchemaNode, path ? `${path}.${k}` : k, documented);
  };
  walk(defaults, schema, "", false);
  t.deepEqual(undocumented, []);
  // And the generator really reads the schema: a new described property gets a row.
  const extra = structuredClone(schema);
  (extra.properties as Record<string, SchemaNode>).newValue = { type: "string", description: "A value added later." };
  t.regex(valuesTable(extra, { newValue: "x" }), /^\| `newValue` \| `"x"` \| A value added later\. \|$/m);
});

test("TLS from a Secret: mounted read-only, named in ringroute.yaml, and accepted by ringroute", async (t) => {
  const docs = await objects({ tls: { secretName: "proxy-cert", ca: true } });
  checkKubernetes(t, docs);
  const pod = one(docs, "Deployment").spec.template.spec;
  const volume = pod.volumes.find((v: K8sObject) => v.secret?.secretName === "proxy-cert");
  const mount = container(docs).volumeMounts.find((m: K8sObject) => m.name === volume.name);
  t.true(mount.readOnly);
  const config = ringrouteYaml(docs);
  t.deepEqual(config.tls, {
    cert: `${mount.mountPath}/tls.crt`,
    key: `${mount.mountPath}/tls.key`,
    ca: `${mount.mountPath}/ca.crt`,
  });
  t.deepEqual(parseConfig(config).tls, config.tls);
  t.is(ringrouteYaml(await objects()).tls, undefined, "plain HTTP by default");
  const notes = (await render({ tls: { secretName: "proxy-cert" } })).find((r) => r.source.endsWith("NOTES.txt"));
  t.regex(notes?.manifest ?? "", /curl -i -k https:\/\/127\.0\.0\.1:8080/);
});

test("file source: members in a ConfigMap the chart makes (or one that exists), mounted as a directory the source watches", async (t) => {
  const docs = await objects(modes.file as object);
  const config = ringrouteYaml(docs);
  const file = (config.membership as { file: { path: string } }).file;
  t.deepEqual(file, { path: "/etc/ringroute-members/members.txt", pollInterval: "500ms", settle: "200ms" });
  const members = byKind(docs, "ConfigMap").find((c) => c.data["members.txt"] !== undefined);
  t.is(members.data["members.txt"], "web-0 http://web-0.web:8080\nweb-1 http://web-1.web:8080\n");
  t.deepEqual(
    parseMembersFile(members.data["members.txt"], "members.txt").map((m) => [m.name, m.url]),
    [
      ["web-0", "http://web-0.web:8080"],
      ["web-1", "http://web-1.web:8080"],
    ],
    "the file source reads what the chart wrote",
  );
  const pod = one(docs, "Deployment").spec.template.spec;
  const volume = pod.volumes.find((v: K8sObject) => v.configMap?.name === members.metadata.name);
  const mount = container(docs).volumeMounts.find((m: K8sObject) => m.name === volume.name);
  t.is(mount.subPath, undefined, "a subPath mount would never see the ConfigMap's updates");
  t.true(file.path.startsWith(`${mount.mountPath}/`));
  t.is(parseConfig(config).membership?.file?.pollInterval, 500);

  const existing = await objects(modes["file from an existing ConfigMap"] as object);
  t.is(byKind(existing, "ConfigMap").length, 1, "no members ConfigMap made when one exists");
  const pool = one(existing, "Deployment").spec.template.spec.volumes.find(
    (v: K8sObject) => v.configMap?.name === "pool",
  );
  t.truthy(pool);
  t.is(
    (ringrouteYaml(existing).membership as { file: { path: string } }).file.path,
    "/etc/ringroute-members/members.yaml",
  );
});

test("etcd source: endpoints, handoff mode, the password from a Secret, TLS to etcd from another", async (t) => {
  const docs = await objects(modes.etcd as object);
  const configMap = configMapOf(docs);
  t.false(JSON.stringify(configMap).includes("s3cret"), "the password is not in the ConfigMap");
  t.false(JSON.stringify(one(docs, "Deployment")).includes("s3cret"), "nor in the Deployment");
  const config = ringrouteYaml(docs);
  t.deepEqual(config.membership, {
    etcd: {
      endpoints: ["https://etcd-0.etcd:2379", "https://etcd-1.etcd:2379"],
      cluster: "shop",
      handoff: "immediate",
      handoffTimeout: "30s",
      handoffWait: "2s",
      dialTimeout: "5s",
      username: "ringroute",
      tls: {
        ca: "/etc/ringroute-etcd-tls/ca.crt",
        cert: "/etc/ringroute-etcd-tls/tls.crt",
        key: "/etc/ringroute-etcd-tls/tls.key",
      },
    },
  });
  const secret = one(docs, "Secret");
  t.is(Buffer.from(secret.data["etcd-password"], "base64").toString(), "s3cret");
  const env = container(docs).env.find((e: K8sObject) => e.name === "RINGROUTE_ETCD_PASSWORD");
  t.deepEqual(env.valueFrom.secretKeyRef, { name: secret.metadata.name, key: "etcd-password" });
  const volume = one(docs, "Deployment").spec.template.spec.volumes.find(
    (v: K8sObject) => v.secret?.secretName === "etcd-client",
  );
  t.is(
    container(docs).volumeMounts.find((m: K8sObject) => m.name === volume.name).mountPath,
    "/etc/ringroute-etcd-tls",
  );

  // ringroute reads the file and the variable together as one etcd source with that password.
  const dir = await mkdtemp(join(tmpdir(), "ringroute-helm-config-"));
  const path = join(dir, "ringroute.yaml");
  await writeFile(path, configMap.data["ringroute.yaml"]);
  const etcd = loadConfig(["--config", path], { env: { RINGROUTE_ETCD_PASSWORD: "s3cret" } }).membership?.etcd;
  t.is(etcd?.password, "s3cret");
  t.is(etcd?.handoff, "immediate");
  t.is(etcd?.prefix, "/ringroute/shop/");
  t.throws(() => loadConfig(["--config", path], { env: {} }), { message: /membership\.etcd\.password/ });
  await rm(dir, { recursive: true });

  const existing = await objects(modes["etcd with TLS to the clients too"] as object);
  t.deepEqual(byKind(existing, "Secret"), [], "no Secret made when one exists");
  t.deepEqual(
    container(existing).env.find((e: K8sObject) => e.name === "RINGROUTE_ETCD_PASSWORD").valueFrom.secretKeyRef,
    { name: "etcd-auth", key: "etcd-password" },
  );
  const defaults = ringrouteYaml(existing);
  t.is((defaults.membership as { etcd: { handoff: string } }).etcd.handoff, "coordinated", "coordinated by default");
  t.truthy(defaults.tls, "TLS to clients composes with etcd");
});

test("a PodDisruptionBudget by default whenever more than one pod runs, none for a single pod", async (t) => {
  t.is(one(await objects(), "PodDisruptionBudget").spec.minAvailable, 1, "replicaCount 2 by default");
  t.deepEqual(byKind(await objects({ replicaCount: 1 }), "PodDisruptionBudget"), []);
  const scaled = await objects({ replicaCount: 1, autoscaling: { enabled: true } });
  t.is(byKind(scaled, "PodDisruptionBudget").length, 1, "autoscaling runs two or more");
  t.deepEqual(byKind(await objects({ podDisruptionBudget: { enabled: false } }), "PodDisruptionBudget"), []);
});

test("pods spread over nodes by default (soft anti-affinity); hard, none, or an own affinity instead", async (t) => {
  const spec = async (values: object) => one(await objects(values), "Deployment").spec.template.spec;
  const pod = await spec({});
  const preferred = pod.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution;
  t.is(preferred.length, 1);
  t.is(preferred[0].podAffinityTerm.topologyKey, "kubernetes.io/hostname");
  t.true(
    selects(
      preferred[0].podAffinityTerm.labelSelector.matchLabels,
      pod.metadata?.labels ?? (await objects()).find((d) => d.kind === "Deployment").spec.template.metadata.labels,
    ),
  );
  const hard = (await spec({ podAntiAffinity: "hard" })).affinity.podAntiAffinity;
  t.is(hard.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey, "kubernetes.io/hostname");
  t.is((await spec({ podAntiAffinity: "none" })).affinity, undefined);
  const own = { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [] } } };
  t.deepEqual((await spec({ affinity: own })).affinity, own);
});

test("the chart places partitions with balanced by default, and passes workers, readiness, log and access settings", async (t) => {
  const config = ringrouteYaml(
    await objects({
      config: {
        workers: "auto",
        readiness: { sourceDown: "unready" },
        log: { level: "debug" },
        access: { log: false, sample: 0.5 },
      },
    }),
  );
  const parsed = parseConfig(config);
  t.is(parsed.ring.placement, "balanced");
  t.is(parsed.workers, "auto");
  t.is(parsed.readiness.sourceDown, "unready");
  t.deepEqual(parsed.log, { level: "debug", format: "json" });
  t.deepEqual(parsed.access, { log: false, sample: 0.5 });
});

test("the PrometheusRule and the dashboard ConfigMap carry monitoring/'s files, only when enabled", async (t) => {
  t.deepEqual(
    byKind(await objects(), "PrometheusRule").concat(
      byKind(await objects(), "ConfigMap").filter((c) => c.data["ringroute.json"]),
    ),
    [],
  );
  const docs = await objects({
    monitoring: {
      rules: { enabled: true, labels: { release: "prometheus" } },
      dashboard: { enabled: true, namespace: "grafana" },
    },
  });
  checkKubernetes(t, docs);
  const rule = one(docs, "PrometheusRule");
  t.is(rule.metadata.labels.release, "prometheus");
  const rules = parseYaml(await readFile(join(repo, "monitoring/ringroute-alerts.yaml"), "utf8"));
  t.deepEqual(rule.spec, rules, "the same groups and rules, runbooks and templates untouched");
  const dashboard = byKind(docs, "ConfigMap").find((c) => c.data["ringroute.json"] !== undefined);
  t.is(dashboard.metadata.namespace, "grafana");
  t.is(dashboard.metadata.labels.grafana_dashboard, "1");
  t.deepEqual(
    JSON.parse(dashboard.data["ringroute.json"]),
    JSON.parse(await readFile(join(repo, "monitoring/ringroute-dashboard.json"), "utf8")),
  );
});

/**
 * ringroute's own config fields, found by asking its parser: a field nobody
 * knows draws "unknown field (expected one of …)" for each mapping.
 */
function configFields(): string[] {
  const probe = "__probe__";
  const fieldsOf = (path: string[]): string[] | undefined => {
    const raw: Record<string, unknown> = {};
    let at = raw;
    for (const part of path) at = at[part] = {} as Record<string, unknown>;
    at[probe] = 1;
    // Health checks sit beside a source; the parser wants the source first.
    if (path[0] === "membership" && path[1] === "health") (raw.membership as Record<string, unknown>).serf = null;
    try {
      parseConfig(raw);
    } catch (error) {
      const expected = /unknown field \(expected (?:one of )?(.*)\)$/.exec((error as Error).message);
      if (expected && (error as { field?: string }).field === [...path, probe].join(".")) {
        return (expected[1] as string).split(", ");
      }
    }
    return undefined;
  };
  const leaves: string[] = [];
  const walk = (path: string[]) => {
    const fields = fieldsOf(path);
    if (fields === undefined) {
      leaves.push(path.join("."));
      return;
    }
    for (const field of fields) walk([...path, field]);
  };
  for (const field of fieldsOf([]) ?? []) {
    if (field === "membership") {
      // One source at a time: each is probed on its own, health beside it.
      for (const source of [...membershipSourceKinds, "health"]) walk(["membership", source]);
    } else walk([field]);
  }
  return leaves;
}

/** Config fields the chart sets itself or leaves out on purpose, each with why. */
const notExposed: Record<string, string> = {
  listen: "the chart binds 0.0.0.0:ports.proxy",
  admin: "the chart binds 0.0.0.0:ports.admin so the kubelet can probe it",
  "tls.cert": "from tls.secretName",
  "tls.key": "from tls.secretName",
  "tls.ca": "from tls.secretName with tls.ca",
  "membership.dns.name": "built from membership.dns.service, namespace, portName (or membership.dns.name)",
  "membership.dns.protocol":
    "from membership.dns.memberProtocol (the chart's membership.dns.protocol is the SRV name's tcp/udp)",
  "membership.file.path": "the mounted ConfigMap's key, membership.file.key",
  "membership.serf.authKey": "from a Secret as RINGROUTE_SERF_AUTH_KEY (membership.serf.authKey, existingSecret)",
  "membership.etcd.password": "from a Secret as RINGROUTE_ETCD_PASSWORD (membership.etcd.password, existingSecret)",
  "membership.etcd.tls.ca": "from membership.etcd.tls.secretName with tls.ca",
  "membership.etcd.tls.cert": "from membership.etcd.tls.secretName with tls.clientCert",
  "membership.etcd.tls.key": "from membership.etcd.tls.secretName with tls.clientCert",
};

/** Where a config field lives in the chart's values. */
function valuesPath(field: string): string[] {
  const path = field.split(".");
  return path[0] === "membership" ? path : ["config", ...path];
}

test("every field of ringroute's config schema is accepted by values.schema.json, or listed as set by the chart", async (t) => {
  const schema = JSON.parse(await readFile(join(chart, "values.schema.json"), "utf8")) as Schema;
  const fields = configFields();
  // The probe finds what the parser knows: fields other issues add show up here by themselves.
  for (const known of [
    "ring.partitions",
    "proxy.retry.on",
    "membership.etcd.handoff",
    "membership.health.rise",
    "workers",
  ]) {
    t.true(fields.includes(known), `probe finds ${known}`);
  }
  const missing: string[] = [];
  for (const field of fields) {
    if (field in notExposed) continue;
    let node: Schema | undefined = schema;
    for (const part of valuesPath(field)) node = node?.properties?.[part];
    if (node === undefined) missing.push(field);
  }
  t.deepEqual(missing, [], "add them to values.schema.json (and the templates), or to notExposed with a reason");
  for (const field of Object.keys(notExposed)) t.true(fields.includes(field), `${field} is still a config field`);
});

test("members declare their protocol in every source the chart writes, and ringroute reads it back", async (t) => {
  const members = [
    { name: "web-0", url: "http://web-0.web:8080" },
    { name: "grpc-0", url: "http://grpc-0.grpc:50051", protocol: "h2c" },
  ];
  const staticConfig = parseConfig(
    ringrouteYaml(await objects({ membership: { source: "static", static: { members } } })),
  );
  t.deepEqual(
    staticConfig.membership?.static?.members.map((m) => [m.name, m.protocol]),
    [
      ["web-0", undefined],
      ["grpc-0", "h2c"],
    ],
  );

  // Lines cannot carry a protocol: the members file becomes a YAML list, which the file source reads.
  const docs = await objects({ membership: { source: "file", file: { members } } });
  const file = byKind(docs, "ConfigMap").find((c) => c.data["members.txt"] !== undefined);
  t.deepEqual(
    parseMembersFile(file.data["members.txt"], "members.txt").map((m) => [m.name, m.url, m.protocol]),
    [
      ["web-0", "http://web-0.web:8080", undefined],
      ["grpc-0", "http://grpc-0.grpc:50051", "h2c"],
    ],
  );

  // One protocol for a whole source: the chart's dns.protocol stays the SRV name's tcp.
  const dns = ringrouteYaml(await objects({ membership: { dns: { memberProtocol: "h2c" } } }));
  t.like(dns.membership, { dns: { name: "_http._tcp.backend.shop.svc.cluster.local", protocol: "h2c" } });
  t.is(parseConfig(dns).membership?.dns?.protocol, "h2c");
  const serf = ringrouteYaml(await objects({ membership: { source: "serf", serf: { protocol: "h2c" } } }));
  t.is(parseConfig(serf).membership?.serf?.protocol, "h2c");

  // HTTP/2 on the proxy port: on by default, off when asked.
  t.is(ringrouteYaml(await objects()).http2, true);
  t.false(parseConfig(ringrouteYaml(await objects({ config: { http2: false } }))).http2);
});
