/**
 * A request whose key cannot be used: absent (400), malformed (400), or
 * longer than `key.maxLength` (414 in the URL, 431 in a header). Carries the
 * HTTP status and a short code so the proxy answers with a JSON body.
 */
export class KeyError extends Error {
  override name = "KeyError";

  constructor(
    readonly status: 400 | 414 | 431,
    /** Machine-readable reason: `missing_key`, `malformed_key`, `key_too_long`. */
    readonly code: string,
    message: string,
    /** Where the key was looked for, e.g. `header "x-user"`. */
    readonly source: string,
  ) {
    super(message);
  }
}
