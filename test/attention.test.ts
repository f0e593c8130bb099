// The fused attention op, forward and gradients of q, k and v, against the naive composition of the
// float64 reference ops (matmul, mul, maskedFill, softmax): odd sizes, causal with Tq != Tk, key
// padding (fully padded rows give zeros), prefix-LM masks, strided inputs, a non-default scale, the
// other kernel variants (the portable one, and the shapes real GPUs get); and the argument errors.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as t from '../src/index.js';
import { Tensor, TrimpiError } from '../src/index.js';
import { Ref } from './reference/ref.js';
import { helperTestOp, InputSpec, reportChecks } from './helpers.js';
import { setAttentionTiling } from '../src/kernels/attention.js';

beforeAll(async () => {
  await t.init();
});
afterAll(() => reportChecks('attention'));

interface MaskSpec {
  causal?: boolean;
  scale?: number;
  /** a number, or one prefix length per batch (passed as an i32 tensor) */
  prefix?: number | number[];
  /** (B, Tk) of 0/1: 0 = padding */
  pad?: number[][];
}

/** visible[b][i][j] as the op defines it. */
function visible(B: number, Tq: number, Tk: number, m: MaskSpec): boolean[][][] {
  return Array.from({ length: B }, (_, b) => Array.from({ length: Tq }, (_, i) => Array.from({ length: Tk }, (_, j) => {
    if (m.pad && m.pad[b][j] === 0) return false;
    const pre = m.prefix === undefined ? null : typeof m.prefix === 'number' ? m.prefix : m.prefix[b];
    const causal = m.causal || pre !== null;
    return !causal || (pre !== null && j < pre) || j <= i + (Tk - Tq);
  })));
}

/** The naive composition on the float64 reference: softmax(maskedFill(scale q k^T)) v, zero rows that see no key. */
function refAttention(q: Ref, k: Ref, v: Ref, m: MaskSpec): Ref {
  const [B, , Tq, D] = q.shape;
  const Tk = k.shape[2];
  const vis = visible(B, Tq, Tk, m);
  const hidden = new Ref(vis.flat(2).map((x) => (x ? 0 : 1)), [B, 1, Tq, Tk]);
  const rowSeesAKey = new Ref(vis.flatMap((rows) => rows.map((r) => (r.some((x) => x) ? 1 : 0))), [B, 1, Tq, 1]);
  const s = q.matmul(k.transpose(-2, -1)).mul(m.scale ?? 1 / Math.sqrt(D));
  return s.maskedFill(hidden, -1e9).softmax(-1).mul(rowSeesAKey).matmul(v);
}

/** The op with the masks of `m` as GPU tensors. */
function gpuAttention(q: Tensor, k: Tensor, v: Tensor, m: MaskSpec): Tensor {
  return t.attention(q, k, v, {
    causal: m.causal,
    scale: m.scale,
    prefixLength: Array.isArray(m.prefix) ? t.tensor(Int32Array.from(m.prefix)) : m.prefix,
    keyValid: m.pad ? t.tensor(m.pad) : undefined,
  });
}

async function check(name: string, [B, H, Tq, Tk, D]: number[], m: MaskSpec = {}): Promise<void> {
  const qs: InputSpec = [B, H, Tq, D];
  const kvs: InputSpec = [B, H, Tk, D];
  await helperTestOp(`attention ${name} ${JSON.stringify(m)}`, [qs, kvs, kvs],
    (q, k, v) => gpuAttention(q, k, v, m), (q, k, v) => refAttention(q, k, v, m));
}

describe('attention', () => {
  it('odd sizes, causal off and on', async () => {
    // [B, H, Tq, Tk, D]
    const shapes = [[1, 1, 1, 1, 1], [1, 2, 7, 7, 7], [2, 1, 33, 33, 64], [1, 1, 257, 257, 64], [1, 2, 33, 33, 128], [1, 1, 33, 33, 1]];
    for (const s of shapes) for (const causal of [false, true]) await check('', s, { causal });
  });

  it('Tq != Tk: causal queries are the last Tq positions (KV-cache decode)', async () => {
    await check('decode', [2, 2, 1, 33, 64], { causal: true });
    await check('chunk', [1, 2, 7, 33, 7], { causal: true });
    await check('cross', [1, 2, 7, 33, 7], { causal: false });
    // more queries than keys: the first Tq - Tk rows see no key and give zeros
    await check('Tq > Tk', [1, 1, 33, 7, 7], { causal: true });
  });

  it('one query row (the decode kernel: lanes split the keys): padding, a row with no key, prefixes, D up to 128', async () => {
    const pad = [Array.from({ length: 45 }, (_, j) => (j % 4 === 1 || j > 40 ? 0 : 1)), Array(45).fill(0), Array.from({ length: 45 }, (_, j) => (j < 30 ? 0 : 1))];
    await check('one row padded', [3, 3, 1, 45, 12], { causal: true, pad });
    await check('one row D128', [1, 2, 1, 70, 128], { causal: true });
    await check('one row odd D', [2, 1, 1, 9, 7], { causal: false, scale: 0.4 });
    await check('one row prefix', [2, 1, 1, 20, 16], { prefix: [3, 0] });
    await check('one row, one key', [1, 1, 1, 1, 4], { causal: true });
  });

  it('key padding, including fully padded rows (zeros, no NaN)', async () => {
    const Tk = 33;
    const pad = [Array.from({ length: Tk }, (_, j) => (j < 20 ? 1 : 0)), Array.from({ length: Tk }, () => 0)];
    await check('padded', [2, 2, 33, 33, 64], { pad });
    await check('padded causal', [2, 2, 33, 33, 7], { pad, causal: true });
    // left padding with causal: the first queries see only padding
    const left = [Array.from({ length: Tk }, (_, j) => (j < 5 ? 0 : 1)), Array.from({ length: Tk }, (_, j) => (j % 3 === 0 ? 0 : 1))];
    await check('left padded causal', [2, 1, 33, 33, 64], { pad: left, causal: true });
  });

  it('prefix-LM masks: a number and a per-batch i32 tensor', async () => {
    await check('prefix', [2, 2, 33, 33, 64], { prefix: 10 });
    await check('prefix causal', [1, 2, 33, 33, 7], { prefix: 5, causal: true });
    await check('prefix per batch', [3, 1, 33, 33, 64], { prefix: [0, 17, 40] });
    await check('prefix + padding', [3, 1, 7, 33, 7], { prefix: [12, 0, 33], pad: [Array(33).fill(1), Array(33).fill(1).map((x, j) => (j > 30 ? 0 : x)), Array(33).fill(0)] });
  });

  it('non-default scale', async () => {
    await check('scale', [1, 2, 33, 33, 64], { scale: 0.3, causal: true });
    await check('scale 2', [1, 1, 7, 7, 7], { scale: 2 });
  });

  it('strided inputs and a strided upstream gradient', async () => {
    const [B, T, H, D] = [2, 33, 3, 64];
    // q from a permute of (B, T, H, D); k a slice of a longer (B, H, T+4, D); v the transpose of (B, H, D, T)
    await helperTestOp('attention strided', [[B, T, H, D], [B, H, T + 4, D], [B, H, D, T]],
      (q, k, v) => t.attention(q.permute([0, 2, 1, 3]), k.slice(2, 2, T + 2), v.mT, { causal: true }).permute([0, 2, 1, 3]),
      (q, k, v) => refAttention(q.permute([0, 2, 1, 3]), k.slice(2, 2, T + 2), v.transpose(-2, -1), { causal: true }).permute([0, 2, 1, 3]));
    // self-attention: one tensor as q, k and v (its gradient is the sum of the three)
    await helperTestOp('attention self', [[1, 2, 33, 7]], (x) => t.attention(x, x, x, { causal: true }), (x) => refAttention(x, x, x, { causal: true }));
  });

  it('empty sequences: no keys gives zeros, no queries an empty output', async () => {
    const q = t.randn([1, 2, 3, 8], { requiresGrad: true });
    const k = t.zeros([1, 2, 0, 8], { requiresGrad: true });
    const y = t.attention(q, k, k);
    expect([...(await y.toArray())].every((x) => x === 0)).toBe(true);
    y.sum().backward();
    expect([...(await q.grad!.toArray())].every((x) => x === 0)).toBe(true);
    expect([...t.attention(t.zeros([1, 2, 0, 8]), q, q).shape]).toEqual([1, 2, 0, 8]);
    for (const x of [q, k, y]) x.dispose();
  });

  it('gradients only where asked; no gradient under noGrad', async () => {
    const q = t.randn([1, 2, 7, 7], { requiresGrad: true });
    const k = t.randn([1, 2, 7, 7]);
    const v = t.randn([1, 2, 7, 7], { requiresGrad: true });
    t.attention(q, k, v, { causal: true }).sum().backward();
    expect(q.grad).not.toBeNull();
    expect(k.grad).toBeNull();
    expect([...v.grad!.shape]).toEqual([1, 2, 7, 7]);
    // every query's softmax weights sum to 1, so the gradient of sum(out) w.r.t. v is the column sums of P
    const colSums = await v.grad!.sum(3).toArray();
    expect(Array.from(colSums).reduce((a, b) => a + b, 0)).toBeCloseTo(2 * 7 * 7, 3);
    const y = t.noGrad(() => t.attention(q, k, v));
    expect(y.requiresGrad).toBe(false);
    for (const x of [q, k, v, y]) x.dispose();
  });

  describe('kernel variants', () => {
    // 'plain' is the portable variant (no subgroups); WG 64, one row per invocation and constant loop
    // bounds is what real GPUs get; 'sg' with R = 1 and constant bounds is the GPU shape of the
    // subgroup variant (its subgroup is lavapipe's 8 lanes here)
    const variants: [string, Parameters<typeof setAttentionTiling>[0]][] = [
      ['plain', { variant: 'plain' }],
      ['plain, GPU tiling', { variant: 'plain', WG: 64, R: 1, runtimeBounds: false }],
      ['sg, GPU tiling', { variant: 'sg', R: 1, runtimeBounds: false }],
      ['sg, R = 3', { variant: 'sg', R: 3 }],
    ];
    afterAll(() => setAttentionTiling(null));
    for (const [name, tiling] of variants) {
      it(name, async () => {
        setAttentionTiling(tiling);
        try {
          const pad = [Array.from({ length: 33 }, (_, j) => (j % 5 === 0 ? 0 : 1)), Array(33).fill(0)];
          await check(`${name} causal`, [1, 2, 33, 33, 7], { causal: true });
          await check(`${name} decode`, [2, 1, 3, 33, 8], { causal: true, pad });
          await check(`${name} one row`, [2, 2, 1, 33, 12], { causal: true, pad });
          await check(`${name} prefix`, [2, 1, 70, 70, 1], { prefix: [9, 0], scale: 0.7 });
        } finally {
          setAttentionTiling(null);
        }
      });
    }
  });

  it('errors name attention and the shapes', () => {
    const err = (fn: () => unknown, re: RegExp): void => {
      let caught: unknown;
      try {
        fn();
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(TrimpiError);
      expect((caught as TrimpiError).op).toBe('attention');
      expect((caught as TrimpiError).message).toMatch(re);
    };
    t.tidy(() => {
      const q = t.zeros([2, 2, 5, 8]);
      const k = t.zeros([2, 2, 6, 8]);
      err(() => t.attention(t.zeros([1, 1, 4, 129]), t.zeros([1, 1, 4, 129]), t.zeros([1, 1, 4, 129])), /head dimension D = 129 is not supported \(1 <= D <= 128\): got q \[1, 1, 4, 129\]/);
      err(() => t.attention(q, t.zeros([2, 2, 6, 4]), t.zeros([2, 2, 6, 4])), /k must be \(B, H, Tk, D\) with q's B, H and D: got q \[2, 2, 5, 8\], k \[2, 2, 6, 4\]/);
      err(() => t.attention(q, t.zeros([2, 3, 6, 8]), t.zeros([2, 3, 6, 8])), /k must be \(B, H, Tk, D\).*k \[2, 3, 6, 8\]/);
      err(() => t.attention(q, k, t.zeros([2, 2, 7, 8])), /v must have k's shape \(B, H, Tk, D\): got .*v \[2, 2, 7, 8\]/);
      err(() => t.attention(t.zeros([2, 5, 8]), k, k), /q must have shape \(B, H, T, D\), got \(\[2, 5, 8\], f32\)/);
      err(() => t.attention(q, k, k.cast('i32')), /v must be an f32 tensor, got \(\[2, 2, 6, 8\], i32\)/);
      err(() => t.attention(q, k, k, { keyValid: t.ones([2, 5]) }), /keyValid must have shape \(B, Tk\) = \[2, 6\], got \(\[2, 5\], f32\)/);
      err(() => t.attention(q, k, k, { keyValid: t.ones([6]) }), /keyValid must have shape \(B, Tk\) = \[2, 6\], got \(\[6\], f32\)/);
      err(() => t.attention(q, k, k, { prefixLength: t.zeros([3], { dtype: 'i32' }) }), /prefixLength must have shape \(B,\) = \[2\], got \(\[3\], i32\)/);
      err(() => t.attention(q, k, k, { prefixLength: t.zeros([2]) }), /prefixLength must be a number or an i32 tensor of shape \(B,\) = \[2\], got \(\[2\], f32\)/);
      err(() => t.attention(q, k, k, { prefixLength: -1 }), /prefixLength must be a non-negative integer/);
      err(() => t.attention(q, k, k, { scale: NaN }), /scale must be a finite number/);
    });
  });
});
