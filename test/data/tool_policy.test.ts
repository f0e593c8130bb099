// ToolPolicy without the GPU: the version rules against an independent table-driven oracle, the
// samples (history, tips, JSON target), the policy text, and the scorer with malformed outputs.
import { describe, expect, it } from 'vitest';
import {
  ACCOUNT_TYPES, AccountType, Profile, ToolType, argumentScore, boxIoU, evalExpression, formatCall, randomAttributes,
  randomToolRules, rng, ruleTexts, sampleProfile, scoreToolCall, tokenF1, toolPolicyText, toolPrompt, toolSample, toolVersion, TOOL_TEMPLATES, TOOL_TYPES,
} from '../../src/trimpi/data/index.js';
import type { SceneObject, ToolCall } from '../../src/trimpi/data/index.js';

// ---- the oracle: appendix A as a table of rows (tool, when, version), first match wins ----
type Row = { tool: ToolType; accounts?: AccountType[]; credits?: [number, number]; age?: [number, number]; math?: boolean; name: string };
const INF = Infinity;
const OCR_DEFAULT: Row[] = [
  { tool: 'OCR', math: true, name: 'MathOCR' },
  { tool: 'OCR', credits: [-INF, 250], name: 'OCR_v5' },
  { tool: 'OCR', credits: [250.5, 750], accounts: ['A', 'B'], name: 'OCR_v4' },
  { tool: 'OCR', credits: [250.5, 750], name: 'OCR_v3' },
  { tool: 'OCR', credits: [750.5, INF], age: [-INF, 20], name: 'OCR_v2' },
  { tool: 'OCR', credits: [750.5, INF], name: 'OCR_v1' },
];
const OCR_OVERRIDE: Row[] = [
  { tool: 'OCR', math: true, name: 'MathOCR' },
  { tool: 'OCR', credits: [-INF, 250], name: 'OCR_v1' },
  { tool: 'OCR', credits: [250.5, 750], accounts: ['A', 'B'], name: 'OCR_v2' },
  { tool: 'OCR', credits: [250.5, 750], name: 'OCR_v3' },
  { tool: 'OCR', credits: [750.5, INF], age: [-INF, 20], name: 'OCR_v4' },
  { tool: 'OCR', credits: [750.5, INF], name: 'OCR_v5' },
];
const TABLE: Row[] = [
  { tool: 'ImageDescription', accounts: ['A'], name: 'ImageDescription_v5' },
  { tool: 'ImageDescription', accounts: ['B', 'C'], credits: [500.5, INF], name: 'ImageDescription_v4' },
  { tool: 'ImageDescription', accounts: ['B', 'C'], name: 'ImageDescription_v3' },
  { tool: 'ImageDescription', accounts: ['D'], credits: [500.5, INF], name: 'ImageDescription_v2' },
  { tool: 'ImageDescription', accounts: ['D'], name: 'ImageDescription_v1' },
  { tool: 'GoogleSearch', age: [-INF, 20], name: 'GoogleSearch_v1' },
  { tool: 'GoogleSearch', credits: [-INF, 499], name: 'GoogleSearch_v2' },
  { tool: 'GoogleSearch', name: 'GoogleSearch_v3' },
  { tool: 'TextToImage', accounts: ['A', 'B', 'C'], name: 'TextToImage_v1' },
  { tool: 'TextToImage', credits: [500.5, INF], name: 'TextToImage_v2' },
  { tool: 'TextToImage', name: 'TextToImage_v3' },
  { tool: 'RegionAttributeDescription', accounts: ['A', 'B'], name: 'RegionAttributeDescription_v2' },
  { tool: 'RegionAttributeDescription', name: 'RegionAttributeDescription_v1' },
  { tool: 'CountGivenObject', credits: [-INF, 249], name: 'CountGivenObject_v1' },
  { tool: 'CountGivenObject', credits: [250, 499], name: 'CountGivenObject_v2' },
  { tool: 'CountGivenObject', credits: [500, 749], name: 'CountGivenObject_v3' },
  { tool: 'CountGivenObject', name: 'CountGivenObject_v4' },
  { tool: 'ImageStylization', age: [-INF, 20], name: 'ImageStylization_v1' },
  { tool: 'ImageStylization', age: [21, 59], name: 'ImageStylization_v2' },
  { tool: 'ImageStylization', name: 'ImageStylization_v3' },
];

function oracle(tool: ToolType, p: Profile, math: boolean, override: boolean): string {
  const rows = [...(override ? OCR_OVERRIDE : OCR_DEFAULT), ...TABLE].filter((r) => r.tool === tool);
  if (rows.length === 0) return tool; // single-version tools
  const row = rows.find((r) =>
    (r.math === undefined || r.math === math) && (r.math !== true || math) &&
    (!r.accounts || r.accounts.includes(p.account_type)) &&
    (!r.credits || (p.credits >= r.credits[0] && p.credits <= r.credits[1])) &&
    (!r.age || (p.age >= r.age[0] && p.age <= r.age[1])));
  return row!.name;
}

describe('version rules', () => {
  it('match the table-driven oracle on every account, the credit thresholds and the age thresholds', () => {
    const credits = [0, 1, 249, 250, 251, 499, 500, 501, 600, 749, 750, 751, 999, 1000];
    const ages = [12, 20, 21, 22, 59, 60, 61, 80];
    let n = 0;
    for (const tool of TOOL_TYPES) for (const a of ACCOUNT_TYPES) for (const c of credits) for (const age of ages) for (const math of [false, true]) for (const override of [false, true]) {
      const p: Profile = { account_type: a, credits: c, age };
      expect(toolVersion(tool, p, { math, rules: override ? 'override' : 'default' }).name, `${tool} ${JSON.stringify(p)} math=${math} override=${override}`).toBe(oracle(tool, p, math, override));
      n++;
    }
    expect(n).toBe(14 * 4 * 14 * 8 * 4);
  });

  it('write 24 numbered rules; the cited rule number is the one stating the chosen version', () => {
    expect(ruleTexts()).toHaveLength(24);
    expect(ruleTexts('override')).toHaveLength(24);
    const text = toolPolicyText();
    for (let i = 1; i <= 24; i++) expect(text).toContain(`Rule ${i}: `);
    for (const t of TOOL_TYPES) expect(text).toContain(t);
    const r = rng('cite');
    for (let i = 0; i < 500; i++) {
      const p: Profile = { account_type: r.pick(ACCOUNT_TYPES), credits: r.int(0, 1000), age: r.int(12, 80) };
      for (const tool of TOOL_TYPES) {
        const v = toolVersion(tool, p, { math: tool === 'OCR' && r.bool(0.2) });
        if (v.rule === null) continue;
        expect(ruleTexts()[v.rule - 1]).toContain(v.name === 'MathOCR' ? 'MathOCR' : v.name);
      }
    }
    expect(toolPolicyText('override')).toContain('If credits <= 250, use OCR_v1.'.replace('If', 'if'));
  });

  it('render the appendix text word for word (the rules are data; the MPI target\'s text must not drift)', () => {
    const ocr = (v: number[]): string[] => [`OCR: if credits <= 250, use OCR_v${v[0]}.`, `OCR: if 250 < credits <= 750, use OCR_v${v[1]} if account_type is A or B, else OCR_v${v[2]}.`,
      `OCR: if credits > 750, use OCR_v${v[3]} if age < 21, else OCR_v${v[4]}.`];
    const appendix = (o: string[]): string[] => [
      'ImageDescription: if account_type is A, use ImageDescription_v5.',
      'ImageDescription: if account_type is B or C, use ImageDescription_v4 if credits > 500, else ImageDescription_v3.',
      'ImageDescription: if account_type is D, use ImageDescription_v2 if credits > 500, else ImageDescription_v1.',
      ...o,
      'OCR: if the image contains mathematical expressions, use MathOCR instead.',
      'GoogleSearch: if age < 21, use GoogleSearch_v1.',
      'GoogleSearch: if age >= 21, use GoogleSearch_v2 if credits < 500, else GoogleSearch_v3.',
      'TextToImage: if account_type is A, B or C, use TextToImage_v1.',
      'TextToImage: if account_type is D, use TextToImage_v2 if credits > 500, else TextToImage_v3.',
      'RegionAttributeDescription: if account_type is A or B, use RegionAttributeDescription_v2.',
      'RegionAttributeDescription: if account_type is C or D, use RegionAttributeDescription_v1.',
      'CountGivenObject: if credits < 250, use CountGivenObject_v1.',
      'CountGivenObject: if 250 <= credits < 500, use CountGivenObject_v2.',
      'CountGivenObject: if 500 <= credits < 750, use CountGivenObject_v3.',
      'CountGivenObject: if credits >= 750, use CountGivenObject_v4.',
      'ImageStylization: if age < 21, use ImageStylization_v1.',
      'ImageStylization: if 21 <= age < 60, use ImageStylization_v2.',
      'ImageStylization: if age >= 60, use ImageStylization_v3.',
      'Tip: with several images, describe each image that has not been described yet with ImageDescription before using other tools.',
      'Tip: get a bbox with TextToBbox before using RegionAttributeDescription.',
      'Tip: use the exact image names as arguments.',
      'Tip: for GoogleSearch, use k = 1 for a closed question and k = 4 for an open question.',
    ];
    expect(ruleTexts()).toEqual(appendix(ocr([5, 4, 3, 2, 1])));
    expect(ruleTexts('override')).toEqual(appendix(ocr([1, 2, 3, 4, 5])));
  });
});

// ---- an independent reading of a rule book's text: what the model reads is what scoring uses ----
/** "account_type is B or C", "credits > 500", "250 < credits <= 750" as a predicate. */
function parseTest(t: string): (p: Profile) => boolean {
  const acct = /^account_type is (.+)$/.exec(t);
  if (acct) {
    const vs = acct[1].split(/, | or /);
    return (p) => vs.includes(p.account_type);
  }
  const cmp = (x: number, op: string, y: number): boolean => (op === '<' ? x < y : op === '<=' ? x <= y : op === '>' ? x > y : x >= y);
  const range = /^(\d+) (<=?) (credits|age) (<=?) (\d+)$/.exec(t);
  if (range) return (p) => cmp(Number(range[1]), range[2], p[range[3] as 'credits' | 'age']) && cmp(p[range[3] as 'credits' | 'age'], range[4], Number(range[5]));
  const one = /^(credits|age) (<=?|>=?) (\d+)$/.exec(t);
  if (!one) throw new Error(`unreadable test '${t}'`);
  return (p) => cmp(p[one[1] as 'credits' | 'age'], one[2], Number(one[3]));
}

/** The version a rule text gives a profile (null when its condition does not hold). */
function readRule(text: string, p: Profile): string | null {
  const m = /^(\w+): if (.+?), use (\w+)(?: if (.+), else (\w+))?\.$/.exec(text);
  if (!m) throw new Error(`unreadable rule '${text}'`);
  if (!parseTest(m[2])(p)) return null;
  return m[4] === undefined ? m[3] : parseTest(m[4])(p) ? m[3] : m[5];
}

describe('random rule books (stage 0)', () => {
  it('cover every profile once per tool, and their texts read back to the versions toolVersion gives, with its rule numbers', () => {
    const versioned = TOOL_TYPES.filter((t) => ruleTexts().some((x) => x.startsWith(`${t}: if`) && !x.includes('MathOCR')));
    expect(versioned).toHaveLength(7);
    for (let b = 0; b < 40; b++) {
      const book = randomToolRules(rng('book', b));
      const texts = ruleTexts(book);
      expect(texts.join('\n')).not.toBe(ruleTexts('default').join('\n'));
      expect(texts.slice(-4).every((t) => t.startsWith('Tip: '))).toBe(true);
      const r = rng('profiles', b);
      for (let i = 0; i < 150; i++) {
        const p = i < 75 ? sampleProfile(r, book) : { account_type: r.pick(ACCOUNT_TYPES), credits: r.int(0, 1000), age: r.int(12, 80) };
        for (const tool of versioned) {
          const hits = texts.map((t, k) => [k + 1, t.startsWith(`${tool}: if`) && !t.includes('MathOCR') ? readRule(t, p) : null] as const).filter(([, v]) => v !== null);
          expect(hits, `${tool} ${JSON.stringify(p)} in book ${b}`).toHaveLength(1);
          const v = toolVersion(tool, p, { rules: book });
          expect([v.rule, v.name]).toEqual(hits[0]);
        }
        const m = toolVersion('OCR', p, { rules: book, math: true });
        expect(texts[m.rule! - 1]).toContain('use MathOCR instead');
      }
    }
  });

  it('draw samples whose CoT cites the book\'s own rule and tip numbers', () => {
    const book = randomToolRules(rng('cite-book'));
    const texts = ruleTexts(book);
    let tips = 0;
    for (let i = 0; i < 400; i++) {
      const r = rng('cite-sample', i);
      const imgs = Array.from({ length: r.int(1, 2) }, (_, k) => fakeImage(r, 10 * i + k));
      const s = toolSample(r, imgs, { rules: book });
      expect(scoreToolCall(s.response, s.target).score).toBe(1);
      for (const [, n] of s.response.matchAll(/Rule (\d+)/g)) {
        const t = texts[Number(n) - 1];
        expect(t, s.response).toBeDefined();
        if (t.startsWith('Tip: ')) tips++;
        else expect(t).toContain(s.target.name === 'MathOCR' ? 'MathOCR' : `${s.target.name}`);
      }
    }
    expect(tips).toBeGreaterThan(0);
  });
});

function fakeImage(r: ReturnType<typeof rng>, n: number): { name: string; objects: SceneObject[] } {
  return {
    name: `image/image_${n}.png`,
    objects: Array.from({ length: r.int(3, 6) }, (_, k) => ({ ...randomAttributes(r), x: k, z: 0, rotation: 0, depth: k, box: [k, k, k + 5, k + 6] as [number, number, number, number] })),
  };
}

describe('samples', () => {
  it('give the next call of a plan, with earlier calls and their values as history, following the tips', () => {
    const r = rng('samples');
    const templates = new Set<string>();
    for (let i = 0; i < 1500; i++) {
      const imgs = Array.from({ length: r.int(1, 2) }, (_, k) => fakeImage(r, 10 * i + k));
      const s = toolSample(rng('sample', i), imgs);
      templates.add(s.template);
      // the boxed JSON parses back to the target, which the scorer gives full marks
      const parsed = JSON.parse(s.answer.slice('\\boxed{'.length, -1)) as ToolCall;
      expect(parsed).toEqual(s.target);
      expect(scoreToolCall(s.response, s.target).score).toBe(1);
      expect(s.response.startsWith('<think> ')).toBe(true);
      // the version follows the rules
      const type = TOOL_TYPES.find((t) => s.target.name === t || s.target.name.startsWith(`${t}_v`)) ?? (s.target.name === 'MathOCR' ? 'OCR' : undefined);
      expect(type).toBeDefined();
      if (s.target.name !== 'MathOCR') expect(toolVersion(type!, s.profile).name).toBe(s.target.name);
      // image arguments are exact names the sample knows (inputs or images returned by earlier calls)
      const known = new Set([...s.images, ...s.history.map((h) => h.returned)]);
      if (typeof s.target.arguments.image === 'string') expect(known.has(s.target.arguments.image)).toBe(true);
      // tips: describe every image first when there are two; TextToBbox right before RegionAttributeDescription
      const calls = [...s.history.map((h) => h.call), s.target];
      if (s.images.length === 2) {
        const describedFirst = calls.slice(0, 2).every((c) => c.name.startsWith('ImageDescription'));
        expect(describedFirst || calls.length <= 2).toBe(true);
        if (calls.length <= 2) expect(calls.every((c) => c.name.startsWith('ImageDescription'))).toBe(true);
      }
      if (s.target.name.startsWith('RegionAttributeDescription')) {
        const prev = s.history[s.history.length - 1];
        expect(prev.call.name).toBe('TextToBbox');
        expect(s.target.arguments.bbox).toBe(prev.returned);
      }
      if (s.target.name.startsWith('GoogleSearch')) expect([1, 4]).toContain(s.target.arguments.k);
      const prompt = toolPrompt(s);
      expect((prompt.match(/<image>/g) ?? []).length).toBe(s.images.length);
      expect(prompt).toContain(`Query: ${s.query}`);
      expect(prompt).toContain(`account_type ${s.profile.account_type}, credits ${s.profile.credits}, age ${s.profile.age}`);
      expect(s.profile.credits).toBeGreaterThanOrEqual(0);
      expect(s.profile.credits).toBeLessThanOrEqual(1000);
      expect(s.profile.age).toBeGreaterThanOrEqual(12);
      expect(s.profile.age).toBeLessThanOrEqual(80);
    }
    expect(templates.size).toBe(TOOL_TEMPLATES.length);
  });

  it('count and region answers in the history come from the scene graph', () => {
    const r = rng('history');
    for (let i = 0; i < 300; i++) {
      const img = fakeImage(r, i);
      const s = toolSample(rng('h', i), [img], { template: 'region-attribute' });
      if (s.history.length === 1) {
        const box = s.history[0].returned;
        const obj = img.objects.find((o) => `(${o.box.join(', ')})` === box);
        expect(obj).toBeDefined();
      }
      const c = toolSample(rng('c', i), [img], { template: 'price' });
      if (c.history.length === 1) {
        const shape = c.query.split(' ')[1];
        expect(c.history[0].returned).toBe(String(img.objects.filter((o) => o.shape === shape).length));
      }
    }
  });
});

describe('scoreToolCall', () => {
  const gold: ToolCall = { name: 'RegionAttributeDescription_v2', arguments: { image: 'image/image_3.png', bbox: '(10, 10, 20, 20)', attribute: 'material' } };
  const box = (c: unknown): string => `<think> x </think> \\boxed{${typeof c === 'string' ? c : JSON.stringify(c)}}`;

  it('gives 0.5 for the tool and 0.5 for the mean argument score', () => {
    expect(scoreToolCall(box(gold), gold).score).toBe(1);
    expect(scoreToolCall(formatCall(gold), gold).malformed).toEqual(['no box']);
    const wrongTool = scoreToolCall(box({ ...gold, name: 'RegionAttributeDescription_v1' }), gold);
    expect(wrongTool.toolCorrect).toBe(false);
    expect(wrongTool.score).toBe(0.5);
    // IoU of a half-overlapping box: 50 / 150
    const shifted = scoreToolCall(box({ ...gold, arguments: { ...gold.arguments, bbox: '(15, 10, 25, 20)' } }), gold);
    expect(shifted.perArgument.bbox).toBeCloseTo(1 / 3, 10);
    expect(shifted.score).toBeCloseTo(0.5 + 0.5 * ((1 + 1 / 3 + 1) / 3), 10);
    // a missing argument scores 0; extra arguments are ignored
    const missing = scoreToolCall(box({ name: gold.name, arguments: { image: 'image/image_3.png', bbox: '(10, 10, 20, 20)', extra: 1 } }), gold);
    expect(missing.perArgument).toEqual({ image: 1, bbox: 1, attribute: 0 });
    expect(missing.score).toBeCloseTo(0.5 + 0.5 * (2 / 3), 10);
    // image names must match exactly
    expect(scoreToolCall(box({ ...gold, arguments: { ...gold.arguments, image: 'image_3.png' } }), gold).perArgument.image).toBe(0);
  });

  it('scores arguments by name: exact, token F1, evaluated equality, IoU, with defaults', () => {
    expect(argumentScore('text', 'large red cube', 'red cube')).toBeCloseTo(0.8, 10);
    expect(tokenF1('', '')).toBe(1);
    expect(argumentScore('query', 'who invented the dice', 'who invented the dice')).toBe(1);
    expect(argumentScore('expression', '(3 + 4) * 2', '14')).toBe(1);
    expect(argumentScore('expression', '3 + 4 * 2', '(3 + 4) * 2')).toBe(0);
    expect(argumentScore('expression', '7 // 2 + 2 ** 3 % 5', '6')).toBe(1);
    expect(argumentScore('expression', 'import os', 'import os')).toBe(1); // not arithmetic: exact
    expect(evalExpression('2 *')).toBeNull();
    expect(evalExpression('-(1 + 2) * 3')).toBe(-9);
    expect(argumentScore('k', 4, 4)).toBe(1);
    expect(argumentScore('k', '4', 4)).toBe(1);
    expect(argumentScore('k', 1, 4)).toBe(0);
    expect(argumentScore('k', undefined, 10)).toBe(1); // default k = 10
    expect(argumentScore('top1', undefined, true)).toBe(1);
    expect(argumentScore('color', undefined, 'red')).toBe(1);
    expect(argumentScore('color', undefined, 'blue')).toBe(0);
    expect(argumentScore('position', 'mt', 'mt')).toBe(1);
    expect(boxIoU('(0, 0, 10, 10)', [0, 0, 10, 10])).toBe(1);
    expect(boxIoU('(0, 0, 10, 10)', '(20, 20, 30, 30)')).toBe(0);
    expect(boxIoU('nonsense', '(0, 0, 1, 1)')).toBe(0);
  });

  it('reports malformed outputs', () => {
    expect(scoreToolCall('no box here', gold)).toMatchObject({ score: 0, malformed: ['no box'] });
    expect(scoreToolCall('\\boxed{{"name": "OCR_v1", "arguments": }}', gold)).toMatchObject({ score: 0, malformed: ['invalid JSON'] });
    expect(scoreToolCall('\\boxed{{"tool": "OCR_v1"}}', gold)).toMatchObject({ score: 0, malformed: ['no tool name'] });
    expect(scoreToolCall('\\boxed{[1, 2]}', gold)).toMatchObject({ score: 0, malformed: ['no tool name'] });
    const noArgs = scoreToolCall(`\\boxed{{"name": "${gold.name}", "arguments": "x"}}`, gold);
    expect(noArgs.malformed).toEqual(['arguments not an object']);
    expect(noArgs.score).toBe(0.5);
    expect(scoreToolCall('\\boxed{{"name": "OCR_v1"', gold).malformed).toEqual(['no box']); // unbalanced
  });
});
