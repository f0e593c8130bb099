// ClevrPolicy without the GPU: the tree constraint, the evaluator against a brute-force evaluator,
// reachability, scene construction per case, the text, the gold CoT, names, and the scorer.
import { describe, expect, it } from 'vitest';
import {
  ATTRIBUTE_TYPES, ATTRIBUTE_VALUES, AttributeType, ObjectAttributes, Policy, PolicyNode, clevrResponse, decisionNodes,
  evaluatePolicy, goldCot, leafPaths, naturalCaseFrequencies, overridePolicy, planDataset, policySignature, policyText, randomAttributes,
  randomPolicies, randomPolicy, reachableCases, rng, sceneForCase, scoreClevr, targetPolicies,
} from '../../src/trimpi/data/index.js';
import type { ClevrRecord, PolicyPruning } from '../../src/trimpi/data/index.js';

const DEPTHS = [2, 4, 6] as const;

function allPolicies(seed: number, pruning: PolicyPruning = 'paper'): Policy[] {
  return (['T', 'M'] as const).flatMap((m) => DEPTHS.flatMap((d) => targetPolicies(seed, m, d, 10, pruning)));
}

/**
 * Brute force, written from the definition rather than by walking: a leaf is selected iff along its
 * path every true edge has some object matching all true conditions so far (itself included), and
 * every false edge has no object matching the true conditions before it plus its own condition.
 */
function bruteForceCase(p: Policy, objects: readonly ObjectAttributes[]): number[] {
  const selected: number[] = [];
  leafPaths(p).forEach((path, k) => {
    const trueSoFar: { type: AttributeType; value: string }[] = [];
    const ok = path.every((s) => {
      const conds = [...trueSoFar, s.cond];
      const exists = objects.some((o) => conds.every((c) => o[c.type] === c.value));
      if (s.taken) trueSoFar.push(s.cond);
      return s.taken === exists;
    });
    if (ok) selected.push(k);
  });
  return selected;
}

describe('policy trees', () => {
  it('respect the constraint: no type re-checked below a true edge, no absent value re-checked; a node with no check left is a leaf (strict: no type with one value left)', () => {
    let trees = 0;
    const check = (p: Policy): void => {
      trees++;
      let leaves = 0;
      const strict = p.pruning === 'strict';
      const walk = (n: PolicyNode, depth: number, used: Set<string>, absent: Map<string, Set<string>>): void => {
        expect(depth).toBeLessThanOrEqual(p.depth);
        const open = (t: AttributeType): string[] => ATTRIBUTE_VALUES[t].filter((v) => !absent.get(t)?.has(v));
        const usable = ATTRIBUTE_TYPES.filter((t) => !used.has(t) && open(t).length >= (strict ? 2 : 1));
        if (n.kind === 'leaf') {
          expect(n.case).toBe(leaves++); // depth-first numbering, yes before no
          expect(depth === p.depth || usable.length === 0).toBe(true);
          return;
        }
        expect(used.has(n.cond.type)).toBe(false);
        expect(usable).toContain(n.cond.type);
        expect(absent.get(n.cond.type)?.has(n.cond.value) ?? false).toBe(false);
        walk(n.yes, depth + 1, new Set([...used, n.cond.type]), absent);
        const a = new Map(absent);
        a.set(n.cond.type, new Set([...(absent.get(n.cond.type) ?? []), n.cond.value]));
        walk(n.no, depth + 1, used, a);
      };
      walk(p.root, 0, new Set(), new Map());
      expect(leaves).toBe(p.cases);
      // ids by path: 1, 1.1, 1.2, ...
      const ids = decisionNodes(p).map((n) => n.id);
      expect(ids[0]).toBe('1');
      for (const id of ids.slice(1)) expect(ids).toContain(id.slice(0, id.lastIndexOf('.')));
    };
    for (const pruning of ['paper', 'strict'] as const) {
      for (const seed of [0, 1, 2, 3, 4]) allPolicies(seed, pruning).forEach(check);
      for (const d of DEPTHS) randomPolicies(7, 'T', d, 30, 0, pruning).forEach(check);
      for (let k = 0; k < 40; k++) check(randomPolicy(rng('constraint', k), `P${k}`, k % 2 ? 'M' : 'T', 1 + (k % 8), pruning));
    }
    expect(trees).toBeGreaterThan(800);
  });

  it("the paper's rule: 4, 16 and 55 cases at depths 2, 4 and 6 (the paper's counts), some unreachable", () => {
    let withUnreachable = 0;
    for (const seed of [0, 1, 2]) {
      for (const m of ['T', 'M'] as const) {
        for (const [d, cases] of [[2, 4], [4, 16], [6, 55]] as const) {
          for (const p of targetPolicies(seed, m, d)) {
            expect(p.cases).toBe(cases);
            expect(p.pruning).toBe('paper');
            const { reachable, unreachable } = reachableCases(p);
            expect(reachable.length).toBeGreaterThanOrEqual(2);
            if (unreachable.length) withUnreachable++;
          }
        }
      }
    }
    expect(withUnreachable).toBeGreaterThan(0);
    // not a property of these 60 trees only: every tree of the rule has 55 leaves at depth 6
    for (let k = 0; k < 200; k++) expect(randomPolicy(rng('leaves', k), `P${k}`, 'T', 6).cases).toBe(55);
  });

  it('strict pruning: 4, 16 and 40 cases at depths 2, 4 and 6, all reachable', () => {
    for (const seed of [0, 1, 2]) {
      for (const m of ['T', 'M'] as const) {
        for (const [d, cases] of [[2, 4], [4, 16], [6, 40]] as const) {
          for (const p of targetPolicies(seed, m, d, 10, 'strict')) {
            expect(p.cases).toBe(cases);
            expect(reachableCases(p).unreachable).toEqual([]);
          }
        }
      }
    }
  });

  it('random policies never reproduce a target tree of either pruning, and an unknown pruning is refused', () => {
    const targets = new Set((['paper', 'strict'] as const).flatMap((pr) => (['T', 'M'] as const).flatMap((m) => targetPolicies(0, m, 2, 100, pr).map(policySignature))));
    for (const pr of ['paper', 'strict'] as const) for (const p of randomPolicies(0, 'T', 2, 400, 0, pr)) expect(targets.has(policySignature(p))).toBe(false);
    expect(() => targetPolicies(0, 'T', 2, 10, 'loose' as PolicyPruning)).toThrow(/targetPolicies.*pruning must be one of paper, strict, got loose/);
  });

  it('the evaluator agrees with a brute-force evaluator on many random scenes', () => {
    const policies = [...allPolicies(3), ...randomPolicies(3, 'M', 6, 10)];
    const r = rng('brute');
    let checked = 0;
    for (let s = 0; s < 400; s++) {
      const objects = Array.from({ length: r.int(1, 10) }, () => randomAttributes(r));
      for (const p of policies) {
        const brute = bruteForceCase(p, objects);
        expect(brute).toHaveLength(1); // the leaves' conditions partition all scenes
        expect(evaluatePolicy(p, objects).case).toBe(brute[0]);
        checked++;
      }
    }
    expect(checked).toBe(400 * policies.length);
  });

  it('reports unreachable leaves of a tree that has them, and builds a scene for every reachable case', () => {
    // hand-made: "any small?" no -> "any large?" no can never happen (the focus is never empty)
    const p: Policy = {
      name: 'L1-Test', mode: 'T', depth: 2, cases: 4, crops: [], root: {
        kind: 'node', id: '1', cond: { type: 'size', value: 'small' }, yes: { kind: 'leaf', case: 0 }, no: {
          kind: 'node', id: '1.2', cond: { type: 'size', value: 'large' }, yes: { kind: 'leaf', case: 1 }, no: {
            kind: 'node', id: '1.2.2', cond: { type: 'color', value: 'red' }, yes: { kind: 'leaf', case: 2 }, no: { kind: 'leaf', case: 3 },
          },
        },
      },
    };
    expect(reachableCases(p)).toEqual({ reachable: [0, 1], unreachable: [2, 3] });
    expect(() => sceneForCase(rng(0), p, 2)).toThrow(/unreachable/);
    for (const q of [...targetPolicies(5, 'T', 6).slice(0, 3), ...targetPolicies(5, 'M', 4).slice(0, 3)]) {
      for (const k of reachableCases(q).reachable) {
        const scene = sceneForCase(rng(5, q.name, k), q, k, { minObjects: 3, maxObjects: 6 });
        expect(evaluatePolicy(q, scene.objects).case).toBe(k);
        expect(scene.objects.length).toBeGreaterThanOrEqual(3);
        expect(scene.objects.length).toBeLessThanOrEqual(6);
      }
    }
  });

  it('natural sampling: case frequencies of random scenes, against the exact probability of a one-node policy', () => {
    // "any red object?" on 3..6 objects: P(yes) = mean over n of 1 - (7/8)^n
    const p: Policy = { name: 'L1-Red', mode: 'T', depth: 1, cases: 2, crops: [], root: { kind: 'node', id: '1', cond: { type: 'color', value: 'red' }, yes: { kind: 'leaf', case: 0 }, no: { kind: 'leaf', case: 1 } } };
    const n = 20000;
    const f = naturalCaseFrequencies(p, { scenes: n, seed: 4 });
    const exact = [3, 4, 5, 6].reduce((a, k) => a + (1 - (7 / 8) ** k), 0) / 4;
    expect(Math.abs(f[0] - exact)).toBeLessThan(4 * Math.sqrt((exact * (1 - exact)) / n));
    expect(f[0] + f[1]).toBeCloseTo(1, 12);
    // target policies: a distribution over their cases, its majority well above 1/cases at every depth
    for (const d of DEPTHS) {
      for (const q of targetPolicies(0, 'T', d, 3)) {
        const g = naturalCaseFrequencies(q, { scenes: 500 });
        expect(g).toHaveLength(q.cases);
        expect(g.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 9);
        expect(Math.max(...g)).toBeGreaterThan(1 / q.cases);
      }
    }
    expect(() => naturalCaseFrequencies(p, { scenes: 0 })).toThrow(/naturalCaseFrequencies/);
  });

  it('have unique names across settings, and random policies never collide with targets', () => {
    const targets = allPolicies(11);
    const names = targets.map((p) => p.name);
    expect(new Set(names).size).toBe(names.length);
    for (const n of names) expect(n).toMatch(/^L[123]-[A-Z][a-z]{5}$/);
    const words = new Set(names.map((n) => n.split('-')[1]));
    const sigs = new Set(targets.map(policySignature));
    for (const m of ['T', 'M'] as const) {
      for (const d of DEPTHS) {
        const random = randomPolicies(11, m, d, 200);
        expect(new Set(random.map((p) => p.name)).size).toBe(200);
        for (const p of random) {
          expect(words.has(p.name.split('-')[1])).toBe(false);
          expect(sigs.has(policySignature(p))).toBe(false);
        }
      }
    }
    // a later window of the stream continues it
    expect(randomPolicies(11, 'T', 4, 5, 10).map((p) => p.name)).toEqual(randomPolicies(11, 'T', 4, 15).slice(10).map((p) => p.name));
    const o = overridePolicy(targets[0], 11);
    expect(o.name).toBe(targets[0].name);
    expect(policySignature(o)).not.toBe(policySignature(targets[0]));
  });

  it('is deterministic per seed and differs across seeds', () => {
    expect(targetPolicies(42, 'M', 6).map(policyText)).toEqual(targetPolicies(42, 'M', 6).map(policyText));
    expect(targetPolicies(42, 'T', 4)[0].name).not.toBe(targetPolicies(43, 'T', 4)[0].name);
  });
});

describe('policy text, query and gold CoT', () => {
  it('writes one section per decision node in the documented format; -M shows crops as <image>', () => {
    for (const p of allPolicies(1)) {
      const text = policyText(p);
      const lines = text.split('\n');
      expect(lines[0]).toBe(`--- Policy: ${p.name} ---`);
      expect(lines[1]).toBe('Start from Condition 1 and follow the conditions to decide the response case for the image.');
      expect(lines[lines.length - 1]).toBe('---');
      const nodes = decisionNodes(p);
      expect(lines.filter((l) => l.startsWith('# Condition ')).length).toBe(nodes.length);
      expect((text.match(/<image>/g) ?? []).length).toBe(p.crops.length);
      if (p.mode === 'T') expect(p.crops).toEqual([]);
      for (let k = 0; k < p.cases; k++) expect(text).toContain(`Case ${k}.`);
      // crops come in text order and show their value
      const imageNodes = nodes.filter((n) => n.cond.crop !== undefined);
      expect(imageNodes.map((n) => n.cond.crop)).toEqual(p.crops.map((_, i) => i));
      for (const c of p.crops) expect(c.object[c.type]).toBe(c.value);
    }
    const p = targetPolicies(1, 'T', 2)[0];
    const n = p.root as Extract<PolicyNode, { kind: 'node' }>;
    const noun = n.cond.type === 'shape' ? n.cond.value : `${n.cond.value} object`;
    expect(policyText(p)).toContain(`# Condition 1: check if there is any ${noun}.\n- If yes, focus only on the `);
  });

  it('the CoT has one step per visited condition, names what was seen, and ends with the case', () => {
    const r = rng('cot');
    for (const p of [...targetPolicies(2, 'T', 6).slice(0, 4), ...targetPolicies(2, 'M', 6).slice(0, 4)]) {
      for (let i = 0; i < 30; i++) {
        const objects = Array.from({ length: r.int(3, 6) }, () => randomAttributes(r));
        const ev = evaluatePolicy(p, objects);
        const { cot } = goldCot(p, objects);
        const steps = cot.match(/Condition [\d.]+: check/g) ?? [];
        expect(steps.map((s) => s.split(' ')[1].slice(0, -1))).toEqual(ev.trace.map((t) => t.node));
        for (const t of ev.trace) {
          if (t.matches.length > 0) {
            const o = objects[t.matches[0]];
            expect(cot).toContain(`${o.size} ${o.color} ${o.material} ${o.shape}`);
          }
        }
        expect(cot.endsWith(`Respond with Case ${ev.case}.`)).toBe(true);
        expect(cot).not.toContain('<image>'); // -M values are named in words
        const res = clevrResponse(p, objects);
        expect(res.response).toBe(`<think> ${cot} </think> \\boxed{Case ${ev.case}}`);
        expect(scoreClevr(res.response, ev.case, p.cases).correct).toBe(true);
      }
    }
  });
});

describe('dataset plan (no GPU)', () => {
  it('covers every reachable case in the test split when it is large enough, balanced in train', () => {
    const plan = planDataset({ setting: 'clevr-t', seed: 3, depth: 4, policies: 3, train: 64, test: 16 });
    const recs: ClevrRecord[] = [];
    for (const step of plan.steps) for (const r of step.records) if (r.task === 'clevr') recs.push(r);
    expect(recs).toHaveLength(3 * 80);
    for (const p of targetPolicies(3, 'T', 4, 3)) {
      for (const split of ['train', 'test'] as const) {
        const counts = new Array(p.cases).fill(0);
        for (const r of recs) if (r.policy === p.name && r.split === split) counts[r.case]++;
        const { reachable, unreachable } = reachableCases(p);
        for (const k of unreachable) expect(counts[k]).toBe(0);
        const per = reachable.map((k) => counts[k]);
        // shuffled rounds over the reachable cases: every one at least once, none more than one apart
        expect(Math.min(...per)).toBeGreaterThanOrEqual(1);
        expect(Math.max(...per) - Math.min(...per)).toBeLessThanOrEqual(1);
      }
      const cot = recs.filter((r) => r.policy === p.name && r.cot);
      expect(cot).toHaveLength(8); // 1/8 of 64 train samples
      expect(cot.every((r) => r.split === 'train')).toBe(true);
    }
    // every record's case is what the policy says about its stored scene graph
    const byName = new Map(targetPolicies(3, 'T', 4, 3).map((p) => [p.name, p]));
    for (const r of recs) expect(evaluatePolicy(byName.get(r.policy)!, r.scenes[0].objects).case).toBe(r.case);
  });

  it('at depth 6 the test split has every case once it holds as many samples as cases', () => {
    const plan = planDataset({ setting: 'clevr-m', seed: 9, depth: 6, policies: 2, train: 1, test: 40 });
    const seen = new Map<string, Set<number>>();
    for (const step of plan.steps) for (const r of step.records) if (r.task === 'clevr' && r.split === 'test') {
      if (!seen.has(r.policy)) seen.set(r.policy, new Set());
      seen.get(r.policy)!.add(r.case);
    }
    for (const p of targetPolicies(9, 'M', 6, 2)) expect(seen.get(p.name)!.size).toBe(reachableCases(p).reachable.length);
  });
});

describe('scoreClevr', () => {
  it('scores exact matches and reports malformed outputs', () => {
    const ok = scoreClevr('<think> Condition 1: ... Respond with Case 3. </think> \\boxed{Case 3}', 3, 16);
    expect(ok).toEqual({ correct: true, predicted: 'Case 3', format: { think: true, box: true, knownCase: true }, malformed: [] });
    const wrong = scoreClevr('<think> x </think> \\boxed{Case 4}', 3, 16);
    expect(wrong.correct).toBe(false);
    expect(wrong.malformed).toEqual([]);
    // answer-only output: correct, but no think block
    const direct = scoreClevr('\\boxed{Case 3}', 3, 16);
    expect(direct.correct).toBe(true);
    expect(direct.malformed).toEqual(['no think block']);
    expect(scoreClevr('<think> x </think> Case 3', 3).malformed).toEqual(['no box']);
    expect(scoreClevr('<think> x </think> Case 3', 3).correct).toBe(false);
    expect(scoreClevr('<think> x </think> \\boxed{Case 99}', 3, 16).malformed).toEqual(['unknown case']);
    expect(scoreClevr('<think> x </think> \\boxed{Case 99}', 99).format.knownCase).toBe(true); // no case count given
    expect(scoreClevr('<think> x </think> \\boxed{case three}', 3, 16).malformed).toEqual(['unknown case']);
    expect(scoreClevr('<think> x \\boxed{Case 3}', 3, 16).malformed).toEqual(['no think block']); // unclosed
    expect(scoreClevr('\\boxed{Case 3} <think> x </think>', 3).format.think).toBe(false); // think after the box
    expect(scoreClevr('<think> a </think> \\boxed{Case 1} then \\boxed{Case 3}', 3).correct).toBe(true); // last box counts
    expect(scoreClevr('<think> a </think> \\boxed{Case 3', 3).malformed).toEqual(['no box']); // unbalanced
    expect(scoreClevr('<think> a </think> \\boxed{ Case 3 }', 3).correct).toBe(true); // trimmed
  });
});
