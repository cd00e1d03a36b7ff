import { type FSWatcher, watch } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { basename, dirname, extname } from "node:path";
import { parse as parseYaml } from "yaml";
import { ConfigError } from "../errors/config-error.ts";
import { SourceError } from "../errors/source-error.ts";
import { type Clock, systemClock } from "../utils/clock.ts";
import { memberNames, tags } from "../utils/fields.ts";
import { type Logger, silentLogger } from "../utils/logger.ts";
import { yamlProblem } from "../utils/yaml-problem.ts";
import {
  type FileStamp,
  initialSettle,
  nextSettle,
  type SettleEvent,
  type SettleState,
  startSettle,
} from "./file-settle.ts";
import { memberUrl } from "./member-url.ts";
import { memberProtocol, withProtocol } from "./protocol.ts";
import type { Member, MembershipSource, SnapshotSink } from "./source.ts";

export interface FileSourceOptions {
  /** The members file: YAML, JSON, or one `name url` a line. */
  path: string;
  /**
   * Milliseconds between stat() checks of the file. fs.watch catches most
   * changes at once; polling catches the rest (network filesystems, some
   * container mounts, a watcher that died), so a change applies within
   * `pollInterval + settle` even without events.
   */
  pollInterval?: number;
  /**
   * Milliseconds the file must stand still (same size and mtime across two
   * looks this far apart) before a change is read: a file written in pieces
   * is never applied half-written. Default 200.
   */
  settle?: number;
  /** Use fs.watch besides polling (default true); false polls only. */
  watch?: boolean;
  /** Runs the poll and settle timers; default the system clock. */
  clock?: Clock;
  /** Debug entries for each change noticed and read. Default: silent. */
  logger?: Logger;
}

/** Default `membership.file.settle`, in milliseconds. */
export const defaultFileSettle = 200;

/**
 * Members from a file that is watched for changes. A change is read once
 * the file has been still for `settle` ms (./file-settle.ts) and applied
 * only if it parses completely. A file that cannot be read or parsed (or
 * lists nobody) keeps the last good view: the source reports down and
 * applies the next good version.
 */
export class FileSource implements MembershipSource {
  readonly kind = "file";
  readonly path: string;
  readonly #pollInterval: number;
  readonly #settle: number;
  readonly #useWatch: boolean;
  readonly #clock: Clock;
  readonly #logger: Logger;
  #sink: SnapshotSink | undefined;
  #watcher: FSWatcher | undefined;
  #cancelPoll: (() => void) | undefined;
  #cancelSettle: (() => void) | undefined;
  #state: SettleState = initialSettle;
  /** I/O in flight (a stat or a read), so stop() can wait for it. */
  #busy = new Set<Promise<void>>();
  #statting = false;
  #statAgain = false;
  /** What was last acted on (text, or the error message), so nothing is applied or reported twice. */
  #lastOutcome: string | undefined;
  #stopped = true;

  constructor(options: FileSourceOptions) {
    this.path = options.path;
    this.#pollInterval = options.pollInterval ?? 500;
    this.#settle = options.settle ?? defaultFileSettle;
    this.#useWatch = options.watch ?? true;
    this.#clock = options.clock ?? systemClock;
    this.#logger = options.logger ?? silentLogger;
  }

  /** Reads the file as it is now and resolves once that version is reported (or found unusable). */
  async start(sink: SnapshotSink): Promise<void> {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#sink = sink;
    this.#lastOutcome = undefined; // a new start reports the file even if it is unchanged
    // Watch the directory, not the file: editors and config tools replace a
    // file by renaming a new one over it, which a watch on the file misses.
    try {
      if (!this.#useWatch) throw new Error("polling only");
      this.#watcher = watch(dirname(this.path), { persistent: false }, (_event, filename) => {
        if (filename === null || filename.toString() === basename(this.path)) this.#feed({ type: "look" });
      });
      this.#watcher.on("error", (error) => {
        this.#logger.debug({ path: this.path, err: error }, "fs.watch failed; polling alone");
        this.#watcher?.close();
        this.#watcher = undefined;
      });
    } catch {
      this.#watcher = undefined;
    }
    this.#schedulePoll();
    const { state } = startSettle();
    this.#state = state;
    await this.#track(this.#read());
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#watcher?.close();
    this.#watcher = undefined;
    this.#cancelPoll?.();
    this.#cancelSettle?.();
    this.#cancelPoll = undefined;
    this.#cancelSettle = undefined;
    await Promise.all(this.#busy);
    this.#state = initialSettle;
  }

  #schedulePoll(): void {
    this.#cancelPoll = this.#clock.setTimer(() => {
      if (this.#stopped) return;
      this.#schedulePoll();
      this.#feed({ type: "look" });
    }, this.#pollInterval);
  }

  /** Feeds one event to the settle rule and carries out what it asks. */
  #feed(event: SettleEvent, use?: () => void): void {
    if (this.#stopped) return;
    const { state, actions } = nextSettle(this.#state, event, this.#clock.now(), this.#settle);
    this.#state = state;
    for (const action of actions) {
      if (action.type === "stat") this.#stat();
      else if (action.type === "schedule") {
        this.#cancelSettle?.();
        this.#logger.debug(
          { path: this.path, stamp: state.candidate?.stamp, wait: action.delay },
          "members file changed; waiting for it to settle",
        );
        this.#cancelSettle = this.#clock.setTimer(() => {
          this.#cancelSettle = undefined;
          this.#feed({ type: "due" });
        }, action.delay);
      } else if (action.type === "read") void this.#track(this.#read());
      else {
        this.#logger.debug({ path: this.path, stamp: state.done }, "members file read whole");
        use?.();
      }
    }
  }

  /** One stat at a time; a look asked for meanwhile is made right after. */
  #stat(): void {
    if (this.#statting) {
      this.#statAgain = true;
      return;
    }
    this.#statting = true;
    void this.#track(
      (async () => {
        do {
          this.#statAgain = false;
          const stamp = await this.#stamp();
          this.#logger.trace({ path: this.path, stamp }, "members file looked at");
          this.#feed({ type: "stamp", stamp });
        } while (this.#statAgain && !this.#stopped);
        this.#statting = false;
      })(),
    );
  }

  /** Reads the file between two stamps; the rule decides whether the content can be used. */
  async #read(): Promise<void> {
    const before = await this.#stamp();
    let text: string | undefined;
    let failure: SourceError | undefined;
    try {
      text = await readFile(this.path, "utf8");
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
      failure = new SourceError("file", `${this.path}: cannot read (${code})`, { cause: error });
    }
    const after = await this.#stamp();
    this.#feed({ type: "read", before, after }, () => {
      if (failure !== undefined) this.#fail(failure);
      else this.#use(text as string);
    });
  }

  #use(text: string): void {
    if (text === this.#lastOutcome) return;
    let members: Member[];
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
    const outcome = `error:${error.message}:${text ?? ""}`;
    if (outcome === this.#lastOutcome) return;
    this.#lastOutcome = outcome;
    this.#sink?.down(error);
  }

  async #stamp(): Promise<FileStamp> {
    try {
      const s = await stat(this.path);
      return `${s.ino}/${s.size}/${s.mtimeMs}`;
    } catch (error) {
      return `missing/${(error as NodeJS.ErrnoException).code ?? "?"}`;
    }
  }

  #track(work: Promise<void>): Promise<void> {
    this.#busy.add(work);
    return work.finally(() => this.#busy.delete(work));
  }
}

/**
 * Parses a members file. `.json` is JSON, `.yaml`/`.yml` YAML, anything
 * else YAML if it holds a list or mapping and `name url` lines otherwise.
 * Structured files hold a list of `{name, url, tags?, protocol?}`, bare or under
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
        throw new ConfigError(path, `not valid YAML (${yamlProblem(error, text)})`);
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
    const { name, url, tags: raw, protocol } = entry as Record<string, unknown>;
    const member = checkedMember(field, name, url, raw, ".");
    return protocol === undefined ? member : withProtocol(member, memberProtocol(protocol, `${field}.protocol`));
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
  return {
    name,
    url: memberUrl(url, `${field}${dot}url`),
    tags: tags(raw ?? {}, `${field}${dot}tags`),
    state: "alive",
  };
}
