/**
 * A setting that cannot be used. `field` names it the way the user wrote it
 * (`ring.partitions`, `--members`), so the one-line message points at the fix.
 */
export class ConfigError extends Error {
  override name = "ConfigError";

  constructor(
    readonly field: string,
    readonly problem: string,
  ) {
    super(`${field}: ${problem}`);
  }
}
