// The host-side RL pieces: group advantages, PolicyRollout's batch, dynamic sampling, rewards; and
// one PoRo batch run through next-token log-probs and the GRPO loss on the GPU.
import { beforeAll, describe, expect, it } from 'vitest';
import * as t from '../../src/index.js';
import { TrimpiError } from '../../src/index.js';
import { expectClose, TOL } from '../helpers.js';
import { Rng } from '../reference/ref.js';
import { Matrix, PolicyCfg, logSoftmax, policyRef } from './reference.js';

const L = t.losses;

beforeAll(async () => {
  await t.init();
});

/** (R − mean) / (std + ε) with the sample std, written out independently. */
function grpoRef(r: number[], eps = 1e-6): number[] {
  const n = r.length;
  let mean = 0;
  for (const x of r) mean += x / n;
  let ss = 0;
  for (const x of r) ss += (x - mean) * (x - mean);
  const std = Math.sqrt(ss / (n - 1));
  return r.map((x) => (x - mean) / (std + eps));
}

describe('groupAdvantages', () => {
  it('normalizes each group by its own mean and sample std', () => {
    const groups = [[1.0, 0.1, 0.0, 1.0], [0.9, 0.1], [0.0, 1.0, 0.1]];
    const got = L.groupAdvantages(groups);
    groups.forEach((g, i) => expectClose(`group ${i}`, got[i], grpoRef(g), { rtol: 1e-12, atol: 1e-12 }));
    expectClose('Dr.GRPO: no std', L.groupAdvantages([[1.0, 0.1, 0.0, 1.0]], { normalizeByStd: false })[0], [0.475, -0.425, -0.525, 0.475], { rtol: 1e-12, atol: 1e-12 });
    expectClose('eps', L.groupAdvantages([[1, 0]], { eps: 0.5 })[0], [0.5 / (Math.SQRT1_2 + 0.5), -0.5 / (Math.SQRT1_2 + 0.5)], { rtol: 1e-12, atol: 1e-12 });
  });

  it('a singleton group and an all-equal group get exactly 0', () => {
    expect(L.groupAdvantages([[0.7], [0.1, 0.1, 0.1], [1, 1]])).toEqual([[0], [0, 0, 0], [0, 0]]);
    // the plain formula would not give exactly 0 here: the mean of three 0.1 is not 0.1 in floating point
    expect((0.1 + 0.1 + 0.1) / 3).not.toBe(0.1);
  });

  it('rejects empty groups and non-finite rewards', () => {
    expect(() => L.groupAdvantages([[1, 0], []])).toThrow(TrimpiError);
    expect(() => L.groupAdvantages([[1, NaN]])).toThrow(/groupAdvantages: group 0 must hold one or more finite rewards, got \[1, NaN\]/);
  });
});

// ---- PolicyRollout -------------------------------------------------------------------------------------

const PAD = 0;
const r = (tokens: number[], reward: number): { tokens: number[]; reward: number } => ({ tokens, reward });
const GROUPS = [
  { prompt: [1, 2, 3], noPolicy: [r([10, 11, 2], 0.1), r([10, 2], 0.1)], withPolicy: [r([12, 13, 14, 2], 1.0), r([10, 11, 2], 0.1)] },
  { prompt: [1, 4], noPolicy: [r([10, 2], 1.0), r([11, 2], 0.0)], withPolicy: [r([12, 2], 1.0), r([13, 13, 2], 1.0)] },
];

describe('buildPolicyRolloutBatch', () => {
  const batch = L.buildPolicyRolloutBatch(GROUPS, { padId: PAD });

  it('pools the 2G responses of a prompt into one group for the advantages', () => {
    const pooledA = grpoRef([0.1, 0.1, 1.0, 0.1]);
    const pooledB = grpoRef([1.0, 0.0, 1.0, 1.0]);
    expectClose('pooled advantages', batch.advantages, [...pooledA, ...pooledB], { rtol: 1e-12, atol: 1e-12 });
    // two separate groups of G would say something else: prompt A's no-policy group is all 0.1 (Â = 0)
    const separate = L.groupAdvantages([[0.1, 0.1], [1.0, 0.1], [1.0, 0.0], [1.0, 1.0]]).flat();
    expect(separate).toEqual([0, 0, ...grpoRef([1.0, 0.1]), ...grpoRef([1.0, 0.0]), 0, 0]);
    expect(batch.advantages[0]).toBeLessThan(0);
    batch.advantages.forEach((a, i) => expect(Math.abs(a - separate[i]), `row ${i}`).toBeGreaterThan(0.1));
  });

  it('builds every row under the no-policy prompt, right-padded, with the response marked', () => {
    expect(batch.tokens).toEqual([
      [1, 2, 3, 10, 11, 2, 0], [1, 2, 3, 10, 2, 0, 0], [1, 2, 3, 12, 13, 14, 2], [1, 2, 3, 10, 11, 2, 0],
      [1, 4, 10, 2, 0, 0, 0], [1, 4, 11, 2, 0, 0, 0], [1, 4, 12, 2, 0, 0, 0], [1, 4, 13, 13, 2, 0, 0],
    ]);
    expect(batch.responseMask).toEqual([
      [0, 0, 0, 1, 1, 1, 0], [0, 0, 0, 1, 1, 0, 0], [0, 0, 0, 1, 1, 1, 1], [0, 0, 0, 1, 1, 1, 0],
      [0, 0, 1, 1, 0, 0, 0], [0, 0, 1, 1, 0, 0, 0], [0, 0, 1, 1, 0, 0, 0], [0, 0, 1, 1, 1, 0, 0],
    ]);
    expect(batch.group).toEqual([0, 0, 0, 0, 1, 1, 1, 1]);
    expect(batch.withPolicy).toEqual([false, false, true, true, false, false, true, true]);
  });

  it('without policy-in-context responses it is plain GRPO (groups of G)', () => {
    const plain = L.buildPolicyRolloutBatch(GROUPS.map((g) => ({ ...g, withPolicy: [] })), { padId: PAD });
    expect(plain.advantages).toEqual(L.groupAdvantages([[0.1, 0.1], [1.0, 0.0]]).flat());
    expect(plain.tokens.length).toBe(4);
  });

  it('rejects unequal G and empty input', () => {
    expect(() => L.buildPolicyRolloutBatch([{ ...GROUPS[0], withPolicy: [GROUPS[0].withPolicy[0]] }], { padId: PAD }))
      .toThrow(/buildPolicyRolloutBatch: group 0 needs .* got prompt length 3, 2 without and 1 with the policy/);
    expect(() => L.buildPolicyRolloutBatch([], { padId: PAD })).toThrow(TrimpiError);
  });

  it('end to end: old log-probs come from the no-policy prompt, and the GRPO loss matches float64', async () => {
    // a bigram "model": the logits at a position are a row of W picked by the current token
    const V = 16;
    const rng = new Rng(5);
    const table = (): number[][] => Array.from({ length: V }, () => Array.from({ length: V }, () => Math.fround(rng.normal())));
    const [Wnew, Wold, Wref] = [table(), table(), table()];
    // float64, written from the groups directly: log p(o_j | no-policy prompt, o_<j)
    const responseLogp = (W: number[][], prompt: number[], o: number[]): number[] =>
      o.map((tok, j) => logSoftmax(W[j === 0 ? prompt[prompt.length - 1] : o[j - 1]])[tok]);
    const rows = GROUPS.flatMap((g) => [...g.noPolicy, ...g.withPolicy].map((o) => ({ prompt: g.prompt, o: o.tokens })));
    const T = batch.tokens[0].length;
    const place = (W: number[][]): Matrix => rows.map(({ prompt, o }) => {
      const lp = responseLogp(W, prompt, o);
      return Array.from({ length: T - 1 }, (_, i) => (i + 1 >= prompt.length && i + 1 < prompt.length + o.length ? lp[i + 1 - prompt.length] : NaN));
    });
    const mask = place(Wnew).map((row) => row.map((x) => (Number.isNaN(x) ? 0 : 1)));
    const cfg = L.GRPO.loss as PolicyCfg;
    const want = policyRef({ logp: place(Wnew), old: place(Wold), ref: place(Wref), mask, adv: mask.map((row, b) => row.map(() => batch.advantages[b])) }, cfg);

    const tokens = t.tensor(batch.tokens, { dtype: 'i32' });
    const W = [Wnew, Wold, Wref].map((w) => t.tensor(w));
    const respMask = t.tensor(batch.responseMask);
    const adv = t.tensor(batch.advantages);
    try {
      const out = t.tidy(() => {
        const logpOf = (w: t.Tensor): t.Tensor => L.nextTokenLogProbs(t.embedding(tokens, w), tokens);
        const m = L.targetMask(respMask);
        return { loss: L.policyLoss({ logp: logpOf(W[0]), oldLogp: logpOf(W[1]), refLogp: logpOf(W[2]), advantages: adv, mask: m }, cfg).loss, old: logpOf(W[1]), m };
      });
      expect([...(await out.m.toArray())]).toEqual(mask.flat());
      const old = await out.old.toArray();
      expectClose('old log-probs at response tokens', [...old].filter((_, i) => mask.flat()[i]), place(Wold).flat().filter((x) => !Number.isNaN(x)), TOL.f32.forward);
      // under the policy prompt (here: ending in token 9) the first response token would score differently
      expect(Math.abs(responseLogp(Wold, [9], [12])[0] - old[2 * (T - 1) + 2])).toBeGreaterThan(1e-3);
      expectClose('PoRo GRPO loss', [await out.loss.item()], [want.loss], TOL.f32.forward);
      for (const x of Object.values(out)) x.dispose();
    } finally {
      for (const x of [tokens, respMask, adv, ...W]) x.dispose();
    }
  });
});

// ---- dynamic sampling ----------------------------------------------------------------------------------

/** A sampler that replays scripted batches of reward groups and counts its calls. */
function scripted(batches: number[][][]): { sample: (i: number) => Promise<{ rewards: number[] }[]>; calls: () => number } {
  let calls = 0;
  return {
    sample: async (i) => {
      calls++;
      return batches[i].map((rewards) => ({ rewards }));
    },
    calls: () => calls,
  };
}
const rewardsOf = (g: { rewards: number[] }): number[] => g.rewards;

describe('dynamicSampling', () => {
  it('drops all-equal and singleton groups and stops as soon as the target is reached', async () => {
    const s = scripted([[[1, 1], [0.1, 1], [0.5]], [[0, 0], [1, 0], [0, 0.1], [1, 0.9]], [[1, 0]]]);
    const res = await L.dynamicSampling(s.sample, { target: 3, maxRetries: 5, rewardsOf });
    expect(res.groups.map((g) => g.rewards)).toEqual([[0.1, 1], [1, 0], [0, 0.1]]);
    expect(s.calls()).toBe(2);
    expect(res).toMatchObject({ complete: true, batches: 2, sampled: 7, dropped: 3, surplus: 1 });
    expect(res.message).toBe('dynamic sampling: kept 3 groups after 2 batches; 7 sampled, 3 dropped for equal rewards, 1 left over');
  });

  it('reports the retry limit: 1 + maxRetries batches, then what it has', async () => {
    const batches = Array.from({ length: 30 }, (_, i) => (i === 4 ? [[0, 1], [1, 1]] : [[0.1, 0.1], [1, 1]]));
    const s = scripted(batches);
    const res = await L.dynamicSampling(s.sample, { target: 2, maxRetries: 20, rewardsOf });
    expect(s.calls()).toBe(21);
    expect(res).toMatchObject({ complete: false, batches: 21, sampled: 42, dropped: 41, surplus: 0 });
    expect(res.groups.map((g) => g.rewards)).toEqual([[0, 1]]);
    expect(res.message).toBe('dynamic sampling: retry limit reached after 21 batches (maxRetries 20): kept 1 of 2 groups; 42 sampled, 41 dropped for equal rewards');
    const once = scripted([[[1, 1]], [[0, 1]]]);
    expect((await L.dynamicSampling(once.sample, { target: 1, maxRetries: 0, rewardsOf })).complete).toBe(false);
    expect(once.calls()).toBe(1);
  });

  it('takes a synchronous sampler and rejects a bad target', async () => {
    const res = await L.dynamicSampling(() => [{ rewards: [0, 1] }], { target: 1, maxRetries: 0, rewardsOf });
    expect(res.complete).toBe(true);
    await expect(L.dynamicSampling(() => [], { target: 0, maxRetries: 1, rewardsOf })).rejects.toThrow(/dynamicSampling: needs an integer target > 0/);
  });

  it('GRPO and DAPO configurations', () => {
    expect(L.GRPO.loss).toEqual({ clipLow: 0.2, clipHigh: 0.3, kl: { coef: 0.01, kind: 'k3' }, lossAgg: 'token-mean' });
    expect(L.DAPO.loss).toEqual({ clipLow: 0.2, clipHigh: 0.28, kl: null, lossAgg: 'token-mean' });
    expect(L.DAPO.dynamicSampling).toEqual({ maxRetries: 20 });
    expect(L.GRPO.dynamicSampling).toBeNull();
    expect(Object.isFrozen(L.GRPO.loss)).toBe(true);
  });
});

// ---- rewards -------------------------------------------------------------------------------------------

describe('rewards', () => {
  const good = '<think> Condition 1: there is a red cube. Respond with Case 3. </think> \\boxed{Case 3}';

  it('lastBoxed: the last box, braces matched', () => {
    expect(L.lastBoxed('\\boxed{Case 1} then \\boxed{Case 2}')).toBe('Case 2');
    expect(L.lastBoxed('\\boxed{{"name": "OCR_v1", "arguments": {"image": "image/image_1.png"}}}')).toBe('{"name": "OCR_v1", "arguments": {"image": "image/image_1.png"}}');
    expect(L.lastBoxed('\\boxed{Case 1')).toBeNull();
    expect(L.lastBoxed('Case 1')).toBeNull();
  });

  it('accuracy: exact match after trimming and collapsing whitespace', () => {
    expect(L.accuracyReward(good, 'Case 3')).toBe(1);
    expect(L.accuracyReward('\\boxed{ Case   3 }', 'Case 3')).toBe(1);
    expect(L.accuracyReward('\\boxed{Case 30}', 'Case 3')).toBe(0);
    expect(L.accuracyReward('\\boxed{case 3}', 'Case 3')).toBe(0);
    expect(L.accuracyReward('Case 3', 'Case 3')).toBe(0);
  });

  it('format: one think block, then one box, then nothing', () => {
    expect(L.formatReward(good)).toBe(1);
    expect(L.formatReward(`  ${good}\n`)).toBe(1);
    expect(L.formatReward('<think></think>\\boxed{x}')).toBe(1);
    for (const bad of [
      '\\boxed{Case 3}', // no think block
      'Sure. <think> a </think> \\boxed{Case 3}', // text before
      '<think> a </think> The answer: \\boxed{Case 3}', // text between
      '<think> a </think> \\boxed{Case 3} done', // text after
      '<think> a </think> \\boxed{Case 3', // unclosed box
      '<think> a <think> b </think> \\boxed{Case 3}', // nested think
      '<think> a </think> \\boxed{Case 3} \\boxed{Case 4}', // two boxes
    ]) expect(L.formatReward(bad), bad).toBe(0);
  });

  it('combined 0.9 / 0.1 by default, weight and accuracy scorer configurable', () => {
    expect(L.computeReward(good, 'Case 3')).toEqual({ reward: 1, accuracy: 1, format: 1, answer: 'Case 3' });
    expect(L.computeReward('\\boxed{Case 3}', 'Case 3').reward).toBeCloseTo(0.9, 15);
    expect(L.computeReward(good, 'Case 2').reward).toBeCloseTo(0.1, 15);
    expect(L.computeReward(good, 'Case 2', { formatWeight: 0.5 }).reward).toBe(0.5);
    const half = L.computeReward(good, 'x', { formatWeight: 0, accuracy: (resp) => (L.lastBoxed(resp)?.startsWith('Case') ? 0.5 : 0) });
    expect(half).toEqual({ reward: 0.5, accuracy: 0.5, format: 1, answer: 'Case 3' });
    expect(() => L.computeReward(good, 'Case 3', { formatWeight: 2 })).toThrow(/computeReward: formatWeight must be in \[0, 1\], got 2/);
  });
});
