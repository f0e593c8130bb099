// The worked examples of docs/losses.md: each table and each `name = value` after a
// `<!-- check: NAME -->` marker is read from the page, recomputed in float64 (to the printed digits)
// and on the GPU (to f32 tolerance). The numbers live only in the page.
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import * as t from '../../src/index.js';
import { expectClose, TOL } from '../helpers.js';
import { Matrix, PolicyCfg, klRef, policyRef } from './reference.js';

const L = t.losses;
const DOC = readFileSync(new URL('../../docs/losses.md', import.meta.url), 'utf8');

beforeAll(async () => {
  await t.init();
});

interface Example {
  rows: Record<string, string>[];
  /** `name = number` pairs in the section's text. */
  values: Record<string, string>;
  text: string;
}

/** The section from `<!-- check: name -->` to the next heading or marker: its first table and its values. */
function example(name: string): Example {
  const start = DOC.indexOf(`<!-- check: ${name} -->`);
  expect(start, `docs/losses.md has no check marker '${name}'`).toBeGreaterThanOrEqual(0);
  const lines = DOC.slice(start).split('\n').slice(1);
  const end = lines.findIndex((l) => l.startsWith('## ') || l.startsWith('<!-- check:'));
  const text = lines.slice(0, end < 0 ? undefined : end).join('\n');
  const cells = (l: string): string[] => l.split('|').slice(1, -1).map((c) => c.trim().replace(/^`(.*)`$/, '$1'));
  const tableLines = text.split('\n').filter((l) => l.startsWith('|'));
  const header = tableLines.length ? cells(tableLines[0]) : [];
  const rows = tableLines.slice(2).map((l) => Object.fromEntries(cells(l).map((c, i) => [header[i], c])));
  const values = Object.fromEntries([...text.matchAll(/`([\w.]+) = (-?\d+(?:\.\d+)?)`/g)].map((m) => [m[1], m[2]]));
  return { rows, values, text };
}

/** A printed number agrees with the float64 value to its printed digits (at least 4 decimals). */
function expectPrinted(label: string, printed: string | undefined, value: number): void {
  expect(printed, `${label}: missing from docs/losses.md`).toBeDefined();
  const decimals = Math.max(printed!.split('.')[1]?.length ?? 0, 4);
  const err = Math.abs(Number(printed) - value);
  expect(err, `${label}: the page says ${printed}, float64 gives ${value}`).toBeLessThanOrEqual(0.5 * 10 ** -decimals + 1e-12);
}

const num = (s: string): number => Number(s);

/** Per-sequence lists of (log p, m) from a table with `seq`, `log p` and `m` columns. */
function sequences(ex: Example): { lp: number; m: number }[][] {
  const seqs: { lp: number; m: number }[][] = [];
  for (const r of ex.rows) (seqs[num(r.seq) - 1] ??= []).push({ lp: num(r['log p']), m: num(r.m) });
  return seqs;
}

/**
 * Runs an LM loss on logits built so that the target token (id 0, vocabulary of 2) gets exactly the
 * given log-probs: logits [a, 0] with a = lp − log(1 − e^lp). Padding positions hold garbage.
 */
async function gpuFromLogProbs(fn: (logits: t.Tensor, tokens: t.Tensor, mask: t.Tensor) => { loss: t.Tensor; metrics: object }, seqs: { lp: number; m: number }[][]): Promise<{ loss: number; metrics: Record<string, number> }> {
  const T = 1 + Math.max(...seqs.map((s) => s.length));
  const logits = seqs.map((s) => Array.from({ length: T }, (_, i) => (i < s.length ? [s[i].lp - Math.log1p(-Math.exp(s[i].lp)), 0] : [7, -3])));
  const tokens = seqs.map((s) => Array.from({ length: T }, (_, i) => (i === 0 || i <= s.length ? 0 : 1)));
  const mask = seqs.map((s) => Array.from({ length: T }, (_, i) => (i >= 1 && i <= s.length ? s[i - 1].m : 0)));
  const [lg, tk, m] = [t.tensor(logits), t.tensor(tokens, { dtype: 'i32' }), t.tensor(mask)];
  try {
    const out = t.tidy(() => fn(lg, tk, m));
    const metrics: Record<string, number> = {};
    for (const [k, v] of Object.entries(out.metrics)) metrics[k] = await (v as t.Tensor).item();
    const loss = await out.loss.item();
    for (const x of [out.loss, ...Object.values(out.metrics)]) (x as t.Tensor).dispose();
    return { loss, metrics };
  } finally {
    for (const x of [lg, tk, m]) x.dispose();
  }
}

describe('docs/losses.md worked examples', () => {
  it('1. VM-CPT', async () => {
    const ex = example('vmcpt');
    const seqs = sequences(ex);
    const seqMeans = seqs.map((s) => s.reduce((a, x) => a - (x.m ? x.lp : 0), 0) / s.reduce((a, x) => a + x.m, 0));
    const all = seqs.flat().filter((x) => x.m);
    const want = { loss: seqMeans.reduce((a, x) => a + x, 0) / seqs.length, nll: -all.reduce((a, x) => a + x.lp, 0) / all.length };
    expectPrinted('seq1', ex.values.seq1, seqMeans[0]);
    expectPrinted('seq2', ex.values.seq2, seqMeans[1]);
    expectPrinted('loss', ex.values.loss, want.loss);
    expectPrinted('nll', ex.values.nll, want.nll);
    const got = await gpuFromLogProbs(L.vmcptLoss, seqs);
    expectClose('vmcpt GPU', [got.loss, got.metrics.nll, got.metrics.tokens], [want.loss, want.nll, all.length], TOL.f32.forward);
  });

  it('2. SFT', async () => {
    const ex = example('sft');
    const seqs = sequences(ex);
    const resp = seqs.flat().filter((x) => x.m);
    const want = -resp.reduce((a, x) => a + x.lp, 0) / resp.length;
    const seqMean = seqs.map((s) => s.filter((x) => x.m)).reduce((a, s) => a - s.reduce((b, x) => b + x.lp, 0) / s.length, 0) / seqs.length;
    expectPrinted('loss', ex.values.loss, want);
    expectPrinted('tokens', ex.values.tokens, resp.length);
    expectPrinted('seqMean', ex.values.seqMean, seqMean);
    const got = await gpuFromLogProbs(L.sftLoss, seqs);
    expectClose('sft GPU', [got.loss, got.metrics.tokens], [want, resp.length], TOL.f32.forward);
  });

  it('3. rewards', () => {
    const ex = example('rewards');
    const gold = /`gold = ([^`]+)`/.exec(ex.text)![1];
    expect(ex.rows.length).toBe(4);
    for (const r of ex.rows) {
      const got = L.computeReward(r.response, gold);
      expectPrinted(`accuracy of ${r.response}`, r.accuracy, got.accuracy);
      expectPrinted(`format of ${r.response}`, r.format, got.format);
      expectPrinted(`reward of ${r.response}`, r.reward, 0.9 * got.accuracy + 0.1 * got.format);
      expect(got.reward).toBeCloseTo(0.9 * got.accuracy + 0.1 * got.format, 15);
    }
  });

  it('4. group advantages: two groups of G vs one pooled 2G group (PolicyRollout)', () => {
    const ex = example('advantages');
    const R = ex.rows.map((r) => num(r.R));
    const fromPolicy = ex.rows.map((r) => r.sampled === 'policy in context');
    // independent float64: mean, sample std, (R − mean) / (std + 1e-6); all-equal groups give 0
    const stats = (g: number[]): { mean: number; std: number } => {
      const mean = g.reduce((a, x) => a + x, 0) / g.length;
      return { mean, std: Math.sqrt(g.reduce((a, x) => a + (x - mean) ** 2, 0) / (g.length - 1)) };
    };
    const adv = (g: number[]): number[] => (g.every((x) => x === g[0]) ? g.map(() => 0) : g.map((x) => (x - stats(g).mean) / (stats(g).std + 1e-6)));
    const noPol = R.filter((_, i) => !fromPolicy[i]);
    const pol = R.filter((_, i) => fromPolicy[i]);
    const separate = [...adv(noPol), ...adv(pol)];
    const pooled = adv(R);
    expectPrinted('policy.mean', ex.values['policy.mean'], stats(pol).mean);
    expectPrinted('policy.std', ex.values['policy.std'], stats(pol).std);
    expectPrinted('pooled.mean', ex.values['pooled.mean'], stats(R).mean);
    expectPrinted('pooled.std', ex.values['pooled.std'], stats(R).std);
    ex.rows.forEach((r, i) => {
      expectPrinted(`row ${i + 1}, two groups`, r['Â, two groups of G'], separate[i]);
      expectPrinted(`row ${i + 1}, pooled`, r['Â, pooled 2G'], pooled[i]);
    });
    // the library: groupAdvantages on the two groups, and PolicyRollout's pooled batch
    expectClose('groupAdvantages', L.groupAdvantages([noPol, pol]).flat(), separate, { rtol: 1e-12, atol: 1e-12 });
    const resp = (reward: number): { tokens: number[]; reward: number } => ({ tokens: [5, 2], reward });
    const batch = L.buildPolicyRolloutBatch([{ prompt: [1, 3], noPolicy: noPol.map(resp), withPolicy: pol.map(resp) }], { padId: 0 });
    expectClose('buildPolicyRolloutBatch', batch.advantages, pooled, { rtol: 1e-12, atol: 1e-12 });
  });

  it('5. KL estimators', async () => {
    const ex = example('kl');
    const logp = ex.rows.map((r) => num(r.logp));
    const ref = ex.rows.map((r) => num(r.ref));
    for (const [i, r] of ex.rows.entries()) {
      for (const kind of ['k1', 'k2', 'k3'] as const) expectPrinted(`row ${i + 1} ${kind}`, r[kind], klRef(logp[i], ref[i], kind).value);
      expectPrinted(`row ${i + 1} ∂k2`, r['∂k2/∂logp'], klRef(logp[i], ref[i], 'k2').grad);
      expectPrinted(`row ${i + 1} ∂k3`, r['∂k3/∂logp'], klRef(logp[i], ref[i], 'k3').grad);
    }
    for (const kind of ['k2', 'k3'] as const) {
      const lp = t.tensor([logp], { requiresGrad: true });
      const rf = t.tensor([ref]);
      const k = t.tidy(() => {
        const v = L.klPenalty(lp, rf, kind);
        v.sum().backward();
        return v;
      });
      expectClose(`${kind} GPU`, await k.toArray(), logp.map((x, i) => klRef(x, ref[i], kind).value), TOL.f32.forward);
      expectClose(`${kind} GPU grad`, await lp.grad!.toArray(), logp.map((x, i) => klRef(x, ref[i], kind).grad), TOL.f32.grad);
      for (const x of [k, lp, rf]) x.dispose();
    }
  });

  it('6. clipped objective: GRPO, DAPO, per-token values, metrics and gradients', async () => {
    const ex = example('policy');
    const bySeq = (col: string): Matrix => {
      const out: Matrix = [];
      for (const r of ex.rows) (out[num(r.seq) - 1] ??= []).push(num(r[col]));
      return out;
    };
    const c = { logp: bySeq('logp'), old: bySeq('old logp'), ref: bySeq('ref logp'), adv: bySeq('Â'), mask: bySeq('m') };
    const nTok = c.mask.flat().reduce((a, x) => a + x, 0);
    const grpo = policyRef(c, L.GRPO.loss as PolicyCfg);
    const cfg = L.GRPO.loss;
    // the table, row by row (masked rows show no values and a 0 gradient)
    ex.rows.forEach((r, k) => {
      const b = num(r.seq) - 1;
      const i = ex.rows.slice(0, k).filter((x) => x.seq === r.seq).length;
      const label = `policy row ${k + 1}`;
      expectPrinted(`${label} ∂ℓ/∂logp`, r['∂ℓ/∂logp'], grpo.grad[b][i] * nTok);
      if (!c.mask[b][i]) return;
      const ratio = grpo.ratio[b][i];
      expectPrinted(`${label} ratio`, r.ratio, ratio);
      expectPrinted(`${label} clip(ratio)`, r['clip(ratio)'], Math.min(Math.max(ratio, 1 - cfg.clipLow), 1 + cfg.clipHigh));
      const A = c.adv[b][i];
      expect(r.clipped, `${label} clipped`).toBe(A > 0 && ratio > 1 + cfg.clipHigh ? 'high' : A < 0 && ratio < 1 - cfg.clipLow ? 'low' : '');
      expectPrinted(`${label} ℓ_pg`, r['ℓ_pg'], grpo.pgTok[b][i]);
      expectPrinted(`${label} k3`, r.k3, klRef(c.logp[b][i], c.ref[b][i], 'k3').value);
    });
    const seqMean = policyRef(c, { ...(cfg as PolicyCfg), lossAgg: 'seq-mean-token-mean' });
    const dapo = policyRef(c, L.DAPO.loss as PolicyCfg);
    const v = ex.values;
    for (const k of ['pgLoss', 'kl', 'clipFracHigh', 'clipFracLow', 'ratioMean', 'approxKl']) expectPrinted(`grpo.${k}`, v[`grpo.${k}`], grpo.metrics[k]);
    expectPrinted('grpo.loss', v['grpo.loss'], grpo.loss);
    expectPrinted('grpo.pgLossSeqMean', v['grpo.pgLossSeqMean'], seqMean.metrics.pgLoss);
    expectPrinted('dapo.loss', v['dapo.loss'], dapo.loss);

    // the GPU on the same tokens
    const lp = t.tensor(c.logp, { requiresGrad: true });
    const ins = { oldLogp: t.tensor(c.old), refLogp: t.tensor(c.ref), advantages: t.tensor(c.adv.map((row) => row[0])), mask: t.tensor(c.mask) };
    try {
      const run = async (config: PolicyCfg, backward: boolean): Promise<{ loss: number; metrics: Record<string, number> }> => {
        const out = t.tidy(() => {
          const o = L.policyLoss({ logp: lp, ...ins }, config);
          if (backward) o.loss.backward();
          return o;
        });
        const metrics: Record<string, number> = {};
        for (const [k, x] of Object.entries(out.metrics)) metrics[k] = await (x as t.Tensor).item();
        const loss = await out.loss.item();
        for (const x of [out.loss, ...Object.values(out.metrics)]) (x as t.Tensor).dispose();
        return { loss, metrics };
      };
      const g = await run(L.GRPO.loss as PolicyCfg, true);
      expectClose('GPU GRPO loss', [g.loss], [grpo.loss], TOL.f32.forward);
      for (const k of Object.keys(grpo.metrics)) expectClose(`GPU GRPO ${k}`, [g.metrics[k]], [grpo.metrics[k]], TOL.f32.forward);
      expectClose('GPU GRPO grad', await lp.grad!.toArray(), grpo.grad.flat(), TOL.f32.grad);
      expectClose('GPU DAPO loss', [(await run(L.DAPO.loss as PolicyCfg, false)).loss], [dapo.loss], TOL.f32.forward);
      expectClose('GPU seq-mean pgLoss', [(await run({ ...(cfg as PolicyCfg), lossAgg: 'seq-mean-token-mean' }, false)).metrics.pgLoss], [seqMean.metrics.pgLoss], TOL.f32.forward);
    } finally {
      for (const x of [lp, ...Object.values(ins)]) x.dispose();
    }
  });

  it('7. dynamic sampling', async () => {
    const ex = example('dynamic-sampling');
    const batches = JSON.parse(/`batches = ([^`]+)`/.exec(ex.text)![1]) as number[][][];
    const res = await L.dynamicSampling((i) => batches[i].map((rewards) => ({ rewards })), {
      target: num(ex.values.target), maxRetries: num(ex.values.maxRetries), rewardsOf: (g) => g.rewards,
    });
    const quote = ex.text.split('\n').find((l) => l.startsWith('> '))!.slice(2);
    expect(res.message).toBe(quote);
    expect(res.groups.map((g) => g.rewards)).toEqual([[1.0, 0.1]]);
  });
});
