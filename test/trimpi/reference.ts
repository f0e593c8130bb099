// Float64 references for the TriMPI losses: plain loops over JS numbers, no engine code, each with
// its analytic gradient; central finite differences to check those; and the GPU round trip.
import { expect } from 'vitest';
import * as t from '../../src/index.js';
import { expectClose, TOL } from '../helpers.js';

export type Matrix = number[][];
export type Agg = 'token-mean' | 'seq-mean-token-mean' | 'seq-mean-token-sum';

/** The weights w with loss = Σ_{m=1} w·ℓ: every aggregation mode is linear in ℓ. */
export function aggWeights(mask: Matrix, mode: Agg): Matrix {
  const perSeq = mask.map((row) => row.reduce((a, m) => a + m, 0));
  const total = perSeq.reduce((a, n) => a + n, 0);
  const seqs = perSeq.filter((n) => n > 0).length;
  return mask.map((row, b) => row.map((m) => {
    if (!m) return 0;
    if (mode === 'token-mean') return 1 / total;
    if (mode === 'seq-mean-token-mean') return 1 / (perSeq[b] * seqs);
    return 1 / seqs;
  }));
}

/** Σ w·ℓ over the unmasked positions only (masked values are never read, NaN included). */
export function aggregate(l: Matrix, mask: Matrix, mode: Agg): number {
  const w = aggWeights(mask, mode);
  let s = 0;
  l.forEach((row, b) => row.forEach((x, i) => { if (mask[b][i]) s += w[b][i] * x; }));
  return s;
}

export type KlKindRef = 'k1' | 'k2' | 'k3';

/** One token's KL estimate and its derivative w.r.t. logp. */
export function klRef(logp: number, ref: number, kind: KlKindRef): { value: number; grad: number } {
  if (kind === 'k1') return { value: logp - ref, grad: 1 };
  if (kind === 'k2') return { value: 0.5 * (logp - ref) ** 2, grad: logp - ref };
  const raw = ref - logp;
  const x = Math.min(Math.max(raw, -20), 20);
  const inside = raw >= -20 && raw <= 20;
  return { value: Math.exp(x) - x - 1, grad: inside ? 1 - Math.exp(x) : 0 };
}

export interface PolicyCase {
  logp: Matrix;
  old: Matrix;
  adv: Matrix; // per token (a per-sequence Â repeated)
  mask: Matrix;
  ref?: Matrix;
  entropy?: Matrix;
}
export interface PolicyCfg {
  clipLow: number;
  clipHigh: number;
  dualClip?: number;
  kl: { coef: number; kind: KlKindRef } | null;
  lossAgg: Agg;
}

/** The clipped objective written out by cases, with its analytic gradient w.r.t. logp. */
export function policyRef(c: PolicyCase, cfg: PolicyCfg): {
  loss: number; grad: Matrix; pgTok: Matrix; ratio: Matrix; metrics: Record<string, number>;
} {
  const w = aggWeights(c.mask, cfg.lossAgg);
  const B = c.mask.length;
  const T = c.mask[0].length;
  const pgTok: Matrix = [], ratio: Matrix = [], grad: Matrix = [];
  let loss = 0, pgLoss = 0, kl = 0, nTok = 0, nLow = 0, nHigh = 0, nDual = 0, sumRatio = 0, sumOldMinus = 0, sumEnt = 0;
  for (let b = 0; b < B; b++) {
    pgTok.push([]); ratio.push([]); grad.push([]);
    for (let i = 0; i < T; i++) {
      if (!c.mask[b][i]) { pgTok[b].push(NaN); ratio[b].push(NaN); grad[b].push(0); continue; }
      const A = c.adv[b][i];
      const raw = c.logp[b][i] - c.old[b][i];
      const clampedLog = Math.abs(raw) > 20;
      const r = Math.exp(Math.min(Math.max(raw, -20), 20));
      const dr = clampedLog ? 0 : r; // dr/dlogp
      let pg: number, dpg: number;
      const high = A > 0 && r > 1 + cfg.clipHigh;
      const low = A < 0 && r < 1 - cfg.clipLow;
      const dual = cfg.dualClip !== undefined && A < 0 && r > cfg.dualClip;
      if (dual) { pg = -A * cfg.dualClip!; dpg = 0; }
      else if (high) { pg = -A * (1 + cfg.clipHigh); dpg = 0; }
      else if (low) { pg = -A * (1 - cfg.clipLow); dpg = 0; }
      else { pg = -A * r; dpg = -A * dr; }
      let tok = pg, dtok = dpg;
      if (cfg.kl) {
        const k = klRef(c.logp[b][i], c.ref![b][i], cfg.kl.kind);
        tok += cfg.kl.coef * k.value;
        dtok += cfg.kl.coef * k.grad;
        kl += w[b][i] * k.value;
      }
      pgTok[b].push(pg); ratio[b].push(r); grad[b].push(w[b][i] * dtok);
      loss += w[b][i] * tok;
      pgLoss += w[b][i] * pg;
      nTok++; nLow += +low; nHigh += +high; nDual += +dual; sumRatio += r; sumOldMinus += c.old[b][i] - c.logp[b][i];
      if (c.entropy) sumEnt += c.entropy[b][i];
    }
  }
  const n = Math.max(nTok, 1);
  const metrics: Record<string, number> = {
    pgLoss, clipFracLow: nLow / n, clipFracHigh: nHigh / n, approxKl: sumOldMinus / n, ratioMean: sumRatio / n,
  };
  if (cfg.kl) metrics.kl = kl;
  if (cfg.dualClip !== undefined) metrics.dualClipFrac = nDual / n;
  if (c.entropy) metrics.entropy = sumEnt / n;
  return { loss, grad, pgTok, ratio, metrics };
}

export function logSoftmax(row: readonly number[]): number[] {
  const m = Math.max(...row);
  const lse = m + Math.log(row.reduce((a, x) => a + Math.exp(x - m), 0));
  return row.map((x) => x - lse);
}

/**
 * −mean log p of next tokens (VM-CPT and SFT): logits (B, T, V), tokens (B, T), mask over tokens
 * (B, T); with the gradient w.r.t. the logits.
 */
export function nextTokenNllRef(logits: number[][][], tokens: Matrix, mask: Matrix, mode: Agg): { loss: number; grad: number[][][] } {
  const target = mask.map((row) => row.slice(1));
  const lp = logits.map((seq) => seq.slice(0, -1).map(logSoftmax));
  const nll = lp.map((seq, b) => seq.map((row, i) => -row[tokens[b][i + 1]]));
  const w = aggWeights(target, mode);
  const grad = logits.map((seq, b) => seq.map((row, i) => row.map((_, v) => {
    if (i === seq.length - 1 || !target[b][i]) return 0;
    const p = Math.exp(lp[b][i][v]);
    return w[b][i] * (p - (v === tokens[b][i + 1] ? 1 : 0));
  })));
  return { loss: aggregate(nll, target, mode), grad };
}

/** Central differences of a float64 scalar function at x (flat). */
export function finiteDiff(f: (x: number[]) => number, x: readonly number[], h = 1e-6): number[] {
  return x.map((_, i) => {
    const xp = [...x], xm = [...x];
    xp[i] += h;
    xm[i] -= h;
    return (f(xp) - f(xm)) / (2 * h);
  });
}

/** The float64 reference's analytic gradient agrees with its own finite differences. */
export function expectAnalyticMatchesFd(name: string, analytic: readonly number[], fd: readonly number[]): void {
  expectClose(`${name}: analytic vs finite differences (float64)`, analytic, fd, { rtol: 1e-6, atol: 1e-8 });
}

export const flat = (m: readonly (readonly number[])[]): number[] => m.flat();
export const f32 = (x: number): number => Math.fround(x);
/** Rounds every entry to f32: the GPU's inputs, so that the references see the same numbers. */
export const f32m = (m: Matrix): Matrix => m.map((row) => row.map(f32));

/** Reads a record of scalar metric tensors. */
export async function readMetrics(m: object): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(m)) if (v instanceof t.Tensor) out[k] = await v.item();
  return out;
}

/** Compares GPU metrics with the reference's, key by key (the same keys on both sides). */
export function expectMetrics(name: string, got: Record<string, number>, want: Record<string, number>): void {
  expect(Object.keys(got).sort(), `${name}: metric names`).toEqual(Object.keys(want).sort());
  for (const k of Object.keys(want)) expectClose(`${name}: metric ${k}`, [got[k]], [want[k]], TOL.f32.forward);
}
