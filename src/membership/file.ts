import { type FSWatcher, watch } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { basename, dirname, extname } from "node:path";
import { parse as parseYaml } from "yaml";
import { ConfigError } from "../errors/config-error.ts";
import { httpUrl, memberNames, tags } from "../utils/fields.ts";
import type { Member, MembershipSource, SnapshotSink } from "./source.ts";

export interface FileSourceOptions {
  /** The members file: YAML, JSON, or one `name url` a line. */
  path: string;
  /**
   * Milliseconds between stat() checks of the file. fs.watch catches most
   * changes at once; polling catches the rest (network filesystems, some
   * container mounts, a watcher that died), so a change applies within
   * `pollInterval + debounce` even without events.
   */
  pollInterval?: number;
  /** Milliseconds to wait after a change before reading, so a burst of writes is read once. */
  debounce?: number;
  /** Use fs.watch besides polling (default true); false polls only. */
  watch?: boolean;
  /** One line per file version that cannot be used. */
  log?: (line: string) => void;
}

/**
 * Members from a file that is watched for changes. A file that cannot be
 * read or parsed (or lists nobody: most likely caught mid-write) keeps the
 * last good view: the source reports down, logs one line, and applies the
 * next good version.
 */
export class FileSource implements MembershipSource {
  readonly kind = "file";
  readonly path: string;
  readonly #pollInterval: number;
  readonly #debounce: number;
  readonly #useWatch: boolean;
  readonly #log: (line: string) => void;
  #sink: SnapshotSink | undefined;
  #watcher: FSWatcher | undefined;
  #poll: NodeJS.Timeout | undefined;
  #pending: NodeJS.Timeout | undefined;
  #reading: Promise<void> | undefined;
  #again = false;
  /** Identity of the file at the last read; polling rereads when it changes. */
  #statKey = "";
  /** What was last acted on (text, or the error message), so nothing is applied or logged twice. */
  #lastOutcome: string | undefined;
  #stopped = true;

  constructor(options: FileSourceOptions) {
    this.path = options.path;
    this.#pollInterval = options.pollInterval ?? 500;
    this.#debounce = options.debounce ?? 50;
    this.#useWatch = options.watch ?? true;
    this.#log = options.log ?? ((line) => process.stderr.write(`${line}\n`));
  }

  async start(sink: SnapshotSink): Promise<void> {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#sink = sink;
    // Watch the directory, not the file: editors and config tools replace a
    // file by renaming a new one over it, which a watch on the file misses.
    try {
      if (!this.#useWatch) throw new Error("polling only");
      this.#watcher = watch(dirname(this.path), { persistent: false }, (_event, filename) => {
        if (filename === null || filename.toString() === basename(this.path)) this.#schedule();
      });
      this.#watcher.on("error", () => {
        this.#watcher?.close();
        this.#watcher = undefined; // polling carries on alone
      });
    } catch {
      this.#watcher = undefined;
    }
    this.#poll = setInterval(() => void this.#pollOnce(), this.#pollInterval);
    await this.#read();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#watcher?.close();
    this.#watcher = undefined;
    if (this.#poll) clearInterval(this.#poll);
    if (this.#pending) clearTimeout(this.#pending);
    this.#poll = undefined;
    this.#pending = undefined;
    await this.#reading;
  }

  #schedule(): void {
    if (this.#stopped) return;
    if (this.#pending) clearTimeout(this.#pending);
    this.#pending = setTimeout(() => {
      this.#pending = undefined;
      void this.#read();
    }, this.#debounce);
  }

  async #pollOnce(): Promise<void> {
    let key: string;
    try {
      const s = await stat(this.path);
      key = `${s.ino}/${s.size}/${s.mtimeMs}`;
    } catch (error) {
      key = `missing/${(error as NodeJS.ErrnoException).code}`;
    }
    if (key !== this.#statKey) this.#schedule();
  }

  /** Reads and applies the file; reads that overlap are folded into one more read. */
  #read(): Promise<void> {
    if (this.#reading) {
      this.#again = true;
      return this.#reading;
    }
    this.#reading = (async () => {
      do {
        this.#again = false;
        await this.#readOnce();
      } while (this.#again && !this.#stopped);
    })().finally(() => {
      this.#reading = undefined;
    });
    return this.#reading;
  }

  async #readOnce(): Promise<void> {
    let text: string;
    let members: Member[];
    try {
      const s = await stat(this.path);
      this.#statKey = `${s.ino}/${s.size}/${s.mtimeMs}`;
      text = await readFile(this.path, "utf8");
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
      this.#statKey = `missing/${code}`;
      this.#fail(new Error(`${this.path}: cannot read (${code})`));
      return;
    }
    if (this.#stopped || text === this.#lastOutcome) return;
    try {
      members = parseMembersFile(text, this.path);
    } catch (error) {
      this.#fail(error as Error, text);
      return;
    }
    this.#lastOutcome = text;
    this.#sink?.snapshot(members);
  }

  #fail(error: Error, text?: string): void {
    if (this.#stopped) return;
    const outcome = `error:${error.message}:${text ?? ""}`;
    if (outcome === this.#lastOutcome) return;
    this.#lastOutcome = outcome;
    this.#log(`ringroute: membership file ${error.message}; keeping the last good member list`);
    this.#sink?.down(error);
  }
}

/**
 * Parses a members file. `.json` is JSON, `.yaml`/`.yml` YAML, anything
 * else YAML if it holds a list or mapping and `name url` lines otherwise.
 * Structured files hold a list of `{name, url, tags?}`, bare or under
 * `members:`. Line files hold `name url` pairs; blank lines and lines
 * starting with `#` are ignored. Throws ConfigError naming `path` and the
 * entry or line at fault.
 */
export function parseMembersFile(text: string, path: string): Member[] {
  const ext = extname(path).toLowerCase();
  let data: unknown;
  if (ext === ".json") {
    try {
      data = JSON.parse(text);
    } catch (error) {
      throw new ConfigError(path, `not valid JSON (${(error as Error).message})`);
    }
  } else {
    try {
      data = parseYaml(text);
    } catch (error) {
      if (ext === ".yaml" || ext === ".yml") {
        throw new ConfigError(path, `not valid YAML (${firstLine((error as Error).message)})`);
      }
      data = undefined; // not YAML: try lines
    }
  }
  const members =
    typeof data === "object" && data !== null ? membersFromData(data, path) : membersFromLines(text, path);
  if (members.length === 0) throw new ConfigError(path, "lists no members");
  memberNames(
    members.map((m) => m.name),
    path,
  );
  return members;
}

function membersFromData(data: object, path: string): Member[] {
  const list = Array.isArray(data) ? data : (data as { members?: unknown }).members;
  const where = Array.isArray(data) ? "" : "members";
  if (!Array.isArray(list)) throw new ConfigError(path, "must be a list of {name, url} or have a members: list");
  return list.map((entry, i) => {
    const field = `${path}: ${where}[${i}]`;
    if (typeof entry !== "object" || entry === null) throw new ConfigError(field, "must be a mapping {name, url}");
    const { name, url, tags } = entry as Record<string, unknown>;
    return checkedMember(field, name, url, tags, ".");
  });
}

function membersFromLines(text: string, path: string): Member[] {
  const members: Member[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const fields = line.split(/\s+/);
    if (fields.length !== 2) {
      throw new ConfigError(`${path}:${i + 1}`, `expected "name url", got ${JSON.stringify(line)}`);
    }
    members.push(checkedMember(`${path}:${i + 1}`, fields[0], fields[1], undefined, " "));
  });
  return members;
}

/** `dot` joins entry and field: `m.yaml: members[0].url` in a mapping, `m.txt:3 url` on a line. */
function checkedMember(field: string, name: unknown, url: unknown, raw: unknown, dot: "." | " "): Member {
  if (typeof name !== "string" || name === "")
    throw new ConfigError(`${field}${dot}name`, "must be a non-empty string");
  return { name, url: httpUrl(url, `${field}${dot}url`), tags: tags(raw ?? {}, `${field}${dot}tags`), state: "alive" };
}

function firstLine(message: string): string {
  return message.split("\n")[0] ?? message;
}
