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

/**
 * A short description of any argument for an error message: numbers and strings as written,
 * arrays by length, objects by constructor name (`a string 'x'`, `null`, `an Array of 3`).
 */
export function describeValue(x: unknown): string {
  if (x === null) return 'null';
  if (x === undefined) return 'undefined';
  if (typeof x === 'number') return Number.isNaN(x) ? 'NaN' : String(x);
  if (typeof x === 'string') return `the string ${JSON.stringify(x.length > 40 ? x.slice(0, 40) + '...' : x)}`;
  if (typeof x === 'boolean' || typeof x === 'bigint') return `${typeof x} ${String(x)}`;
  if (typeof x === 'function') return 'a function';
  if (typeof x === 'symbol') return 'a symbol';
  if (Array.isArray(x)) return x.length <= 6 ? `[${x.map((v) => (typeof v === 'number' ? String(v) : describeValue(v))).join(', ')}]` : `an array of ${x.length}`;
  const d = (x as { describe?: unknown }).describe;
  if (typeof d === 'function' && (x as { shape?: unknown }).shape) {
    try {
      return `a tensor ${String(d.call(x))}`;
    } catch {
      // fall through
    }
  }
  const ctor = (x as object).constructor?.name;
  return ctor && ctor !== 'Object' ? `a ${ctor}` : 'an object';
}

/**
 * Checks that `x` is a number (an integer with `integer`; finite unless `allowNonFinite`) in
 * [min, max]; throws a TrimpiError naming `op`, the argument `name` and what was expected.
 */
export function checkNumber(op: string, name: string, x: unknown, opts: { integer?: boolean; min?: number; max?: number; allowNonFinite?: boolean; optional?: boolean } = {}): void {
  if (opts.optional && x === undefined) return;
  const want = (): string => {
    const kind = opts.integer ? 'an integer' : opts.allowNonFinite ? 'a number' : 'a finite number';
    const lo = opts.min !== undefined ? `>= ${opts.min}` : '';
    const hi = opts.max !== undefined ? `<= ${opts.max}` : '';
    return [kind, [lo, hi].filter(Boolean).join(' and ')].filter(Boolean).join(' ');
  };
  const ok = typeof x === 'number' && !Number.isNaN(x) && (opts.allowNonFinite || Number.isFinite(x)) && (!opts.integer || Number.isInteger(x)) &&
    (opts.min === undefined || x >= opts.min) && (opts.max === undefined || x <= opts.max);
  check(ok, op, () => `${name} must be ${want()}, got ${describeValue(x)}`);
}
