// Autograd semantics: requiresGrad propagation, accumulation, noGrad, detach, non-scalar backward,
// gradients through views and broadcasts, unused inputs, and a whole small network vs the reference.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as t from '../src/index.js';
import { TrimpiError } from '../src/index.js';
import * as R from './reference/ref.js';
import { helperTestOp, expectClose, TOL } from './helpers.js';
import { GRAD_RULES, SAVED_FOR_BACKWARD } from '../src/tensor/gradients.js';
import { reportChecks } from './helpers.js';

beforeAll(async () => {
  await t.init();
});
afterAll(() => reportChecks('autograd'));

describe('autograd', () => {
  it('accumulates into .grad across backward calls', async () => {
    const x = t.tensor([1, -2, 3], { requiresGrad: true });
    x.mul(x).sum().backward();
    expect([...(await x.grad!.toArray())]).toEqual([2, -4, 6]);
    x.mul(3).sum().backward();
    expect([...(await x.grad!.toArray())]).toEqual([5, -1, 9]);
    x.zeroGrad();
    expect(x.grad).toBeNull();
  });

  it('a tensor used twice gets the sum of both paths', async () => {
    await helperTestOp('x*x + exp(x)*x', [[33]], (x) => x.mul(x).add(x.exp().mul(x)), (x) => x.mul(x).add(x.exp().mul(x)));
    await helperTestOp('shared view paths', [[6, 7]], (x) => x.slice(0, 0, 3).add(x.slice(0, 3, 6)).mul(x.T.T.slice(0, 1, 4)),
      (x) => x.slice(0, 0, 3).add(x.slice(0, 3, 6)).mul(x.T.T.slice(0, 1, 4)));
  });

  it('backward of a non-scalar needs a gradient argument', () => {
    const x = t.tensor([1, 2, 3], { requiresGrad: true });
    const y = x.mul(2);
    expect(() => y.backward()).toThrowError(TrimpiError);
    expect(() => y.backward()).toThrow(/backward\(\) without a gradient needs a tensor with one element; got shape \[3\]/);
    expect(() => y.backward(t.tensor([1, 2]))).toThrow(/gradient shape \[2\] does not match the tensor's shape \[3\]/);
  });

  it('backward on a tensor that does not require grad is an error', () => {
    const x = t.tensor([1, 2, 3]);
    expect(() => x.sum().backward()).toThrow(/does not require grad/);
  });

  it('noGrad records nothing; detach cuts the graph', async () => {
    const x = t.tensor([1, 2, 3], { requiresGrad: true });
    const y = t.noGrad(() => x.mul(2));
    expect(y.requiresGrad).toBe(false);
    expect(y.node).toBeNull();
    const d = x.detach();
    expect(d.requiresGrad).toBe(false);
    const z = x.mul(d).sum(); // d is a constant: dz/dx = d
    z.backward();
    expect([...(await x.grad!.toArray())]).toEqual([1, 2, 3]);
    expect(t.isGradEnabled()).toBe(true);
  });

  it('inputs that the loss does not depend on keep .grad null; integer inputs never get one', async () => {
    const a = t.tensor([1, 2], { requiresGrad: true });
    const unused = t.tensor([5, 6], { requiresGrad: true });
    const idx = t.tensor([1, 0], { dtype: 'i32' });
    a.indexSelect(0, idx).sum().backward();
    expect(unused.grad).toBeNull();
    expect(idx.grad).toBeNull();
    expect([...(await a.grad!.toArray())]).toEqual([1, 1]);
    // a path through a comparison carries no gradient: the mask is a constant
    const b = t.tensor([1, -2, 3], { requiresGrad: true });
    b.gt(0).mul(b).sum().backward();
    expect([...(await b.grad!.toArray())]).toEqual([1, 0, 1]);
  });

  it('gradients flow through broadcasts and expanded views back to the small shape', async () => {
    await helperTestOp('bias broadcast', [[4, 5, 7], [7]], (x, b) => x.add(b).tanh(), (x, b) => x.add(b).tanh());
    await helperTestOp('expand then reduce', [[3, 1]], (x) => x.expand([3, 5]).mul(t.arange(5).cast('f32')).sum(1),
      (x) => x.expand([3, 5]).mul(new R.Ref([0, 1, 2, 3, 4], [5])).sum(1));
  });

  it('an MLP (matmul, bias, gelu, layerNorm, logSoftmax) matches the reference end to end', async () => {
    await helperTestOp('mlp', [[9, 17], [17, 33], [33], [33], [33], [33, 5], { shape: [9], dtype: 'i32', low: 0, high: 5 }],
      (x, w1, b1, g, be, w2, y) => t.crossEntropy(t.layerNorm(x.matmul(w1).add(b1).gelu(), [33], g, be).matmul(w2), y),
      (x, w1, b1, g, be, w2, y) => R.crossEntropy(R.layerNorm(x.matmul(w1).add(b1).gelu(), [33], g, be).matmul(w2), y));
  });

  it('a deep chain does not overflow the stack', async () => {
    const x = t.tensor([0.5], { requiresGrad: true });
    let y = x;
    for (let i = 0; i < 3000; i++) y = y.mul(1.0001);
    y.sum().backward();
    expectClose('deep chain grad', await x.grad!.toArray(), [1.0001 ** 3000], { rtol: 1e-3, atol: 0 });
  });

  it('second backward after the graph was freed by tidy is a clear error', () => {
    const x = t.tensor([1, 2], { requiresGrad: true });
    const loss = t.tidy(() => x.exp().sum().keep());
    expect(() => loss.backward()).toThrow(/backward of sum: tensor .* was used after dispose\(\)|used after dispose/);
    expect(TOL.f32.grad.rtol).toBe(1e-3);
  });
});

describe('in-place writes and saved tensors (version counters)', () => {
  it('a write into an input the gradient needs makes backward raise, naming the op', () => {
    const x = t.tensor([1, 2, 3], { requiresGrad: true });
    const y = t.log(x);
    expect(x.version).toBe(0);
    x.assign(t.mul(x, 2));
    expect(x.version).toBe(1);
    let err: unknown = null;
    try {
      y.sum().backward();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TrimpiError);
    expect((err as TrimpiError).op).toBe('backward of log');
    expect(String(err)).toMatch(/its input 0 \(\[3\], f32\), saved for the gradient, was modified by an in-place operation .* version 1, log saw version 0/);
  });

  it('a write into a saved output (exp keeps its result) raises too', () => {
    const x = t.tensor([0.5, -1], { requiresGrad: true });
    const y = x.exp();
    const loss = y.sum();
    t.noGrad(() => y.assign(0));
    expect(() => loss.backward()).toThrow(/backward of exp: its output .* was modified by an in-place operation/);
  });

  it('a write through a view bumps the whole storage', () => {
    const x = t.tensor([1, 2, 3, 4], { requiresGrad: true });
    const w = t.tensor([5, 6, 7, 8], { requiresGrad: true });
    const y = x.mul(w);
    t.noGrad(() => x.slice(0, 1, 2).assign(9));
    expect(x.version).toBe(1);
    expect(() => y.sum().backward()).toThrow(/backward of mul: its input 0/);
  });

  it('writes that no gradient reads are fine (add saves nothing; the values used are the new ones)', async () => {
    const x = t.tensor([1, 2, 3], { requiresGrad: true });
    const y = x.add(1).mul(3);
    x.assign(t.noGrad(() => x.mul(10)));
    y.sum().backward();
    expect([...(await x.grad!.toArray())]).toEqual([3, 3, 3]);
  });

  it('gradient accumulation and optimizer steps count as in-place writes; a step between forward and backward raises', async () => {
    const p = t.tensor([0.5, -0.5, 2], { requiresGrad: true });
    const opt = new t.nn.AdamW([p], { lr: 0.1 });
    // the usual loop: forward, backward, step, again
    for (let i = 0; i < 2; i++) {
      const loss = p.mul(p).sum();
      loss.backward();
      const v = p.version;
      opt.update();
      expect(p.version).toBe(v + 1);
      p.zeroGrad();
    }
    // accumulation into an existing .grad is an in-place add
    p.mul(p).sum().backward();
    const g = p.grad!;
    const gv = g.version;
    p.mul(2).sum().backward();
    expect(g.version).toBe(gv + 1);
    // stepping while a graph still needs the old parameter
    const stale = p.mul(p).sum();
    opt.update();
    expect(() => stale.backward()).toThrow(/backward of mul: its input [01] .* modified by an in-place operation/);
    opt.dispose();
  });

  it('every gradient rule says what it saves', () => {
    expect(Object.keys(SAVED_FOR_BACKWARD).sort()).toEqual(Object.keys(GRAD_RULES).sort());
  });
});
