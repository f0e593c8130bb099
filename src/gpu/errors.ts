/**
 * The library's own error. Every message names the op, the shapes/dtypes involved and what
 * was expected, so a user can find the bad call without a debugger.
 */
export class TrimpiError extends Error {
  readonly op: string;
  constructor(op: string, message: string) {
    super(`${op}: ${message}`);
    this.name = 'TrimpiError';
    this.op = op;
  }
}

/** Throws a TrimpiError for `op` unless `cond` holds. */
export function check(cond: unknown, op: string, message: () => string): asserts cond {
  if (!cond) throw new TrimpiError(op, message());
}

export function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}
