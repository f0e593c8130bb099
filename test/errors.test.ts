// Bad input: every error is a TrimpiError naming the op, the shapes/dtypes and what was expected,
// and leaves no state behind.
import { beforeAll, describe, expect, it } from 'vitest';
import * as t from '../src/index.js';
import { TrimpiError } from '../src/index.js';

beforeAll(async () => {
  await t.init();
});

function expectError(fn: () => unknown, op: string, message: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught, `expected ${op} to throw`).toBeInstanceOf(TrimpiError);
  expect((caught as TrimpiError).op).toBe(op);
  expect((caught as TrimpiError).message).toMatch(message);
}

describe('errors name the op, the shapes and what was expected', () => {
  const a = (): t.Tensor => t.zeros([2, 3]);
  it('shape mismatches', () => {
    expectError(() => a().add(t.zeros([4])), 'add', /shapes \[2, 3\] and \[4\] cannot be broadcast together/);
    expectError(() => a().matmul(t.zeros([2, 3])), 'matmul', /inner dimensions differ: \(\[2, 3\], f32\) @ \(\[2, 3\], f32\)/);
    expectError(() => a().reshape([4, 2]), 'reshape', /cannot reshape a tensor of shape \[2, 3\] \(6 elements\) into \[4, 2\]/);
    expectError(() => a().expand([4, 3]), 'expand', /cannot expand \(\[2, 3\], f32\) to \[4, 3\]/);
    expectError(() => t.concat([a(), t.zeros([2, 4])], 0), 'concat', /same dtype and shape except along axis 0/);
    expectError(() => t.layerNorm(a(), [4]), 'layerNorm', /normalizedShape \[4\] must match the trailing dims of \(\[2, 3\], f32\)/);
    expectError(() => t.layerNorm(a(), [3], t.ones([4])), 'layerNorm', /weight of shape \[4\] must have the normalized shape \[3\]/);
    expectError(() => t.crossEntropy(a(), t.zeros([3], { dtype: 'i32' })), 'crossEntropy', /targets \(\[3\], i32\) must have the shape of logits \(\[2, 3\], f32\)/);
    expectError(() => t.tensor([1, 2, 3], { shape: [2, 2] }), 'tensor', /shape \[2, 2\] needs 4 values, got 3/);
    expectError(() => t.tensor([[1, 2], [3]]), 'tensor', /ragged/);
    expectError(() => a().maskedFill(t.zeros([3, 3]), 0), 'maskedFill', /cannot be broadcast|must broadcast/);
    expectError(() => a().assign(t.zeros([1, 2, 3])), 'assign', /does not broadcast to the destination's shape \[2, 3\]/);
  });
  it('dtype mismatches', () => {
    expectError(() => t.matmul(t.zeros([2, 2], { dtype: 'i32' }), t.zeros([2, 2])), 'matmul', /expected an f32 tensor, got \(\[2, 2\], i32\)/);
    expectError(() => a().indexSelect(0, t.zeros([2])), 'indexSelect', /index must be an i32 tensor, got \(\[2\], f32\)/);
    expectError(() => t.embedding(t.zeros([2]), t.zeros([4, 3])), 'embedding', /index must be an i32 tensor/);
    expectError(() => t.zeros([2], { dtype: 'i32' }).requiresGrad_(), 'requiresGrad_', /only f32 tensors can require gradients, got i32/);
    expectError(() => t.tensor([1], { dtype: 'f64' as 'f32' }), 'tensor', /unknown dtype f64/);
    expectError(() => t.crossEntropy(a(), t.zeros([2])), 'crossEntropy', /index must be an i32 tensor/);
  });
  it('bad axes and arguments', () => {
    expectError(() => a().sum(2), 'sum', /axis 2 is out of range for a tensor of rank 2 \(expected -2 <= axis < 2\)/);
    expectError(() => a().softmax(-3), 'softmax', /axis -3 is out of range/);
    expectError(() => a().permute([0, 0]), 'permute', /not a permutation/);
    expectError(() => a().sum([1, 1]), 'sum', /repeated axis/);
    expectError(() => a().dropout(1.5), 'dropout', /p must be in \[0, 1\), got 1.5/);
    expectError(() => a().clamp(2, 1), 'clamp', /min \(2\) must not exceed max \(1\)/);
    expectError(() => a().gelu('fast' as 'tanh'), 'gelu', /approximate must be 'none' or 'tanh'/);
    expectError(() => a().var(1, false, 3), 'var', /needs more than 3 elements/);
    expectError(() => t.crossEntropy(a(), t.zeros([2], { dtype: 'i32' }), { reduction: 'avg' as 'mean' }), 'crossEntropy', /reduction must be/);
  });
  it('use after dispose', async () => {
    const x = a();
    x.dispose();
    expectError(() => x.add(1), 'add', /tensor \(\[2, 3\], f32\) was used after dispose\(\)/);
    expectError(() => x.reshape([6]), 'reshape', /used after dispose/);
    await expect(x.toArray()).rejects.toThrow(/toArray: tensor .* was used after dispose/);
  });
  it('tensors from two devices', async () => {
    const other = await t.createDevice();
    const x = t.zeros([2], { device: other });
    expectError(() => t.zeros([2]).add(x), 'add', /tensors are on different devices/);
    expectError(() => t.matmul(t.zeros([2, 2]), t.zeros([2, 2], { device: other })), 'matmul', /different devices/);
    x.dispose();
    other.destroy();
    // a lost or destroyed device surfaces as an error naming the op, not a hang or a crash
    expectError(() => t.zeros([2], { device: other }), 'full', /the device was destroyed/);
  });
  it('an out-of-range index is detected on the GPU and reported at the next readback', async () => {
    const w = t.randn([4, 3]);
    const bad = t.embedding(t.tensor([0, 7], { dtype: 'i32' }), w);
    await expect(bad.toArray()).rejects.toThrow(/embedding|indexSelect.*index was out of range/);
    // the flag is cleared: the next correct use works
    expect((await t.embedding(t.tensor([3], { dtype: 'i32' }), w).toArray()).length).toBe(3);
  });
  it('a target token outside the vocabulary is reported at the next readback', async () => {
    const lp = t.tokenLogProbs(t.randn([2, 5]), t.tensor([1, 9], { dtype: 'i32' }));
    await expect(lp.toArray()).rejects.toThrow(/tokenLogProbs.*target token was outside the vocabulary/);
  });
  it('a failed op leaves no state behind (nothing allocated, graph intact)', async () => {
    const x = t.randn([3, 4], { requiresGrad: true });
    const before = t.memoryStats().liveStorages;
    expect(() => x.matmul(t.zeros([5, 2]))).toThrow(TrimpiError);
    expect(t.memoryStats().liveStorages).toBe(before + 1); // only the zeros operand we created
    x.sum().backward();
    expect((await x.grad!.toArray()).every((v) => v === 1)).toBe(true);
  });
});
