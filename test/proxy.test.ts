import test from "ava";
import { Ring } from "../src/ring/ring.ts";
import { send, startProxy } from "./helpers/backends.ts";
import { ringroute } from "./helpers/cli.ts";

const names = ["alpha", "bravo", "charlie"];

test("requests with the same key reach the member `ringroute lookup` names as owner", async (t) => {
  const h = await startProxy(names);
  t.teardown(() => h.close());
  const keys = [...Array.from({ length: 30 }, (_, i) => `/users/${i}`), "/ключ/1", "/a b", "/"];
  const run = await ringroute(["lookup", "--members", names.join(","), "--", ...keys]);
  t.is(run.code, 0, run.stderr);
  const owners = run.stdout
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line).owners[0]);
  for (const [i, key] of keys.entries()) {
    // Twice each: affinity, not luck. The client sends the path percent-encoded; the key is the decoded path.
    for (let n = 0; n < 2; n++) {
      const reply = await send(h.url, `${encodeURI(key)}?n=${n}`);
      t.is(reply.status, 200);
      t.is(reply.json.backend, owners[i], key);
      t.is(reply.json.url, `${encodeURI(key)}?n=${n}`, "the member gets the path and query unchanged");
    }
  }
});

test("header, query, cookie and regex keys route like Ring.partitionOf of the extracted value", async (t) => {
  const ring = Ring.build(names);
  const cases: { from: string; request: (key: string) => [string, Record<string, string>] }[] = [
    { from: "header:X-Tenant", request: (key) => ["/any", { "x-tenant": key }] },
    { from: "query:user", request: (key) => [`/any?x=1&user=${encodeURIComponent(key)}&user=zzz`, {}] },
    { from: "cookie:sid", request: (key) => ["/any", { cookie: `other=1; sid="${key}"; sid=zzz` }] },
    { from: "regex:^/users/([^/]+)", request: (key) => [`/users/${encodeURIComponent(key)}/orders`, {}] },
  ];
  for (const c of cases) {
    const h = await startProxy(names, { key: { from: c.from } });
    try {
      for (let i = 0; i < 12; i++) {
        const key = `tenant-${i}`;
        const [path, headers] = c.request(key);
        const reply = await send(h.url, path, { headers });
        t.is(reply.status, 200, `${c.from}: ${reply.text}`);
        t.is(reply.json.backend, ring.ownerOf(key), `${c.from} ${key}`);
      }
    } finally {
      await h.close();
    }
  }
});

test("a UTF-8 header key hashes as its UTF-8 text, like Go, not as Node's latin1 reading", async (t) => {
  const h = await startProxy(names, { key: { from: "header:x-user" }, ring: { partitions: 4096 } });
  t.teardown(() => h.close());
  const ring = Ring.build(names, { partitions: 4096 });
  const keys = ["Zoë", "ключ-1", "東京", "🔑key"].filter(
    (key) => ring.partitionOf(key) !== ring.partitionOf(Buffer.from(key, "utf8").toString("latin1")),
  );
  t.true(keys.length > 0, "at least one key whose latin1 misreading lands elsewhere");
  for (const key of keys) {
    // Header values travel as raw UTF-8 bytes: Node's client writes latin1 strings byte for byte.
    const reply = await send(h.url, "/", { headers: { "x-user": Buffer.from(key, "utf8").toString("latin1") } });
    t.is(reply.json.backend, ring.ownerOf(key), key);
  }
});

test("a request without its key gets 400 with a JSON body saying where the key was looked for", async (t) => {
  const h = await startProxy(names, { key: { from: "header:x-tenant" } });
  t.teardown(() => h.close());
  const reply = await send(h.url, "/orders");
  t.is(reply.status, 400);
  t.regex(String(reply.headers["content-type"]), /application\/json/);
  t.is(reply.json.error, "missing_key");
  t.regex(reply.json.message, /header "x-tenant"/);
  t.deepEqual(reply.json.key.from, "header:x-tenant");
  t.is(
    h.backends.reduce((n, b) => n + b.seen.length, 0),
    0,
    "no member saw the request",
  );
});

test("with key.missing: any, a request without its key goes to some live member", async (t) => {
  const h = await startProxy(names, { key: { from: "query:user", missing: "any" } });
  t.teardown(() => h.close());
  const served = new Set<string>();
  for (let i = 0; i < 6; i++) {
    const reply = await send(h.url, "/no-key");
    t.is(reply.status, 200);
    served.add(reply.json.backend);
  }
  t.true([...served].every((name) => names.includes(name)));
});

test("keys longer than key.maxLength get 414 in the URL and 431 in a header, as JSON", async (t) => {
  const path = await startProxy(names, { key: { maxLength: 64 } });
  t.teardown(() => path.close());
  const long = await send(path.url, `/${"x".repeat(100)}`);
  t.is(long.status, 414);
  t.is(long.json.error, "key_too_long");
  t.is((await send(path.url, `/${"x".repeat(50)}`)).status, 200, "a key within the limit is routed");

  const header = await startProxy(names, { key: { from: "header:x-user", maxLength: 16 } });
  t.teardown(() => header.close());
  const tooLong = await send(header.url, "/", { headers: { "x-user": "u".repeat(17) } });
  t.is(tooLong.status, 431);
  t.is(tooLong.json.error, "key_too_long");
});

test("a path with malformed percent-encoding gets 400, as Go's server would refuse it", async (t) => {
  const h = await startProxy(names);
  t.teardown(() => h.close());
  for (const bad of ["/a%zz", "/a%", "/%ff%fe"]) {
    const reply = await send(h.url, bad);
    t.is(reply.status, 400, bad);
    t.is(reply.json.error, "malformed_key");
  }
});

test("neither the Host header nor an absolute-form target chooses the upstream", async (t) => {
  const h = await startProxy(names);
  t.teardown(() => h.close());
  const ring = Ring.build(names);
  const reply = await send(h.url, "http://169.254.169.254/latest/meta-data?x=1", {
    headers: { host: "169.254.169.254" },
  });
  t.is(reply.status, 200);
  t.is(reply.json.backend, ring.ownerOf("/latest/meta-data"), "routed by the path, to a ring member");
  t.is(reply.json.url, "/latest/meta-data?x=1", "the member gets an origin-form target");
  const hosted = await send(h.url, "/users/7", { headers: { host: "evil.example:1" } });
  t.is(hosted.json.backend, ring.ownerOf("/users/7"));
  t.is(hosted.json.headers.host, "evil.example:1", "Host is passed on for the member's virtual hosts");
});

test("hop-by-hop headers are stripped both ways and X-Forwarded-* are added", async (t) => {
  const h = await startProxy(names);
  t.teardown(() => h.close());
  for (const b of h.backends) {
    b.handler = (req, res) => {
      const body = JSON.stringify({ headers: req.headers });
      res.writeHead(200, [
        "content-type",
        "application/json",
        "content-length",
        String(Buffer.byteLength(body)),
        "connection",
        "x-hop-response",
        "x-hop-response",
        "secret",
        "keep-alive",
        "timeout=99",
        "x-end-to-end",
        "kept",
      ]);
      res.end(body);
    };
  }
  const reply = await send(h.url, "/users/1", {
    headers: {
      connection: "keep-alive, x-hop-request",
      "x-hop-request": "secret",
      "keep-alive": "timeout=5",
      te: "trailers",
      "proxy-authorization": "Basic Zm9vOmJhcg==",
      "x-forwarded-for": "203.0.113.9",
      "x-forwarded-host": "spoofed.example",
      "x-end-to-end": "kept",
      host: "shop.example",
    },
  });
  t.is(reply.status, 200);
  const seen = reply.json.headers;
  for (const name of ["x-hop-request", "keep-alive", "te", "proxy-authorization"]) t.is(seen[name], undefined, name);
  t.not(seen.connection, "keep-alive, x-hop-request");
  t.is(seen["x-end-to-end"], "kept");
  t.is(seen["x-forwarded-for"], "203.0.113.9, 127.0.0.1", "the client's hop is appended");
  t.is(seen["x-forwarded-proto"], "http");
  t.is(seen["x-forwarded-host"], "shop.example", "this hop's Host, not the client's claim");
  t.is(reply.headers["x-hop-response"], undefined);
  t.not(reply.headers["keep-alive"], "timeout=99");
  t.is(reply.headers["x-end-to-end"], "kept");
});

test("x-ringroute-partition and x-ringroute-member are added when headers.ringInfo is on", async (t) => {
  const h = await startProxy(names, { proxy: (c) => (c.headers.ringInfo = true) });
  t.teardown(() => h.close());
  const ring = Ring.build(names);
  const reply = await send(h.url, "/carts/9");
  t.is(reply.headers["x-ringroute-partition"], String(ring.partitionOf("/carts/9")));
  t.is(reply.headers["x-ringroute-member"], ring.ownerOf("/carts/9"));
  t.is(reply.json.backend, ring.ownerOf("/carts/9"));
});

test("request and response bodies stream through whole, chunked or sized", async (t) => {
  const h = await startProxy(names);
  t.teardown(() => h.close());
  const body = Buffer.alloc(3 * 1024 * 1024, 7);
  const sized = await send(h.url, "/upload/1", {
    method: "POST",
    body,
    headers: { "content-length": String(body.length) },
  });
  t.is(sized.status, 200);
  t.is(sized.json.bodyLength, body.length);
  const chunked = await send(h.url, "/upload/2", { method: "PUT", body, headers: { "transfer-encoding": "chunked" } });
  t.is(chunked.json.bodyLength, body.length);
  for (const b of h.backends) {
    b.handler = (_req, res) => {
      res.writeHead(200, { "content-type": "application/octet-stream" });
      let left = 64;
      const next = () => {
        if (left-- === 0) return res.end();
        if (res.write(Buffer.alloc(64 * 1024, 1))) setImmediate(next);
        else res.once("drain", next);
      };
      next();
    };
  }
  const big = await send(h.url, "/download");
  t.is(big.status, 200);
  t.is(Buffer.byteLength(big.text, "utf8"), 64 * 64 * 1024);
});
