// Tensor memory scopes: tidy() frees every tensor created inside it except those it returns or
// keep()s. The buffer pool and the storages the tensors share are in src/gpu/memory.ts.

export interface Disposable {
  dispose(): void;
  readonly isDisposed: boolean;
}

interface Scope {
  tracked: Set<Disposable>;
}

const scopes: Scope[] = [];
const kept = new WeakSet<Disposable>();

/** Registers a new tensor with the innermost tidy() scope (no-op outside any scope). */
export function track(t: Disposable): void {
  const s = scopes[scopes.length - 1];
  if (s && !kept.has(t)) s.tracked.add(t);
}

/** Marks a tensor to survive every enclosing tidy(); it must then be disposed explicitly. */
export function keep<T extends Disposable>(t: T): T {
  kept.add(t);
  for (const s of scopes) s.tracked.delete(t);
  return t;
}

function collect(value: unknown, out: Set<Disposable>, seen: Set<unknown>): void {
  if (value === null || typeof value !== 'object' || seen.has(value)) return;
  seen.add(value);
  if ('dispose' in value && 'isDisposed' in value) {
    out.add(value as Disposable);
    return;
  }
  if (Array.isArray(value)) for (const v of value) collect(v, out, seen);
  else if (value instanceof Map) for (const v of value.values()) collect(v, out, seen);
  else if (Object.getPrototypeOf(value) === Object.prototype) for (const v of Object.values(value)) collect(v, out, seen);
}

/**
 * Runs fn and disposes every tensor created inside it except those it returns (found in arrays,
 * Maps and plain objects) and those passed to keep(). Returned tensors move to the enclosing scope.
 * fn must be synchronous: GPU work is recorded synchronously and awaited only at readback.
 */
export function tidy<T>(fn: () => T): T {
  const scope: Scope = { tracked: new Set() };
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
    if (result instanceof Promise) {
      throw new Error('tidy: the function returned a Promise; tidy() scopes must be synchronous (await readbacks outside)');
    }
  } catch (e) {
    scopes.pop();
    for (const t of scope.tracked) t.dispose();
    throw e;
  }
  scopes.pop();
  const survivors = new Set<Disposable>();
  collect(result, survivors, new Set());
  const parent = scopes[scopes.length - 1];
  for (const t of scope.tracked) {
    if (survivors.has(t)) parent?.tracked.add(t);
    else t.dispose();
  }
  return result;
}
