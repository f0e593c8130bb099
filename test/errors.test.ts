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
    expectError(() => t.zeros([2], { device: other }), 'zeros', /the device was destroyed/);
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
  it('an out-of-range index whose result is never read is reported at the next unrelated readback, naming the op that received it', async () => {
    const w = t.randn([4, 3]);
    const unrelated = t.tensor([1, 2, 3]);
    // embedding receives the bad id (it selects rows through indexSelect: the error still names embedding)
    t.embedding(t.tensor([0, 7], { dtype: 'i32' }), w).dispose();
    let err: unknown;
    try {
      await unrelated.sum().item();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TrimpiError);
    expect((err as TrimpiError).op).toBe('embedding');
    expect((err as TrimpiError).message).toMatch(/embedding: an index was outside \[0, 4\): ids \(\[2\], i32\) into the 4 rows of weight \(\[4, 3\], f32\) \(detected on the GPU, reported at toArray\)/);
    expect(await unrelated.sum().item()).toBe(6);
    // crossEntropy's targets: named crossEntropy, not the tokenLogProbs kernel it runs on; a second
    // bad call in the same window is counted too
    t.crossEntropy(t.randn([2, 5]), t.tensor([1, 9], { dtype: 'i32' })).dispose();
    t.gather(w, 0, t.tensor([[5, 0, 0]], { dtype: 'i32' })).dispose();
    await expect(unrelated.sum().item()).rejects.toThrow(/^crossEntropy: a target was outside the classes \[0, 5\).*1 more failed check\(s\): gather/);
    expect(await unrelated.sum().item()).toBe(6);
  });
  it('dtypes are checked in JS by every creation op and cast (no shader compile error, later ops unharmed)', async () => {
    expectError(() => t.zeros([2], { dtype: 'f64' as 'f32' }), 'zeros', /unknown dtype f64 \(expected 'f32' or 'i32'\)/);
    expectError(() => t.ones([2], { dtype: 'int32' as 'f32' }), 'ones', /unknown dtype int32/);
    expectError(() => t.full([2], 1, { dtype: 'bool' as 'f32' }), 'full', /unknown dtype bool/);
    expectError(() => t.arange(3, undefined, 1, { dtype: 'f16' as 'f32' }), 'arange', /unknown dtype f16/);
    expectError(() => t.zeros([2]).cast('u8' as 'f32'), 'cast', /unknown dtype u8/);
    expectError(() => t.oneHot(t.tensor([1], { dtype: 'i32' }), 3, { dtype: 'f64' as 'f32' }), 'oneHot', /unknown dtype f64/);
    expectError(() => t.randn([2], { dtype: 'i32' }), 'randn', /dtype must be 'f32'.*got 'i32'/);
    expectError(() => t.rand([2], { dtype: 'i32' }), 'rand', /dtype must be 'f32'/);
    expectError(() => t.zeros([2], { dtype: 'i32', requiresGrad: true }), 'zeros', /only f32 tensors can require gradients/);
    expectError(() => t.full([2], 2 ** 40, { dtype: 'i32' }), 'full', /i32 tensor holds integers/);
    expectError(() => t.tensor([NaN], { dtype: 'i32' }), 'tensor', /i32 tensor holds integers .* got NaN at index 0/);
    expect([...await t.zeros([2]).add(1).toArray()]).toEqual([1, 1]);
  });
  it('public arguments are validated before any GPU work: the op, the argument and what was expected', async () => {
    const x = t.ones([2, 3]);
    const scalar = t.tensor(5);
    const before = t.memoryStats().liveStorages;
    expectError(() => t.sum(x, null as unknown as number), 'sum', /axis must be an integer, a list of integers, or undefined \(every axis\), got null/);
    expectError(() => t.matmul(x, 'x' as unknown as t.Tensor), 'matmul', /b must be a Tensor, got the string "x"/);
    expectError(() => t.add(x, {} as unknown as number), 'add', /b must be a Tensor or a number, got an object/);
    expectError(() => t.tensor(['a'] as unknown as number[]), 'tensor', /data must hold numbers, got the string "a" at index 0/);
    expectError(() => t.tensor([1, [2]] as unknown as number[]), 'tensor', /ragged/);
    expectError(() => scalar.slice(0, 0, 1), 'slice', /cannot slice a 0-d tensor/);
    expectError(() => x.sum(0, 'yes' as unknown as boolean), 'sum', /keepdim must be true or false, got the string "yes"/);
    expectError(() => x.slice(0, 0.5), 'slice', /start must be an integer, got 0.5/);
    expectError(() => t.zeros([-1]), 'zeros', /shape must be a list of non-negative integers, got \[-1\]/);
    expectError(() => t.zeros('x' as unknown as number[]), 'zeros', /shape must be a list of non-negative integers, got the string "x"/);
    expectError(() => x.clamp(NaN), 'clamp', /min must be a number, got NaN/);
    expectError(() => t.softmax(x, 1.5), 'softmax', /axis must be an integer, got 1.5/);
    expectError(() => t.layerNorm(x, [3], undefined, undefined, -1), 'layerNorm', /eps must be a finite number >= 0, got -1/);
    expectError(() => t.manualSeed(NaN), 'manualSeed', /seed must be an integer/);
    expectError(() => t.randn([2], { std: -1 }), 'randn', /std must be a finite number >= 0, got -1/);
    expectError(() => t.concat('x' as unknown as t.Tensor[]), 'concat', /xs must be an array of tensors/);
    expect(t.memoryStats().liveStorages).toBe(before);
    t.tidy(() => expectError(() => t.ones([2], { requiresGrad: true }).sum().backward(3 as unknown as t.Tensor), 'backward', /gradient must be a Tensor, got 3/));
    // checkpoint paths: a TrimpiError at once, no raw ENOENT and no endless recursive mkdir under /proc
    const m = new t.nn.Linear(2, 2);
    await expect(t.nn.saveCheckpoint('', m)).rejects.toThrow(/^saveCheckpoint: dir must be a non-empty path/);
    await expect(t.nn.saveCheckpoint('/proc/trimpi-x', m)).rejects.toThrow(/^saveCheckpoint: cannot create the checkpoint directory \/proc\/trimpi-x/);
    await expect(t.nn.saveCheckpoint('/proc/self/trimpi/x', m)).rejects.toThrow(/^saveCheckpoint: cannot create the checkpoint directory/);
    expect(() => t.nn.loadCheckpoint(undefined as unknown as string, m)).toThrow(/^loadCheckpoint: dir must be a non-empty path/);
    m.dispose();
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

describe('entry points refuse arguments of the wrong kind with a TrimpiError', () => {
  it('module forwards, the VLM, generate, the Trainer and the losses', async () => {
    const lin = new t.nn.Linear(3, 2);
    const emb = new t.nn.Embedding(5, 2);
    const ln = new t.nn.LayerNorm(3);
    const block = new t.nn.TransformerBlock(8, 2);
    const model = new t.nn.VisionLanguageModel(t.nn.preset('tiny', 40).model);
    const bad: unknown = -1;
    try {
      expectError(() => lin.forward(bad as t.Tensor), 'Linear.forward', /x must be a Tensor/);
      expectError(() => emb.forward(null as unknown as t.Tensor), 'Embedding.forward', /ids must be a Tensor/);
      expectError(() => ln.forward('x' as unknown as t.Tensor), 'LayerNorm.forward', /x must be a Tensor/);
      expectError(() => block.forward(bad as t.Tensor, { causal: true }), 'TransformerBlock.forward', /x must be a Tensor/);
      expectError(() => model.imageTokens(null as unknown as t.Tensor), 'VisionLanguageModel.imageTokens', /images must be a Tensor/);
      expectError(() => model.forward(null as unknown as t.nn.VlmInputs), 'VisionLanguageModel.forward', /inputs must be/);
      await expect(t.nn.generate(model, [[1, 5]], null, null as unknown as t.nn.GenerateOptions)).rejects.toBeInstanceOf(TrimpiError);
      expectError(() => new t.nn.Trainer(lin, null as unknown as t.nn.TrainerOptions), 'Trainer', /options must be an object/);
      expectError(() => t.losses.policyLoss(null as unknown as t.losses.PolicyLossInputs, t.losses.GRPO.loss), 'policyLoss', /needs an inputs object/);
      expectError(() => t.losses.sftLoss(bad as t.Tensor, bad as t.Tensor, bad as t.Tensor), 'sftLoss', /logits must be a Tensor/);
      expectError(() => t.losses.vmcptLoss(bad as t.Tensor, bad as t.Tensor, bad as t.Tensor), 'vmcptLoss', /logits must be a Tensor/);
    } finally {
      for (const m of [lin, emb, ln, block, model]) m.dispose();
    }
  });
});
