/**
 * A real gRPC service for the tests, with @grpc/grpc-js on both sides and no
 * protobuf: messages are JSON, serialised by hand. Every member answers with
 * its name (and the x-tenant it was sent), so a test can tell who served a
 * call; each member records the calls it saw.
 *
 * Run as a script (`node --import tsx test/helpers/grpc.ts NAME`) it is a
 * member in its own process, for tests that kill one: it prints
 * `listening PORT`, then one JSON line per call it receives.
 */
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";

// biome-ignore lint/suspicious/noExplicitAny: JSON messages of any shape
export type Message = Record<string, any>;

const json = {
  serialize: (value: Message) => Buffer.from(JSON.stringify(value)),
  deserialize: (bytes: Buffer): Message => JSON.parse(bytes.toString("utf8")),
};

function method(name: string, requestStream: boolean, responseStream: boolean) {
  return {
    path: `/ringroute.test.Echo/${name}`,
    requestStream,
    responseStream,
    requestSerialize: json.serialize,
    requestDeserialize: json.deserialize,
    responseSerialize: json.serialize,
    responseDeserialize: json.deserialize,
  };
}

/** The service: Who, Put and Late (unary), Count (server streaming), Chat (bidi), Slow (unary, answers after `ms`). */
export const echoService = {
  who: method("Who", false, false),
  put: method("Put", false, false),
  late: method("Late", false, false),
  count: method("Count", false, true),
  chat: method("Chat", true, true),
  slow: method("Slow", false, false),
} satisfies grpc.ServiceDefinition;

export const EchoClient = grpc.makeGenericClientConstructor(echoService, "Echo");
export type EchoClient = InstanceType<typeof EchoClient>;

/** One call as a member saw it. */
export interface SeenCall {
  path: string;
  tenant: string;
}

export interface EchoMember {
  name: string;
  port: number;
  url: string;
  seen: SeenCall[];
  /** Calls the member saw cancelled (by the client, the proxy or a deadline). */
  cancelled: SeenCall[];
  stop(): Promise<void>;
}

/** Starts a grpc-js member answering as `name` on a loopback port. */
export async function startEchoMember(name: string, port = 0, log?: (line: string) => void): Promise<EchoMember> {
  const server = new grpc.Server();
  const seen: SeenCall[] = [];
  const cancelled: SeenCall[] = [];
  const record = (path: string, metadata: grpc.Metadata): SeenCall => {
    const call = { path, tenant: String(metadata.get("x-tenant")[0] ?? "") };
    seen.push(call);
    log?.(JSON.stringify({ call: path, tenant: call.tenant }));
    return call;
  };
  server.addService(echoService, {
    who(call: grpc.ServerUnaryCall<Message, Message>, done: grpc.sendUnaryData<Message>) {
      const c = record(echoService.who.path, call.metadata);
      done(null, { member: name, tenant: c.tenant, echo: call.request.text });
    },
    put(call: grpc.ServerUnaryCall<Message, Message>, done: grpc.sendUnaryData<Message>) {
      const c = record(echoService.put.path, call.metadata);
      done(null, { member: name, tenant: c.tenant });
    },
    late(call: grpc.ServerUnaryCall<Message, Message>, done: grpc.sendUnaryData<Message>) {
      const c = record(echoService.late.path, call.metadata);
      done(null, { member: name, tenant: c.tenant });
    },
    count(call: grpc.ServerWritableStream<Message, Message>) {
      const c = record(echoService.count.path, call.metadata);
      const n = Number(call.request.n ?? 3);
      const every = Number(call.request.every ?? 0);
      let i = 0;
      const next = () => {
        if (call.cancelled) return;
        if (i === n) {
          call.end();
          return;
        }
        call.write({ member: name, tenant: c.tenant, i: i++ });
        if (every > 0) setTimeout(next, every);
        else next();
      };
      next();
    },
    chat(call: grpc.ServerDuplexStream<Message, Message>) {
      const c = record(echoService.chat.path, call.metadata);
      call.on("data", (message: Message) => call.write({ member: name, tenant: c.tenant, echo: message.text }));
      call.on("end", () => call.end());
    },
    slow(call: grpc.ServerUnaryCall<Message, Message>, done: grpc.sendUnaryData<Message>) {
      const c = record(echoService.slow.path, call.metadata);
      const timer = setTimeout(() => done(null, { member: name }), Number(call.request.ms ?? 60_000));
      call.on("cancelled", () => {
        clearTimeout(timer);
        cancelled.push(c);
        log?.(JSON.stringify({ cancelled: c.path, tenant: c.tenant }));
      });
    },
  });
  const bound = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (error, p) =>
      error ? reject(error) : resolve(p),
    ),
  );
  return {
    name,
    port: bound,
    url: `http://127.0.0.1:${bound}`,
    seen,
    cancelled,
    stop: () =>
      new Promise<void>((resolve) => {
        server.forceShutdown();
        resolve();
      }),
  };
}

/** Metadata with the tenant key the proxy routes by. */
export function tenant(key: string): grpc.Metadata {
  const metadata = new grpc.Metadata();
  metadata.set("x-tenant", key);
  return metadata;
}

/** A unary call as a promise: the reply, or the gRPC error (with its `code`). */
export function unary(
  client: EchoClient,
  name: "who" | "put" | "late" | "slow",
  request: Message,
  metadata: grpc.Metadata,
  options: grpc.CallOptions = {},
): Promise<Message> {
  return new Promise((resolve, reject) => {
    const fn = client[name] as unknown as (
      request: Message,
      metadata: grpc.Metadata,
      options: grpc.CallOptions,
      done: (error: grpc.ServiceError | null, reply?: Message) => void,
    ) => void;
    fn.call(client, request, metadata, options, (error, reply) => (error ? reject(error) : resolve(reply as Message)));
  });
}

/** A Count call (server streaming). */
export function countStream(
  client: EchoClient,
  request: Message,
  metadata: grpc.Metadata,
): grpc.ClientReadableStream<Message> {
  const fn = client.count as unknown as (r: Message, m: grpc.Metadata) => grpc.ClientReadableStream<Message>;
  return fn.call(client, request, metadata);
}

/** A Chat call (bidi streaming). */
export function chatStream(client: EchoClient, metadata: grpc.Metadata): grpc.ClientDuplexStream<Message, Message> {
  const fn = client.chat as unknown as (m: grpc.Metadata) => grpc.ClientDuplexStream<Message, Message>;
  return fn.call(client, metadata);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const name = process.argv[2] ?? "member";
  const member = await startEchoMember(name, 0, (line) => process.stdout.write(`${line}\n`));
  process.stdout.write(`listening ${member.port}\n`);
}
