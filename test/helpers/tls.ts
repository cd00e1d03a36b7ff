/** Self-signed certificates for the TLS tests, made by openssl (Debian's package). */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface Certificate {
  /** PEM text, for createProxy's `tls`. */
  cert: string;
  key: string;
  /** Where they were written, for a config file's `tls`. */
  certFile: string;
  keyFile: string;
}

/** A P-256 certificate for CN `name`, valid for 127.0.0.1, in a new temporary directory (or `dir`). */
export function selfSigned(name: string, dir = mkdtempSync(join(tmpdir(), "ringroute-tls-"))): Certificate {
  const certFile = join(dir, `${name}.pem`);
  const keyFile = join(dir, `${name}-key.pem`);
  execFileSync(
    "openssl",
    ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1"].concat([
      "-subj",
      `/CN=${name}`,
      "-addext",
      "subjectAltName=IP:127.0.0.1",
      "-keyout",
      keyFile,
      "-out",
      certFile,
    ]),
    { stdio: "ignore" },
  );
  return { cert: readFileSync(certFile, "utf8"), key: readFileSync(keyFile, "utf8"), certFile, keyFile };
}
