// The evaluation suite on hand-made model outputs (no model, no GPU): the one \boxed{} extractor,
// Python math in the expression scorer, `trimpi data --depth` refused where it means nothing,
// policy referral (docs/referral.md's worked examples), branching errors, policy override items and
// scoring, prompt-token efficiency, and the forgetting items.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { lastBoxed as boxedFromData, boxContent } from '../../src/trimpi/data/boxed.js';
import { Policy, PolicyNode, clevrResponse, lastBoxed as clevrLastBoxed, policyText, scoreClevr, targetPolicies } from '../../src/trimpi/data/clevr_policy.js';
import { ClevrRecord, PolicyRecord, ToolRecord } from '../../src/trimpi/data/export.js';
import { parseDataArgs, runDataCommand } from '../../src/trimpi/data/cli.js';
import { defaultTokenizer } from '../../src/trimpi/data/tokenizer.js';
import { argumentScore, evalExpression, formatCall, scoreToolCall, toolVersion } from '../../src/trimpi/data/tool_policy.js';
import { accuracyReward, computeReward, formatReward, lastBoxed as rewardLastBoxed } from '../../src/trimpi/losses/rewards.js';
import {
  FRESH_POLICY_OFFSET, OverrideItem, answersOld, branchingErrors, citedIds, forgettingExamples, overrideItems, overridePrompt,
  parseCitedSteps, promptTokenRows, referralScore, summarizeOverride, summarizeReferral, toolReferralScore,
} from '../../src/trimpi/eval/index.js';
import type { MpiData } from '../../src/trimpi/stages/mpi_data.js';

// ---- scorer fixes ---------------------------------------------------------------------------------

describe('one \\boxed{} extractor, braces inside JSON strings skipped', () => {
  const call = { name: 'AddText', arguments: { image: 'image/image_1.png', text: 'a } b {', position: 'mt', color: 'red' } };
  const output = `<think> write it </think> \\boxed{${formatCall(call)}}`;

  it('reads a tool call whose string values hold braces, in every scorer', () => {
    expect(boxedFromData(output)).toBe(formatCall(call));
    expect(clevrLastBoxed(output)).toBe(formatCall(call));
    expect(rewardLastBoxed(output)).toBe(formatCall(call));
    const s = scoreToolCall(output, call);
    expect(s.score).toBe(1);
    expect(s.malformed).toEqual([]);
    expect(formatReward(output)).toBe(1);
    expect(accuracyReward(output, formatCall(call))).toBe(1);
    expect(computeReward(output, formatCall(call)).reward).toBeCloseTo(1, 12);
  });

  it('handles escapes, nesting, clevr answers and unclosed boxes', () => {
    expect(boxedFromData('\\boxed{{"text": "say \\"}\\" now"}}')).toBe('{"text": "say \\"}\\" now"}');
    expect(boxedFromData('x \\boxed{Case 3} y')).toBe('Case 3');
    expect(boxedFromData('\\boxed{Case 1} then \\boxed{Case 2}')).toBe('Case 2');
    expect(boxedFromData('\\boxed{{"a": {"b": 1}}}')).toBe('{"a": {"b": 1}}');
    expect(boxedFromData('\\boxed{Case 3')).toBeNull();
    expect(boxedFromData('no box')).toBeNull();
    // an unbalanced quote: plain brace matching takes over
    expect(boxedFromData('\\boxed{Case "8}')).toBe('Case "8');
    expect(boxContent('ab}cd', 0)).toEqual({ content: 'ab', end: 3 });
    expect(scoreClevr('<think> x </think> \\boxed{Case 2}', 2).correct).toBe(true);
    expect(formatReward('<think> x </think> \\boxed{Case 2} trailing')).toBe(0);
  });
});

describe('evalExpression: Python arithmetic with the math module', () => {
  it('evaluates math functions and constants', () => {
    const cases: [string, number][] = [
      ['math.sqrt(64)', 8], ['math.pow(2, 10)', 1024], ['math.log(8, 2)', 3], ['math.log(math.e)', 1], ['math.exp(0)', 1],
      ['math.sin(0)', 0], ['math.cos(0)', 1], ['math.tan(0)', 0], ['math.floor(2.7)', 2], ['math.ceil(2.1)', 3], ['math.fabs(-3.5)', 3.5],
      ['math.factorial(5)', 120], ['math.log10(1000)', 3], ['math.log2(8)', 3], ['math.hypot(3, 4)', 5], ['math.gcd(12, 18)', 6],
      ['math.comb(5, 2)', 10], ['math.degrees(math.pi)', 180], ['2 * math.pi', 2 * Math.PI], ['math.tau', 2 * Math.PI], ['math.trunc(-2.5)', -2],
      ['abs(-3)', 3], ['max(1, 5, 3)', 5], ['min(4, 2)', 2], ['round(2.5)', 2], ['round(3.5)', 4], ['round(2.675, 1)', 2.7], ['pow(2, 3)', 8],
      ['int(7.9)', 7], ['-math.sqrt(4) ** 2', -4], ['math.sqrt(16) + 2 * 3', 10], ['(1 + 2) * 3', 9],
    ];
    for (const [src, want] of cases) expect(evalExpression(src), src).toBeCloseTo(want, 12);
  });

  it('returns null where Python raises or the text is not arithmetic', () => {
    for (const src of ['math.sqrt(-1)', 'math.log(0)', '1 / 0', '5 // 0', 'math.factorial(-1)', 'math.factorial(2.5)', 'math.nope(1)', 'sqrt(4)',
      'math.sqrt(1, 2)', 'math.pi(2)', 'math.inf', 'import os', 'math.sqrt(', '2 *']) {
      expect(evalExpression(src), src).toBeNull();
    }
  });

  it('makes math.sqrt(64) equal to 2 * 4 in the argument score', () => {
    expect(argumentScore('expression', 'math.sqrt(64)', '2 * 4')).toBe(1);
    expect(argumentScore('expression', 'math.sqrt(63)', '2 * 4')).toBe(0);
    const gold = { name: 'Calculator', arguments: { expression: '2 * 4' } };
    expect(scoreToolCall(`\\boxed{${formatCall({ name: 'Calculator', arguments: { expression: 'math.sqrt(64)' } })}}`, gold).score).toBe(1);
  });
});

describe('trimpi data --depth', () => {
  it('is refused with exit code 2 for tool and sceneqa', async () => {
    for (const setting of ['tool', 'sceneqa']) {
      expect(() => parseDataArgs(['--setting', setting, '--depth', '4', '--seed', '1', '--out', 'x'])).toThrow(/--depth applies to clevr/);
      const err = console.error;
      console.error = () => undefined;
      try {
        expect(await runDataCommand(['--setting', setting, '--depth', '4', '--seed', '1', '--out', 'x'])).toBe(2);
      } finally {
        console.error = err;
      }
    }
    expect('opts' in parseDataArgs(['--setting', 'clevr-t', '--depth', '4', '--seed', '1', '--out', 'x'])).toBe(true);
    expect('opts' in parseDataArgs(['--setting', 'tool', '--seed', '1', '--out', 'x'])).toBe(true);
  });
});

// ---- referral and branching ---------------------------------------------------------------------------

const leaf = (k: number): PolicyNode => ({ kind: 'leaf', case: k });
/** docs/referral.md's policy. */
const POLICY: Policy = {
  name: 'L1-Tasemo', mode: 'T', depth: 2, cases: 4, crops: [],
  root: {
    kind: 'node', id: '1', cond: { type: 'color', value: 'gray' },
    yes: { kind: 'node', id: '1.1', cond: { type: 'shape', value: 'cube' }, yes: leaf(0), no: leaf(1) },
    no: { kind: 'node', id: '1.2', cond: { type: 'material', value: 'metal' }, yes: leaf(2), no: leaf(3) },
  },
};
const DOC = readFileSync(new URL('../../docs/referral.md', import.meta.url), 'utf8');

describe('policy referral (docs/referral.md)', () => {
  it('the doc shows the policy the examples are scored against', () => {
    expect(DOC).toContain('```policy\n' + policyText(POLICY) + '\n```');
  });

  it("scores each of the doc's hand-written responses as the doc says", () => {
    const examples = [...DOC.matchAll(/```response\n([\s\S]*?)\n```\n→ existence ([\d.]+), quote ([\d.]+), branch ([\d.]+), path ([\d.]+): \*\*score ([\d.]+)\*\*/g)];
    expect(examples.length).toBe(5);
    const scores = examples.map((m) => {
      const r = referralScore(m[1], { tree: POLICY.root });
      expect({ existence: r.existence, quote: r.quote, branch: r.branch, path: r.path }, m[1]).toEqual({ existence: Number(m[2]), quote: Number(m[3]), branch: Number(m[4]), path: Number(m[5]) });
      expect(r.score, m[1]).toBeCloseTo(Number(m[6]), 12);
      return r.score;
    });
    expect(scores).toEqual([10, 8.75, 3.75, 7.5, 0]);
  });

  it('gives 10 to every gold CoT of real target policies, and parses the steps', () => {
    const objects = [{ size: 'large', color: 'gray', material: 'metal', shape: 'cube' }, { size: 'small', color: 'gray', material: 'rubber', shape: 'cube' }] as const;
    const gold = clevrResponse(POLICY, objects).response;
    const steps = parseCitedSteps(gold);
    expect(steps.map((s) => [s.id, s.observation, s.next])).toEqual([['1', 'yes', { kind: 'condition', id: '1.1' }], ['1.1', 'yes', { kind: 'case', case: 0 }]]);
    expect(gold.slice(steps[0].start, steps[0].end).trim()).toBe(steps[0].text);
    for (const mode of ['T', 'M'] as const) {
      for (const p of targetPolicies(0, mode, 4, 3)) {
        const r = referralScore(clevrResponse(p, [{ size: 'small', color: 'red', material: 'rubber', shape: 'sphere' }]).response, { tree: p.root });
        expect(r.score, p.name).toBe(10);
      }
    }
    const wrong = referralScore(gold.replace('Go to Condition 1.1', 'Go to Condition 1.2'), { tree: POLICY.root });
    expect(wrong.verdicts.map((v) => [v.wrongBranch, v.brokenPath])).toEqual([[true, false], [false, true]]);
  });

  it('scores ToolPolicy rule citations', () => {
    const profile = { account_type: 'A' as const, credits: 300, age: 40 };
    expect(toolVersion('OCR', profile)).toEqual({ name: 'OCR_v4', rule: 5 });
    const say = (rule: number, name: string): string => `<think> The next step is to read the text in image/image_1.png. The user has account_type A, credits 300, age 40, so by Rule ${rule} use ${name}. </think> \\boxed{}`;
    expect(toolReferralScore(say(5, 'OCR_v4'), { profile }).score).toBe(10);
    expect(toolReferralScore(say(4, 'OCR_v5'), { profile })).toEqual({ score: 10 / 3, existence: 1, rule: 0, version: 0 });
    expect(toolReferralScore(say(30, 'OCR_v4'), { profile })).toEqual({ score: 10 / 3, existence: 0, rule: 0, version: 1 });
    expect(toolReferralScore('<think> The image contains a mathematical expression, so by Rule 7 use MathOCR. </think>', { profile }).score).toBe(10);
    expect(toolReferralScore('\\boxed{}', { profile }).score).toBe(0);
    const s = summarizeReferral([referralScore(DOC.match(/```response\n(.*)\n```/)![1], { tree: POLICY.root }), referralScore('\\boxed{Case 1}', { tree: POLICY.root })]);
    expect(s).toMatchObject({ score: 5, n: 2, existence: 0.5, quote: 0.5, branch: 0.5, path: 0.5, rule: null });
  });
});

describe('branching errors', () => {
  it('counts referenced ids against the gold CoT', () => {
    const gold2 = '<think> Condition 1: a. Go to Condition 1.2. Condition 1.2: b. Respond with Case 2. </think> \\boxed{Case 2}';
    const r = branchingErrors([
      { response: gold2, gold: gold2 },
      { response: '<think> Condition 1: a. Respond with Case 2. </think> \\boxed{Case 2}', gold: gold2 },
      { response: '<think> Condition 1: a. Condition 1.1: b. Condition 1.1.1: c. </think>', gold: gold2 },
      { response: '\\boxed{Case 2}', gold: gold2 },
    ]);
    expect(r.n).toBe(4);
    expect(r.meanAbsDiff).toBe((0 + 1 + 1 + 2) / 4);
    expect(r.meanResponse).toBe((2 + 1 + 3 + 0) / 4);
    expect(r.meanGold).toBe(2);
    expect(r.samePath).toBe(0.25);
    expect(r.byId).toEqual({ 1: { response: 3, gold: 4 }, '1.1': { response: 1, gold: 0 }, '1.1.1': { response: 1, gold: 0 }, '1.2': { response: 1, gold: 4 } });
    expect(Object.keys(r.byId)).toEqual(['1', '1.1', '1.1.1', '1.2']);
    expect(r.byCount).toEqual({ 0: { response: 1, gold: 0 }, 1: { response: 1, gold: 0 }, 2: { response: 1, gold: 4 }, 3: { response: 1, gold: 0 } });
    expect(citedIds('<think> The next step ... (Rule 21). so by Rule 5 use OCR_v4. </think>')).toEqual(['21', '5']);
  });
});

// ---- override ------------------------------------------------------------------------------------------

describe('policy override', () => {
  const policyRecord: PolicyRecord = { name: POLICY.name, mode: 'T', depth: 2, cases: 4, reachable: [0, 1, 2, 3], unreachable: [], text: policyText(POLICY), images: [], crops: [], tree: POLICY.root };
  const scene = { objects: [{ shape: 'sphere', color: 'red', size: 'large', material: 'metal', x: 0, z: 0, rotation: 0, box: [0, 0, 1, 1] }] } as ClevrRecord['scenes'][number];
  const clevr: ClevrRecord = {
    task: 'clevr', id: 'L1-Tasemo/test/0', setting: 'clevr-t', split: 'test', policy: POLICY.name, case: 2, cot: false, images: ['images/test/x.png'],
    prompt: `<image>\nAccording to Policy: ${POLICY.name}, what should be the response for the given image?`, response: '', answer: '\\boxed{Case 2}', scenes: [scene],
  };
  const ocr = { name: 'OCR_v4', arguments: { image: 'image/image_1.png' } };
  const tool: ToolRecord = {
    task: 'tool', id: 'tool/test/0', setting: 'tool', split: 'test', policy: 'ToolPolicy', template: 'read', profile: { account_type: 'A', credits: 300, age: 40 }, query: 'q',
    history: [], target: ocr, rule: 5, images: ['image/image_1.png'], prompt: 'Images:\nimage/image_1.png <image>\nQuery: q\nHistory: none\nWhat is the next tool call?', response: '', answer: '', scenes: [scene],
  };
  const data = { policyOf: () => policyRecord } as unknown as MpiData;

  it("writes the paper's Fig 10 prompt", () => {
    expect(overridePrompt('L1-Tasemo', 'NEW', clevr.prompt)).toBe('Suppose we have an updated Policy: L1-Tasemo as follows:\nNEW\n<image>\nAccording to the updated Policy: L1-Tasemo, what should be the response for the given image?');
    expect(overridePrompt('ToolPolicy', 'NEW', tool.prompt).endsWith('\nHistory: none\nAccording to the updated Policy: ToolPolicy, what is the next tool call?')).toBe(true);
  });

  it('builds items whose gold follows the new policy, and scores following vs the old policy', () => {
    const [c, t] = overrideItems(data, [clevr, tool], 7);
    expect(c.prompt).toContain('Suppose we have an updated Policy: L1-Tasemo as follows:\n--- Policy: L1-Tasemo ---');
    expect(c.prompt).not.toContain(policyText(POLICY));
    expect(c.images).toEqual(['images/test/x.png']);
    expect(c.old).toEqual({ task: 'clevr', case: 2, cases: 4 });
    expect(c.gold.task === 'clevr' && c.changed === (c.gold.case !== 2)).toBe(true);
    // the override rules: 250 < credits <= 750 and account A → OCR_v2 instead of OCR_v4
    expect(t.gold).toEqual({ task: 'tool', call: { name: 'OCR_v2', arguments: ocr.arguments } });
    expect(t.changed).toBe(true);
    const box = (call: object): string => `<think> x </think> \\boxed{${JSON.stringify(call)}}`;
    expect(answersOld(box(ocr), t.old)).toBe(true);

    // hand-made items: 2 changed (one answered by the new policy, one by the old), 1 unchanged and right
    const item = (id: string, gold: number, old: number): OverrideItem => ({ id, prompt: '', images: [], gold: { task: 'clevr', case: gold, cases: 4 }, old: { task: 'clevr', case: old, cases: 4 }, changed: gold !== old });
    const ans = (k: number): string => `<think> x </think> \\boxed{Case ${k}}`;
    const r = summarizeOverride([item('a', 1, 2), item('b', 3, 0), item('c', 2, 2)], [ans(1), ans(0), ans(2)]);
    expect(r).toMatchObject({ follow: 2 / 3, followChanged: 0.5, old: 0.5, n: 3, changed: 2 });
    expect(r.examples.map((e) => [e.score, e.old])).toEqual([[1, false], [0, true], [1, false]]);
  });
});

// ---- efficiency and forgetting items -------------------------------------------------------------

describe('efficiency: prompt tokens with vs without the policy', () => {
  it('covers every setting and depth, and saves most tokens at depth 6', () => {
    const rows = promptTokenRows(defaultTokenizer(), { seed: 0, patches: 64, toolSamples: 6 });
    expect(rows.map((r) => `${r.setting}/${r.depth}`)).toEqual(['clevr-t/2', 'clevr-t/4', 'clevr-t/6', 'clevr-m/2', 'clevr-m/4', 'clevr-m/6', 'tool/null']);
    for (const r of rows) {
      expect(r.tokens.with).toBeGreaterThan(r.tokens.without);
      expect(r.tokenReduction).toBeCloseTo(1 - r.tokens.without / r.tokens.with, 12);
    }
    const t6 = rows[2];
    expect(t6.tokenReduction).toBeGreaterThan(0.9);
    expect(rows[1].tokenReduction).toBeGreaterThan(rows[0].tokenReduction);
    // -M policies carry crops: more positions with the policy than -T at the same depth
    expect(rows[5].positions.with - rows[5].tokens.with).toBeGreaterThan(rows[2].positions.with - rows[2].tokens.with);
  });
});

describe('forgetting items', () => {
  it('are SceneQA questions of each kind and fresh random policies, at the model image size', () => {
    const ex = forgettingExamples({ seed: 0, n: 2 }, 16);
    expect(ex.map((e) => e.group)).toEqual([
      'sceneqa/count', 'sceneqa/count', 'sceneqa/exist', 'sceneqa/exist', 'sceneqa/query', 'sceneqa/query', 'policy/T2', 'policy/T2', 'policy/M2', 'policy/M2', 'policy/T4', 'policy/T4',
    ]);
    for (const e of ex) for (const s of e.scenes) expect([s.width, s.height]).toEqual([16, 16]);
    const targets = new Set([2, 4, 6].flatMap((d) => (['T', 'M'] as const).flatMap((m) => targetPolicies(0, m, d).map((p) => p.name))));
    const named = ex.filter((e) => e.task === 'policy').map((e) => /Policy: (\S+) ---/.exec(e.prompt)![1]);
    expect(named.every((n) => !targets.has(n))).toBe(true);
    expect(FRESH_POLICY_OFFSET).toBeGreaterThan(3000);
    // the same seed, the same items
    expect(forgettingExamples({ seed: 0, n: 2 }, 16).map((e) => e.prompt)).toEqual(ex.map((e) => e.prompt));
    // the gold response scores 1
    for (const e of ex) expect(e.score(e.response), e.group).toBe(1);
  });
});
