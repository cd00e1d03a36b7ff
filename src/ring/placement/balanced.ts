import { type BalanceFactor, defaultPlacementOptions, type Placement } from "./placement.ts";

/**
 * Balanced placement: rendezvous hashing with bounded loads, resolved as a
 * stable matching.
 *
 * Scores. As in rendezvous (highest random weight) hashing, every
 * (partition, member) pair gets a score that depends only on the member's name
 * and the partition number: David Thaler and Chinya Ravishankar, "A Name-Based
 * Mapping Scheme for Rendezvous" (1996). Here a member's scores are not
 * independent draws but a keyed shuffle of 0..P-1: the score of partition p on
 * member m is p's position in m's own pseudo-random permutation of the
 * partitions (a 4-round Feistel network keyed by the hash of m's name, cycle
 * walking into 0..P-1; Michael Luby and Charles Rackoff, "How to Construct
 * Pseudorandom Permutations from Pseudorandom Functions", 1988), with a
 * per-pair hash only to break ties between members. Each member then has
 * exactly one partition at each score, so the partitions that rank a member
 * first spread more evenly than with independent scores, and fewer of them
 * have to be turned away by a member at its cap.
 *
 * Matching. Every member has a capacity, and the table is the stable matching
 * of partitions to members found by deferred acceptance (David Gale and Lloyd
 * Shapley, "College Admissions and the Stability of Marriage", 1962): each
 * partition proposes to members from its highest score down; a full member
 * keeps the partitions it prefers and bounces the rest. A member prefers the
 * partitions that rank it higher (the place in the partition's list at which
 * it proposed), then those it scores higher. So a member at its cap keeps the
 * partitions for which it is the first choice and bounces one that is already
 * on a fallback, which ends bounce chains sooner than ranking by score alone;
 * measured at P = 2048 over n = 59..100, a random join or leave moves 12% fewer
 * primaries on average, and the spikes where the cap steps down are about a
 * fifth lower. Partition-proposing deferred acceptance gives the stable
 * matching that is best for every partition, which is the same whatever the
 * order of proposals, so the table depends only on the member names, never on
 * member indices or on which proxy computes it. That is the role bounded loads
 * play in Vahab Mirrokni, Mikkel Thorup and Morteza Zadimoghaddam, "Consistent
 * Hashing with Bounded Loads" (2018), but without a ring order: a joining
 * member takes partitions that rank it first, and a bounce only happens where
 * some member would exceed its cap.
 *
 * Capacity. Every member gets the largest the balance bound allows (see
 * `balanceCap`): slack is what ends bounce chains early. With little slack
 * (f = 1.05 at 20 partitions a member) every step of the integer cap forces
 * the members at the old cap to shed one partition each, whatever the
 * scheme, so movement there reaches several times the optimum; f = 1.25
 * keeps it near the optimum from about 20 partitions a member (README,
 * "placement: balanced"). Capacities that shrink smoothly with n (some
 * members one below the cap, so that the total spare never jumps where the
 * cap steps down) were measured with these scores: they lower the worst
 * transitions but raise the moves everywhere else by more. An assignment
 * auction (Dimitri Bertsekas, "The Auction Algorithm", 1988) maximising the
 * total score was also measured and moves more: its prices all shift on a
 * join and move partitions between members that kept their own.
 *
 * Replica ranks are matched one after another with the same capacity, each
 * partition skipping the members of its earlier ranks. Should a rank have no
 * complete matching under the cap (only when replicas is close to the member
 * count), that rank's cap is raised until it has.
 */
export const balanced: Placement = (members, partitions, replicas, options) => {
  const n = members.length;
  const table = new Uint32Array(partitions * replicas);
  if (partitions === 0 || replicas === 0) return table;
  if (replicas > n) throw new RangeError(`${replicas} replicas need at least as many members, got ${n}`);

  const seedHi = new Int32Array(n);
  const seedLo = new Int32Array(n);
  for (let m = 0; m < n; m++) {
    const [hi, lo] = nameHash(members[m] as string);
    seedHi[m] = hi;
    seedLo[m] = lo;
  }
  const prefs = new Preferences(seedHi, seedLo, new Shuffle(partitions), Math.min(n, replicas + 3));
  const capacity = balanceCap(partitions, n, options?.balanceFactor ?? defaultPlacementOptions().balanceFactor);
  for (let rank = 0; rank < replicas; rank++) {
    let cap = capacity;
    while (!matchRank(prefs, table, replicas, rank, cap)) cap++;
  }
  return table;
};

/**
 * The most partitions of one rank a member may hold: max(⌈P/n⌉, ⌊f·P/n⌋), or
 * with `auto` max(⌈P/n⌉, ⌊P/n + √(P/n)⌋). The factor is taken to six decimals
 * and the floor computed on whole numbers, so every process gets the same cap
 * even where f·P/n is a whole number that floating point would miss.
 */
export function balanceCap(partitions: number, n: number, factor: BalanceFactor): number {
  const even = Math.ceil(partitions / n);
  if (factor === "auto") {
    const mean = partitions / n;
    return Math.max(even, Math.floor(mean + Math.sqrt(mean)));
  }
  const numerator = Math.round(factor * 1e6) * partitions;
  const denominator = 1e6 * n;
  let cap = Math.floor(numerator / denominator);
  if (cap * denominator > numerator) cap--;
  else if ((cap + 1) * denominator <= numerator) cap++;
  return Math.max(even, cap);
}

/**
 * Deferred acceptance for one replica rank. Writes each partition's member for
 * `rank` into `table` and returns true, or false if some partition was bounced
 * by every member it may still use (then no matching fits under `cap`).
 */
function matchRank(prefs: Preferences, table: Uint32Array, replicas: number, rank: number, cap: number): boolean {
  const partitions = prefs.partitions;
  const n = prefs.seedHi.length;
  // Each member's accepted partitions, as a heap with the one it least prefers on top.
  const held = new Int32Array(n * cap);
  const heldCount = new Int32Array(n);
  // Where the partition's current proposal stands in its list, and its score there.
  const place = new Int32Array(partitions);
  const score = new Float64Array(partitions);
  const cursor = new Int32Array(partitions);
  for (let p = 0; p < partitions; p++) prefs.rewind(p);

  const waiting: number[] = [];
  for (let p = partitions - 1; p >= 0; p--) waiting.push(p);
  while (waiting.length > 0) {
    const p = waiting.pop() as number;
    for (;;) {
      const position = cursor[p] as number;
      const k = prefs.next(p, position);
      if (k < 0) return false;
      cursor[p] = position + 1;
      const m = prefs.member[k] as number;
      if (usedByEarlierRank(table, replicas, p, rank, m)) continue;
      const s = prefs.score[k] as number;
      const base = m * cap;
      const count = heldCount[m] as number;
      place[p] = position;
      score[p] = s;
      if (count < cap) {
        held[base + count] = p;
        heldCount[m] = count + 1;
        siftUp(held, place, score, base, count);
        break;
      }
      const worst = held[base] as number;
      if (prefers(place, score, p, worst)) {
        held[base] = p;
        siftDown(held, place, score, base, cap);
        waiting.push(worst);
        break;
      }
    }
  }
  for (let m = 0; m < n; m++) {
    const count = heldCount[m] as number;
    for (let i = 0; i < count; i++) table[(held[m * cap + i] as number) * replicas + rank] = m;
  }
  return true;
}

function usedByEarlierRank(table: Uint32Array, replicas: number, p: number, rank: number, m: number): boolean {
  for (let r = 0; r < rank; r++) if (table[p * replicas + r] === m) return true;
  return false;
}

/**
 * Each partition's members in descending score order, produced lazily: the
 * best `width` are kept, and the next `width` are computed only when a
 * partition has been bounced past all of them, which is rare.
 */
class Preferences {
  readonly member: Int32Array;
  readonly score: Float64Array;
  /** How many entries of the partition's cached block are filled. */
  private readonly filled: Int32Array;
  /** Position in the full preference list of the first cached entry. */
  private readonly offset: Int32Array;

  readonly partitions: number;

  constructor(
    readonly seedHi: Int32Array,
    readonly seedLo: Int32Array,
    private readonly shuffle: Shuffle,
    private readonly width: number,
  ) {
    const partitions = shuffle.partitions;
    this.partitions = partitions;
    this.member = new Int32Array(partitions * width);
    this.score = new Float64Array(partitions * width);
    this.filled = new Int32Array(partitions);
    this.offset = new Int32Array(partitions);
    this.fillAll();
  }

  /**
   * The first block of every partition, the same as `fill(p, +∞, -1)` gives
   * for each p, without scoring every (partition, member) pair. The top
   * `width` members of a partition are almost always among those that place
   * it in their top `depth` positions, and those partitions are found by
   * running each member's shuffle backwards from position P-1 down: about
   * `expected` candidates a partition instead of n. A partition with fewer
   * than `width` candidates gets the full scan. Members beyond the top depth
   * score strictly lower than every candidate, and the top `width` of a strict
   * order do not depend on the order members are visited in, so the blocks
   * are exactly `fill`'s.
   *
   * Candidates come out in random partition order; inserting them straight
   * into the blocks (megabytes at P = 65536) missed the cache on nearly every
   * one. So each batch of members' candidates is first bucketed by partition
   * range, and each bucket's blocks (a few kilobytes) are filled in one go.
   */
  private fillAll(): void {
    const { partitions, width, shuffle } = this;
    const n = this.seedHi.length;
    const expected = 2 * width + 6;
    const depth = Math.min(partitions, Math.ceil((expected * partitions) / n));
    const shift = Math.max(0, Math.ceil(Math.log2(partitions)) - 7);
    const buckets = (partitions >>> shift) + 1;
    const batch = Math.max(1, Math.floor(candidateBatch / depth));
    const size = Math.min(n, batch) * depth;
    const found = new Int32Array(size);
    const foundPosition = new Int32Array(size);
    const foundMember = new Int32Array(size);
    const sortedPartition = new Int32Array(size);
    const sortedPosition = new Int32Array(size);
    const sortedMember = new Int32Array(size);
    const start = new Int32Array(buckets + 1);
    for (let first = 0; first < n; first += batch) {
      const end = Math.min(n, first + batch);
      start.fill(0);
      const k = topPositions(this.seedHi, this.seedLo, first, end, shuffle, depth, found, foundPosition, foundMember);
      for (let i = 0; i < k; i++) {
        const b = ((found[i] as number) >>> shift) + 1;
        start[b] = (start[b] as number) + 1;
      }
      for (let b = 0; b < buckets; b++) start[b + 1] = (start[b + 1] as number) + (start[b] as number);
      for (let i = 0; i < k; i++) {
        const p = found[i] as number;
        const at = start[p >>> shift] as number;
        sortedPartition[at] = p;
        sortedPosition[at] = foundPosition[i] as number;
        sortedMember[at] = foundMember[i] as number;
        start[p >>> shift] = at + 1;
      }
      for (let j = 0; j < k; j++) {
        this.offer(sortedPartition[j] as number, sortedPosition[j] as number, sortedMember[j] as number);
      }
    }
    if (depth === partitions) return;
    for (let p = 0; p < partitions; p++)
      if ((this.filled[p] as number) < width) this.fill(p, Number.POSITIVE_INFINITY, -1);
  }

  /** Puts member m, which places p at `position`, into p's first block if it is among the best `width`. */
  private offer(p: number, position: number, m: number): void {
    const { width, score, member, filled } = this;
    const base = p * width;
    const count = filled[p] as number;
    const last = score[base + count - 1] as number;
    // A lower position loses whatever the tie-break, so skip hashing it.
    if (count === width && position * 0x20000000 < last - 0x1fffffff) return;
    const hi = this.seedHi[m] as number;
    const lo = this.seedLo[m] as number;
    const s = position * 0x20000000 + (tieBreak(hi, lo, p) >>> 3);
    if (count === width && !better(s, m, last, member[base + count - 1] as number)) return;
    let i = count < width ? count : count - 1;
    if (count < width) filled[p] = count + 1;
    while (i > 0 && better(s, m, score[base + i - 1] as number, member[base + i - 1] as number)) {
      score[base + i] = score[base + i - 1] as number;
      member[base + i] = member[base + i - 1] as number;
      i--;
    }
    score[base + i] = s;
    member[base + i] = m;
  }

  /** Makes sure the cache holds the start of the partition's list again. */
  rewind(p: number): void {
    if (this.offset[p] !== 0) {
      this.offset[p] = 0;
      this.fill(p, Number.POSITIVE_INFINITY, -1);
    }
  }

  /**
   * Index into `member`/`score` of the partition's choice at `position` in its
   * list (counted from the list's start for the current rank), or -1 when the
   * list is exhausted. Positions must be asked for in increasing order.
   */
  next(p: number, position: number): number {
    const base = p * this.width;
    let index = position - (this.offset[p] as number);
    if (index >= this.width) {
      const last = base + this.width - 1;
      this.offset[p] = position;
      this.fill(p, this.score[last] as number, this.member[last] as number);
      index = 0;
    }
    return index < (this.filled[p] as number) ? base + index : -1;
  }

  /** Caches the best `width` members ranked strictly below (belowScore, belowMember). */
  private fill(p: number, belowScore: number, belowMember: number): void {
    const base = p * this.width;
    const n = this.seedHi.length;
    let filled = 0;
    for (let m = 0; m < n; m++) {
      const s = pairScore(this.shuffle, this.seedHi[m] as number, this.seedLo[m] as number, p);
      if (!better(belowScore, belowMember, s, m)) continue;
      if (
        filled === this.width &&
        !better(s, m, this.score[base + filled - 1] as number, this.member[base + filled - 1] as number)
      )
        continue;
      // Insertion into the short sorted block.
      let i = filled < this.width ? filled++ : filled - 1;
      while (i > 0 && better(s, m, this.score[base + i - 1] as number, this.member[base + i - 1] as number)) {
        this.score[base + i] = this.score[base + i - 1] as number;
        this.member[base + i] = this.member[base + i - 1] as number;
        i--;
      }
      this.score[base + i] = s;
      this.member[base + i] = m;
    }
    this.filled[p] = filled;
  }
}

/** Candidates bucketed at a time by `Preferences.fillAll`: bounds its memory at any size. */
const candidateBatch = 1 << 20;

/**
 * Strict order on (score, id) pairs: higher score wins. Two members' scores
 * for a partition tie only if both position and 29 hashed bits agree, which
 * is practically never, but it still needs an answer that every proxy agrees
 * on.
 */
function better(s1: number, id1: number, s2: number, id2: number): boolean {
  return s1 > s2 || (s1 === s2 && id1 < id2);
}

/**
 * Whether a member prefers partition p1 to p2: the one that ranks the member
 * higher (proposed at an earlier place in its list), then the higher score.
 * One member's scores are distinct (they are positions in its permutation);
 * the partition number only makes the order total.
 */
function prefers(place: Int32Array, score: Float64Array, p1: number, p2: number): boolean {
  const a = place[p1] as number;
  const b = place[p2] as number;
  if (a !== b) return a < b;
  const s1 = score[p1] as number;
  const s2 = score[p2] as number;
  return s1 > s2 || (s1 === s2 && p1 < p2);
}

function siftUp(heap: Int32Array, place: Int32Array, score: Float64Array, base: number, i: number): void {
  const item = heap[base + i] as number;
  while (i > 0) {
    const parent = (i - 1) >> 1;
    const above = heap[base + parent] as number;
    if (!prefers(place, score, above, item)) break;
    heap[base + i] = above;
    i = parent;
  }
  heap[base + i] = item;
}

function siftDown(heap: Int32Array, place: Int32Array, score: Float64Array, base: number, size: number): void {
  const item = heap[base] as number;
  let i = 0;
  for (;;) {
    let child = 2 * i + 1;
    if (child >= size) break;
    const right = child + 1;
    if (right < size && prefers(place, score, heap[base + child] as number, heap[base + right] as number)) {
      child = right;
    }
    const below = heap[base + child] as number;
    if (!prefers(place, score, item, below)) break;
    heap[base + i] = below;
    i = child;
  }
  heap[base + i] = item;
}

/** MurmurHash3's 32-bit finalizer: every input bit affects every output bit. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

const utf8 = new TextEncoder();

/**
 * 64-bit hash of the name's UTF-8 bytes (as two 32-bit halves): FNV-1a in two
 * lanes with different offsets, each finalised with the other's state mixed
 * in, so equal names agree across implementations and distinct names collide
 * with probability about 2⁻⁶⁴.
 */
function nameHash(name: string): [number, number] {
  let a = 0x811c9dc5;
  let b = 0x050c5d1f;
  for (const byte of utf8.encode(name)) {
    a = Math.imul(a ^ byte, 0x01000193);
    b = Math.imul(b ^ byte, 0x01000193) ^ (a >>> 7);
  }
  const hi = fmix32(a ^ Math.imul(b, 0x9e3779b9));
  const lo = fmix32(b ^ Math.imul(hi, 0x27d4eb2f));
  return [hi, lo];
}

/**
 * The domain of the partition shuffles: 2·half bits, the fewest even number
 * of bits that covers 0..P-1, so a balanced Feistel network permutes it and
 * cycle walking (applying it again until the result is below P) restricts it
 * to a permutation of 0..P-1 in fewer than four steps on average.
 */
class Shuffle {
  readonly half: number;
  readonly mask: number;

  constructor(readonly partitions: number) {
    let half = 1;
    while (2 ** (2 * half) < partitions) half++;
    this.half = half;
    this.mask = (1 << half) - 1;
  }
}

/**
 * The score of partition p on the member with seed (hi, lo): p's position in
 * the member's permutation of the partitions (4 Feistel rounds, round keys
 * alternating between the seed's halves), above 29 bits of a per-pair hash
 * that only decides between members giving p the same position. Positions are
 * below 2²⁴, so the score is an exact integer in a double.
 */
function pairScore(shuffle: Shuffle, hi: number, lo: number, p: number): number {
  const { half, mask, partitions } = shuffle;
  let x = p;
  do {
    let left = x >>> half;
    let right = x & mask;
    for (let round = 0; round < 4; round++) {
      const f = fmix32(right ^ Math.imul(round + 1, 0x9e3779b9) ^ (round & 1 ? lo : hi)) & mask;
      const next = left ^ f;
      left = right;
      right = next;
    }
    x = (left << half) | right;
  } while (x >= partitions);
  return x * 0x20000000 + (tieBreak(hi, lo, p) >>> 3);
}

/**
 * The partition the member with seed (hi, lo) puts at `position`: its shuffle
 * run backwards (the Feistel rounds in reverse order, cycle walking down).
 */
function unshuffle(shuffle: Shuffle, hi: number, lo: number, position: number): number {
  const { half, mask, partitions } = shuffle;
  let x = position;
  do {
    let left = x >>> half;
    let right = x & mask;
    for (let round = 3; round >= 0; round--) {
      const f = fmix32(left ^ Math.imul(round + 1, 0x9e3779b9) ^ (round & 1 ? lo : hi)) & mask;
      const previous = right ^ f;
      right = left;
      left = previous;
    }
    x = (left << half) | right;
  } while (x >= partitions);
  return x;
}

/**
 * For members first..end-1, the partitions each puts at its top `depth`
 * positions, written to `found` with the position and the member; returns
 * how many. Where it takes fewer hashes, a member's four round functions are
 * tabulated first (4·2^half values instead of 4 a position).
 */
function topPositions(
  seedHi: Int32Array,
  seedLo: Int32Array,
  first: number,
  end: number,
  shuffle: Shuffle,
  depth: number,
  found: Int32Array,
  foundPosition: Int32Array,
  foundMember: Int32Array,
): number {
  const { half, mask, partitions } = shuffle;
  const tabled = mask < depth;
  const rounds = new Int32Array(tabled ? 4 * (mask + 1) : 0);
  let k = 0;
  for (let m = first; m < end; m++) {
    const hi = seedHi[m] as number;
    const lo = seedLo[m] as number;
    if (tabled) {
      for (let round = 0; round < 4; round++) {
        const key = Math.imul(round + 1, 0x9e3779b9) ^ (round & 1 ? lo : hi);
        for (let v = 0; v <= mask; v++) rounds[(round << half) + v] = fmix32(v ^ key) & mask;
      }
    }
    for (let position = partitions - 1; position >= partitions - depth; position--) {
      found[k] = tabled
        ? unshuffleTabled(rounds, half, mask, partitions, position)
        : unshuffle(shuffle, hi, lo, position);
      foundPosition[k] = position;
      foundMember[k] = m;
      k++;
    }
  }
  return k;
}

/** `unshuffle` with the member's round functions read from `rounds` (round r at r·2^half). */
function unshuffleTabled(rounds: Int32Array, half: number, mask: number, partitions: number, position: number): number {
  let x = position;
  do {
    let left = x >>> half;
    let right = x & mask;
    let previous = right ^ (rounds[(3 << half) + left] as number);
    right = left;
    left = previous;
    previous = right ^ (rounds[(2 << half) + left] as number);
    right = left;
    left = previous;
    previous = right ^ (rounds[(1 << half) + left] as number);
    right = left;
    left = previous;
    previous = right ^ (rounds[left] as number);
    x = (previous << half) | left;
  } while (x >= partitions);
  return x;
}

/** 32 uniform bits for the pair (member seed, partition). */
function tieBreak(hi: number, lo: number, p: number): number {
  let a = fmix32(lo ^ Math.imul(p, 0x9e3779b9));
  const b = fmix32(hi + Math.imul(p ^ a, 0x85ebca6b));
  a = fmix32(a ^ b);
  return a >>> 0;
}
