import { readFileSync } from "node:fs";

/** Reference values computed with Go (hash/fnv, dgryski/go-jump, libring's replica rule over sort.Strings). */
export interface GoVectors {
  jump: { key: string; buckets: number; bucket: number }[];
  cases: {
    hash: "fnv1a32" | "fnv1a64";
    members: string[];
    partitions: number;
    replicas: number;
    keys: string[];
    partition: number[];
    owners: string[][];
  }[];
}

export const goVectors: GoVectors = JSON.parse(
  readFileSync(new URL("../vectors/go-reference.json", import.meta.url), "utf8"),
);
