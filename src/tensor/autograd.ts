// The tape. Each differentiable op calls record(): the output tensor gets a node naming the op, its
// inputs and whatever the gradient rule needs. backward() walks the nodes in reverse topological
// order, applies the rules from gradients.ts, sums broadcast gradients back to each input's shape,
// and accumulates into leaves' .grad. Intermediate gradients are freed as soon as they are consumed.
import { TrimpiError, check, fmtShape } from '../gpu/errors.js';
import { keep, tidy } from './memory.js';
import type { Tensor } from './tensor.js';
import { GRAD_RULES, GradContext, SAVED_FOR_BACKWARD } from './gradients.js';
import * as ops from './ops.js';
import { checkTensor } from './validate.js';

export interface GradNode {
  op: string;
  /** Inputs as passed to the op (numbers for scalar operands). */
  inputs: readonly (Tensor | number | null)[];
  /** Extra values the rule needs (axes, saved tensors, ...). */
  saved: Record<string, unknown>;
  /**
   * The tensors whose values the gradient rule reads (input indices, or 'out'), each with the
   * version of its memory at the forward: backward() refuses to run the rule if one was written in
   * place since.
   */
  versions: readonly (readonly [number | 'out', number])[];
}

let gradDepth = 0;

/** Whether ops currently record the graph. */
export function isGradEnabled(): boolean {
  return gradDepth === 0;
}

/** Runs fn without recording gradients (inference, optimizer updates). */
export function noGrad<T>(fn: () => T): T {
  gradDepth++;
  try {
    return fn();
  } finally {
    gradDepth--;
  }
}

/** Attaches a node to `out` when any tensor input requires grad and recording is on. Returns out. */
export function record(op: string, inputs: readonly (Tensor | number | null)[], out: Tensor, saved: Record<string, unknown> = {}): Tensor {
  if (gradDepth > 0) return out;
  if (!inputs.some((t) => typeof t === 'object' && t !== null && t.requiresGrad)) return out;
  if (!(op in GRAD_RULES)) throw new TrimpiError(op, 'no gradient rule is defined for this op');
  const versions: (readonly [number | 'out', number])[] = [];
  for (const k of SAVED_FOR_BACKWARD[op]) {
    const x = k === 'out' ? out : inputs[k];
    if (typeof x === 'object' && x !== null) versions.push([k, x.version]);
  }
  out.requiresGrad = true;
  out.node = { op, inputs, saved, versions };
  return out;
}

/** Throws if a tensor the rule of `t`'s node reads was written in place after the forward. */
function checkVersions(t: Tensor, node: GradNode): void {
  for (const [k, then] of node.versions) {
    const x = (k === 'out' ? t : node.inputs[k]) as Tensor;
    if (x.version === then) continue;
    const what = k === 'out' ? `its output ${x.describe()}` : `its input ${k} ${x.describe()}`;
    throw new TrimpiError(`backward of ${node.op}`,
      `${what}, saved for the gradient, was modified by an in-place operation (assign, an optimizer step, ...) after the forward: ` +
      `it is at version ${x.version}, ${node.op} saw version ${then}. Write into a clone() instead, or after backward()`);
  }
}

function topoOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<Tensor>();
  // iterative DFS (deep graphs would overflow a recursive one)
  const stack: [Tensor, boolean][] = [[root, false]];
  while (stack.length) {
    const [t, done] = stack.pop()!;
    if (done) {
      order.push(t);
      continue;
    }
    if (seen.has(t)) continue;
    seen.add(t);
    stack.push([t, true]);
    for (const x of t.node?.inputs ?? []) {
      if (typeof x === 'object' && x !== null && x.requiresGrad && !seen.has(x)) stack.push([x, false]);
    }
  }
  return order; // inputs before outputs
}

/**
 * Backpropagates from `root`. Leaves (requiresGrad, no node) get .grad += dL/dleaf; tensors that do
 * not require grad, integer inputs and numbers get nothing. Inputs that the loss does not depend on
 * keep .grad unchanged (null if never set).
 */
export function backward(root: Tensor, gradient?: Tensor): void {
  root.assertAlive('backward');
  check(root.requiresGrad, 'backward', () => `tensor ${root.describe()} does not require grad (no input had requiresGrad set, or it was computed under noGrad)`);
  if (gradient !== undefined) {
    checkTensor('backward', 'gradient', gradient);
    check(gradient.dtype === 'f32', 'backward', () => `gradient must be an f32 tensor, got ${gradient.describe()}`);
    check(gradient.shape.length === root.shape.length && gradient.shape.every((d, i) => d === root.shape[i]), 'backward',
      () => `gradient shape ${fmtShape(gradient.shape)} does not match the tensor's shape ${fmtShape(root.shape)}`);
  } else {
    check(root.numel === 1, 'backward', () =>
      `backward() without a gradient needs a tensor with one element; got shape ${fmtShape(root.shape)}: pass a gradient of that shape, or reduce to a scalar first`);
  }
  const order = topoOrder(root);
  const grads = new Map<Tensor, Tensor>();
  // Every map entry is a tensor object owned by the map (views of shared storage are fine).
  const own = (t: Tensor): Tensor => t.view_(t.shape, t.strides, t.offset);
  tidy(() => {
    grads.set(root, keep(gradient ? own(gradient) : ops.onesLike(root)));
    for (let k = order.length - 1; k >= 0; k--) {
      const t = order[k];
      const g = grads.get(t);
      if (!g) continue;
      grads.delete(t);
      if (!t.node) {
        accumulateLeaf(t, g);
        continue;
      }
      const node = t.node;
      for (const x of node.inputs) if (typeof x === 'object' && x !== null) x.assertAlive(`backward of ${node.op}`);
      checkVersions(t, node);
      const ctx: GradContext = { inputs: node.inputs, out: t, saved: node.saved };
      const inGrads = tidy(() => noGrad(() => {
        const raw = GRAD_RULES[node.op](g, ctx);
        return raw.map((gi, i) => {
          const x = node.inputs[i];
          if (!gi || typeof x !== 'object' || x === null || !x.requiresGrad) return null;
          const shaped = ops.sumToShape(gi, x.shape);
          return shaped === g || shaped === gi ? own(shaped) : shaped;
        });
      }));
      g.dispose();
      inGrads.forEach((gi, i) => {
        const x = node.inputs[i];
        if (!gi || typeof x !== 'object' || x === null) return;
        keep(gi);
        const prev = grads.get(x);
        if (prev) {
          const sum = keep(noGrad(() => ops.add(prev, gi)));
          prev.dispose();
          gi.dispose();
          grads.set(x, sum);
        } else grads.set(x, gi);
      });
    }
  });
  for (const g of grads.values()) g.dispose();
}

function accumulateLeaf(t: Tensor, g: Tensor): void {
  if (!t.requiresGrad) {
    g.dispose();
    return;
  }
  noGrad(() => {
    if (t.grad && !t.grad.isDisposed) {
      ops.addInPlace(t.grad, g);
      g.dispose();
    } else if (g.ownsStorage && g.isContiguous && g.offset === 0) {
      // g is the only view of its memory, so later in-place accumulation can touch nothing else
      t.grad = keep(g);
    } else {
      t.grad = keep(ops.clone(g));
      g.dispose();
    }
  });
}
