// The differentiable TriMPI losses (VM-CPT, SFT, KL, clipped policy objective) against float64
// references on hand-made inputs: values, metrics, gradients, and finite differences of both.
import { beforeAll, describe, expect, it } from 'vitest';
import * as t from '../../src/index.js';
import { TrimpiError } from '../../src/index.js';
import { expectClose, TOL } from '../helpers.js';
import { Rng } from '../reference/ref.js';
import {
  Agg, KlKindRef, Matrix, PolicyCase, PolicyCfg, expectAnalyticMatchesFd, expectMetrics, f32m, finiteDiff, flat, klRef,
  nextTokenNllRef, policyRef, readMetrics,
} from './reference.js';

const L = t.losses;

beforeAll(async () => {
  await t.init();
});

const AGGS: Agg[] = ['token-mean', 'seq-mean-token-mean', 'seq-mean-token-sum'];
const expectZero = (x: number, label: string): void => expect(Math.abs(x), label).toBe(0); // +0 or −0

// ---- the clipped policy objective ------------------------------------------------------------------

const N = NaN, INF = Infinity;
const MASK: Matrix = [[1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 0, 0]];
const OLD: Matrix = [[-1.0, -2.0, -0.5, -1.2], [-0.7, -1.5, -2.2, INF], [-1.1, -0.9, N, -INF]];
// logp − old per token; masked positions hold garbage
const DELTA: Matrix = [[0.1, 0.5, -0.35, 0.02], [-0.4, 0.25, -0.1, 0], [1.3, -0.05, 0, 0]];
const LOGP: Matrix = OLD.map((row, b) => row.map((o, i) => (MASK[b][i] ? o + DELTA[b][i] : N)));
const REF: Matrix = LOGP.map((row, b) => row.map((x, i) => (MASK[b][i] ? x + [0.3, -0.2, 0.1, -0.5][i] : -INF)));
const ENTROPY: Matrix = [[1.2, 0.8, 2.0, 0.5], [0.3, 1.1, 0.9, N], [1.5, 0.7, N, N]];
// one Â per sequence: seq 0 positive (tokens 1 clipped high, 2 unclipped below), seq 1 negative (token 0 clipped
// low, token 1 unclipped above), seq 2 negative with r = e^1.3 = 3.67 (capped by a dual clip c = 3)
const SEQ_ADV = [1.5, -0.8, -2.0];
// one Â per token, mixed signs inside each sequence
const TOK_ADV: Matrix = [[1.5, 0.8, 0.6, -1.2], [-0.4, -0.8, 2.0, N], [-2.0, 0.9, N, N]];

function policyCase(perToken: boolean): PolicyCase {
  const adv = perToken ? TOK_ADV : MASK.map((row, b) => row.map(() => SEQ_ADV[b]));
  return { logp: f32m(LOGP), old: f32m(OLD), ref: f32m(REF), adv: f32m(adv), mask: MASK, entropy: f32m(ENTROPY) };
}

async function gpuPolicy(c: PolicyCase, cfg: PolicyCfg, perToken: boolean): Promise<{ loss: number; grad: Float32Array; metrics: Record<string, number> }> {
  const logp = t.tensor(c.logp, { requiresGrad: true });
  const rest = {
    oldLogp: t.tensor(c.old), refLogp: t.tensor(c.ref!), mask: t.tensor(c.mask), entropy: t.tensor(c.entropy!),
    advantages: t.tensor(perToken ? c.adv : c.adv.map((row) => row[0])),
  };
  try {
    const out = t.tidy(() => {
      const r = L.policyLoss({ logp, ...rest }, cfg);
      r.loss.backward();
      return r;
    });
    const res = { loss: await out.loss.item(), grad: (await logp.grad!.toArray()) as Float32Array, metrics: await readMetrics(out.metrics) };
    out.loss.dispose();
    for (const m of Object.values(out.metrics)) (m as t.Tensor).dispose();
    return res;
  } finally {
    logp.dispose();
    for (const x of Object.values(rest)) x.dispose();
  }
}

/** Forward, metrics and gradient against the reference, and both gradients against finite differences. */
async function checkPolicy(name: string, c: PolicyCase, cfg: PolicyCfg, perToken: boolean): Promise<ReturnType<typeof policyRef>> {
  const want = policyRef(c, cfg);
  const got = await gpuPolicy(c, cfg, perToken);
  expectClose(`${name}: loss`, [got.loss], [want.loss], TOL.f32.forward);
  expectMetrics(name, got.metrics, want.metrics);
  expectClose(`${name}: grad`, got.grad, flat(want.grad), TOL.f32.grad);
  const T = c.mask[0].length;
  const fd = finiteDiff((x) => policyRef({ ...c, logp: c.mask.map((_, b) => x.slice(b * T, (b + 1) * T)) }, cfg).loss, flat(c.logp).map((v) => (Number.isNaN(v) ? 0 : v)));
  expectAnalyticMatchesFd(name, flat(want.grad), fd);
  expectClose(`${name}: GPU grad vs finite differences`, got.grad, fd, TOL.f32.grad);
  // masked positions: exactly zero gradient, whatever garbage they hold
  flat(c.mask).forEach((m, i) => { if (!m) expectZero(got.grad[i], `${name}: grad at masked position ${i}`); });
  return want;
}

const GRPO_CFG = L.GRPO.loss as PolicyCfg;
const DAPO_CFG = L.DAPO.loss as PolicyCfg;

describe('policyLoss (clipped objective)', () => {
  it('GRPO: both clipping sides active, positive and negative Â, k3 KL, padding with NaN/inf', async () => {
    const want = await checkPolicy('GRPO', policyCase(false), GRPO_CFG, false);
    expect(want.metrics.clipFracHigh).toBeGreaterThan(0);
    expect(want.metrics.clipFracLow).toBeGreaterThan(0);
    expect(want.metrics.kl).toBeGreaterThan(0);
  });

  it('DAPO: clip-higher 0.28, no KL', async () => {
    const want = await checkPolicy('DAPO', policyCase(false), DAPO_CFG, false);
    expect(want.metrics.kl).toBeUndefined();
  });

  it('every aggregation mode × KL estimator, per-sequence and per-token Â, with and without dual clip', async () => {
    let k = 0;
    for (const lossAgg of AGGS) {
      for (const kind of [null, 'k1', 'k2', 'k3'] as (KlKindRef | null)[]) {
        const perToken = k % 2 === 0;
        const cfg: PolicyCfg = { clipLow: 0.2, clipHigh: 0.3, lossAgg, kl: kind ? { coef: 0.05, kind } : null, ...(k % 3 === 0 ? { dualClip: 3 } : {}) };
        await checkPolicy(`${lossAgg} kl=${kind} dual=${cfg.dualClip} perToken=${perToken}`, policyCase(perToken), cfg, perToken);
        k++;
      }
    }
  });

  it('dual clip caps the loss of a negative-advantage token with a huge ratio', async () => {
    const cfg: PolicyCfg = { ...GRPO_CFG, dualClip: 3 };
    const want = await checkPolicy('dual clip', policyCase(false), cfg, false);
    expect(want.metrics.dualClipFrac).toBeCloseTo(1 / 9, 12);
    expect(want.pgTok[2][0]).toBeCloseTo(2.0 * 3, 6); // −c·Â, not −r·Â = 7.3
  });

  it('masked positions contribute nothing: garbage there leaves loss and gradients bit-identical', async () => {
    const zeros = (m: Matrix): Matrix => m.map((row, b) => row.map((x, i) => (MASK[b][i] ? x : 0)));
    for (const perToken of [false, true]) {
      const c = policyCase(perToken);
      const clean: PolicyCase = { ...c, logp: zeros(c.logp), old: zeros(c.old), ref: zeros(c.ref!), adv: zeros(c.adv), entropy: zeros(c.entropy!) };
      const a = await gpuPolicy(c, GRPO_CFG, perToken);
      const b = await gpuPolicy(clean, GRPO_CFG, perToken);
      expect(Number.isFinite(a.loss)).toBe(true);
      expect(a.loss).toBe(b.loss);
      expect([...a.grad]).toEqual([...b.grad]);
      expect(a.metrics).toEqual(b.metrics);
    }
  });

  it('the log-ratio is clamped: r = e^±100 leaves the loss finite and the gradient 0 (exp alone would overflow to inf)', async () => {
    const c = policyCase(false);
    c.logp[0][1] = c.old[0][1] + 100; // Â > 0: clipped high
    c.logp[0][0] = c.old[0][0] - 100; // Â > 0: r = e^-20, unclipped
    c.logp[1][1] = c.old[1][1] + 100; // Â < 0: capped by the dual clip
    const got = await gpuPolicy(c, { ...GRPO_CFG, kl: null, dualClip: 3 }, false);
    expect(got.grad.every(Number.isFinite)).toBe(true);
    const want = await checkPolicy('clamped log-ratio', c, { ...GRPO_CFG, kl: null, dualClip: 3 }, false);
    for (const [b, i] of [[0, 1], [0, 0], [1, 1]]) {
      expectZero(want.grad[b][i], `reference grad [${b}, ${i}]`);
      expectZero(got.grad[b * 4 + i], `GPU grad [${b}, ${i}]`);
    }
  });
});

// ---- KL estimators -----------------------------------------------------------------------------------

describe('klPenalty', () => {
  const logp: Matrix = f32m([[-1.0, -0.5, -2.0, -3.0], [-0.2, -4.0, -1.5, -60]]);
  const ref: Matrix = f32m([[-1.0, -1.0, -1.0, -1.0], [-0.9, -0.1, -1.6, -1.0]]); // last: ref − logp = 59, clamped
  const cot: Matrix = [[1, -0.5, 2, 0.25], [-1.5, 0.75, 1, 0.5]];

  for (const kind of ['k1', 'k2', 'k3'] as const) {
    it(`${kind}: values and gradient w.r.t. logp`, async () => {
      const want = logp.map((row, b) => row.map((x, i) => klRef(x, ref[b][i], kind)));
      const lp = t.tensor(logp, { requiresGrad: true });
      const r = t.tensor(ref);
      try {
        const kl = t.tidy(() => {
          const k = L.klPenalty(lp, r, kind);
          k.backward(t.tensor(cot));
          return k;
        });
        expectClose(`${kind}: value`, await kl.toArray(), flat(want.map((row) => row.map((k) => k.value))), TOL.f32.forward);
        kl.dispose();
        const analytic = flat(want.map((row, b) => row.map((k, i) => k.grad * cot[b][i])));
        expectClose(`${kind}: grad`, await lp.grad!.toArray(), analytic, TOL.f32.grad);
        // the estimators are per token: differentiate each one alone (a sum with e^20 in it would drown the others)
        const fd = flat(logp).map((x, j) => finiteDiff(([v]) => klRef(v, flat(ref)[j], kind).value, [x])[0] * flat(cot)[j]);
        expectAnalyticMatchesFd(kind, analytic, fd);
        expectClose(`${kind}: GPU grad vs finite differences`, await lp.grad!.toArray(), fd, TOL.f32.grad);
        if (kind === 'k3') {
          expectZero(want[1][3].grad, 'k3 grad past the clamp');
          expect(want.flat().every((k) => k.value >= 0)).toBe(true);
        }
      } finally {
        lp.dispose();
        r.dispose();
      }
    });
  }
});

// ---- VM-CPT and SFT -----------------------------------------------------------------------------------

/** Hand-sized logits (B, T, V) with huge values at masked positions, and tokens. */
function lmCase(seed: number, V: number, mask: Matrix): { logits: number[][][]; tokens: Matrix } {
  const T = mask[0].length;
  const rng = new Rng(seed);
  const tokens = mask.map((row) => row.map(() => rng.int(0, V)));
  const logits = mask.map((row) => row.map((_, i) => Array.from({ length: V }, () =>
    Math.fround(i + 1 < T && !row[i + 1] ? 1e4 * rng.normal() : 2 * rng.normal()))));
  return { logits, tokens };
}

async function gpuLm(fn: typeof L.vmcptLoss | typeof L.sftLoss, logits: number[][][], tokens: Matrix, mask: Matrix):
Promise<{ loss: number; grad: Float32Array; metrics: Record<string, number> }> {
  const lg = t.tensor(logits, { requiresGrad: true });
  const tk = t.tensor(tokens, { dtype: 'i32' });
  const m = t.tensor(mask);
  try {
    const out = t.tidy(() => {
      const r = fn(lg, tk, m);
      r.loss.backward();
      return r;
    });
    const res = { loss: await out.loss.item(), grad: (await lg.grad!.toArray()) as Float32Array, metrics: await readMetrics(out.metrics) };
    for (const x of [out.loss, ...Object.values(out.metrics)]) (x as t.Tensor).dispose();
    return res;
  } finally {
    for (const x of [lg, tk, m]) x.dispose();
  }
}

async function checkLm(name: string, fn: typeof L.vmcptLoss | typeof L.sftLoss, mode: Agg, mask: Matrix, seed: number): Promise<{ loss: number; metrics: Record<string, number> }> {
  const B = mask.length, T = mask[0].length, V = 5;
  const { logits, tokens } = lmCase(seed, V, mask);
  const want = nextTokenNllRef(logits, tokens, mask, mode);
  const got = await gpuLm(fn, logits, tokens, mask);
  expectClose(`${name}: loss`, [got.loss], [want.loss], TOL.f32.forward);
  const analytic = want.grad.flat(2);
  expectClose(`${name}: grad w.r.t. logits`, got.grad, analytic, TOL.f32.grad);
  const unflat = (x: number[]): number[][][] => logits.map((s, b) => s.map((_, i) => x.slice((b * T + i) * V, (b * T + i + 1) * V)));
  const fd = finiteDiff((x) => nextTokenNllRef(unflat(x), tokens, mask, mode).loss, logits.flat(2));
  expectAnalyticMatchesFd(name, analytic, fd);
  expectClose(`${name}: GPU grad vs finite differences`, got.grad, fd, TOL.f32.grad);
  // logits whose prediction is masked (and those of the last position) get exactly zero gradient
  for (let b = 0; b < B; b++) for (let i = 0; i < T; i++) {
    if (i + 1 < T && mask[b][i + 1]) continue;
    for (let v = 0; v < V; v++) expectZero(got.grad[(b * T + i) * V + v], `${name}: grad at masked [${b}, ${i}, ${v}]`);
  }
  return { loss: got.loss, metrics: got.metrics };
}

describe('vmcptLoss and sftLoss', () => {
  // token 0 is never a target; 0 = image token or padding
  const TEXT: Matrix = [[1, 1, 0, 0, 1, 1, 1], [1, 1, 1, 0, 1, 0, 0], [1, 0, 1, 1, 1, 1, 1]];

  it('VM-CPT: per-sequence mean over text tokens, then batch mean; image tokens contribute nothing', async () => {
    const { metrics } = await checkLm('vmcpt', L.vmcptLoss, 'seq-mean-token-mean', TEXT, 11);
    expect(metrics.tokens).toBe(4 + 3 + 5);
  });

  it('VM-CPT: a sequence without text tokens is left out of the batch mean', async () => {
    const mask: Matrix = [TEXT[0], [1, 0, 0, 0, 0, 0, 0], TEXT[2]];
    const { loss } = await checkLm('vmcpt empty row', L.vmcptLoss, 'seq-mean-token-mean', mask, 12);
    const { logits, tokens } = lmCase(12, 5, mask);
    const two = nextTokenNllRef([logits[0], logits[2]], [tokens[0], tokens[2]], [mask[0], mask[2]], 'seq-mean-token-mean');
    expectClose('vmcpt: empty row left out', [loss], [two.loss], TOL.f32.forward);
  });

  it('SFT: token mean over response tokens', async () => {
    const RESP: Matrix = [[0, 0, 0, 1, 1, 1, 0], [0, 0, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 1, 1]];
    const { metrics } = await checkLm('sft', L.sftLoss, 'token-mean', RESP, 13);
    expect(metrics.tokens).toBe(3 + 5 + 2);
  });

  it('textTokenMask marks visual tokens and padding with 0', () => {
    expect(L.textTokenMask([[1, 7, 7, 4, 5, 0], [2, 9, 7, 3, 0, 0]], [7, 9], 0)).toEqual([[1, 0, 0, 1, 1, 0], [1, 0, 0, 1, 0, 0]]);
  });
});

// ---- errors --------------------------------------------------------------------------------------------

function expectTrimpiError(fn: () => unknown, op: string, message: RegExp): void {
  let caught: unknown;
  try {
    t.tidy(fn);
  } catch (e) {
    caught = e;
  }
  expect(caught, `expected ${op} to throw`).toBeInstanceOf(TrimpiError);
  expect((caught as TrimpiError).op).toBe(op);
  expect((caught as TrimpiError).message).toMatch(message);
}

describe('bad input is a TrimpiError naming the function, the shapes and what was expected', () => {
  const z = (shape: number[]): t.Tensor => t.zeros(shape);
  const base = (): { logp: t.Tensor; oldLogp: t.Tensor; advantages: t.Tensor; mask: t.Tensor } =>
    ({ logp: z([2, 3]), oldLogp: z([2, 3]), advantages: z([2]), mask: z([2, 3]) });

  it('policyLoss', () => {
    expectTrimpiError(() => L.policyLoss({ ...base(), oldLogp: z([2, 4]) }, DAPO_CFG), 'policyLoss',
      /oldLogp must be an f32 tensor of shape \[2, 3\] \(the shape of logp\), got \(\[2, 4\], f32\)/);
    expectTrimpiError(() => L.policyLoss({ ...base(), advantages: z([3]) }, DAPO_CFG), 'policyLoss',
      /advantages must be an f32 tensor of shape \[2\] or \[2, 3\].*got \(\[3\], f32\)/);
    expectTrimpiError(() => L.policyLoss(base(), GRPO_CFG), 'policyLoss', /config.kl is set .* but no refLogp was given/);
    expectTrimpiError(() => L.policyLoss(base(), { ...DAPO_CFG, dualClip: 0.5 }), 'policyLoss', /dualClip must be > 1, got 0.5/);
    expectTrimpiError(() => L.policyLoss({ ...base(), mask: t.zeros([2, 3], { dtype: 'i32' }) }, DAPO_CFG), 'policyLoss',
      /mask must be an f32 tensor of shape \[2, 3\].*got \(\[2, 3\], i32\)/);
  });

  it('klPenalty, aggregateLoss, vmcptLoss, sftLoss', () => {
    expectTrimpiError(() => L.klPenalty(z([2, 3]), z([3, 2]), 'k3'), 'klPenalty', /refLogp must be an f32 tensor of shape \[2, 3\]/);
    expectTrimpiError(() => L.klPenalty(z([2, 3]), z([2, 3]), 'k4' as 'k3'), 'klPenalty', /kind must be one of k1, k2, k3, got k4/);
    expectTrimpiError(() => L.aggregateLoss(z([2, 3]), z([2, 3]), 'mean' as Agg), 'aggregateLoss', /mode must be one of token-mean/);
    expectTrimpiError(() => L.aggregateLoss(z([6]), z([6]), 'token-mean'), 'aggregateLoss', /lossMat must be a \(B, T\) tensor, got \(\[6\], f32\)/);
    const tokens = t.zeros([2, 4], { dtype: 'i32' });
    expectTrimpiError(() => L.vmcptLoss(z([2, 4, 5]), tokens, z([2, 3])), 'vmcptLoss', /textMask must be an f32 0\/1 tensor of shape \[2, 4\]/);
    expectTrimpiError(() => L.sftLoss(z([2, 4]), tokens, z([2, 4])), 'nextTokenLogProbs', /logits must be an f32 tensor \(B, T, V\)/);
    expectTrimpiError(() => L.sftLoss(z([2, 4, 3]), tokens, z([2, 5])), 'sftLoss', /responseMask must be an f32 0\/1 tensor of shape \[2, 4\]/);
    tokens.dispose();
  });
});
