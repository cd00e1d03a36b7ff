/**
 * One line for a YAML parse error. The yaml library's message is the problem,
 * "at line L, column C:", then the offending lines drawn over several lines;
 * cut at the first newline it ends in a colon with nothing after it. This keeps
 * the problem and position and quotes the offending line instead.
 */
export function yamlProblem(error: unknown, text: string): string {
  const message = error instanceof Error ? error.message : String(error);
  const first = (message.split("\n")[0] ?? message).replace(/:\s*$/, "");
  const line = (error as { linePos?: { line: number }[] }).linePos?.[0]?.line;
  const source = line === undefined ? undefined : text.split(/\r?\n/)[line - 1]?.trim();
  return source ? `${first}: ${JSON.stringify(source)}` : first;
}
