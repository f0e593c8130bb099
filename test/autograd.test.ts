// Autograd semantics: requiresGrad propagation, accumulation, noGrad, detach, non-scalar backward,
// gradients through views and broadcasts, unused inputs, and a whole small network vs the reference.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as t from '../src/index.js';
import { TrimpiError } from '../src/index.js';
import * as R from './reference/ref.js';
import { helperTestOp, expectClose, TOL } from './helpers.js';
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
