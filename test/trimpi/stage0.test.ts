// Stage 0 and the packed-target batches every stage trains on: the stream is a pure function of
// (seed, step) and never shows a target policy; a run resumes bit-for-bit; logits at packed target
// slots are the full forward's rows, and the targets line up after an image's P slots.
import { mkdirSync, mkdtempSync, rmSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as t from '../../src/index.js';

const S = t.stages;
const work = mkdtempSync(join(tmpdir(), 'trimpi-stage0-'));
const tok = t.data.defaultTokenizer();

beforeAll(async () => {
  await t.init();
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

const tiny: t.stages.Stage0Config = {
  ...S.STAGE0_DEFAULTS, preset: 'tiny', steps: 4, batchSize: 3, warmupSteps: 1, poolSize: 20, evalItems: 2, microBatchPositions: 2048,
  model: { maxPositions: 1024, imageSize: 64 },
};

describe('stage 0', () => {
  it('draws the same examples for the same (seed, step), never a target policy', () => {
    const pool = new S.PolicyPool(0, 20);
    const cfg = { ...tiny, mixStart: { crop: 0, describe: 0, sceneqa: 0, policy: 1 }, mixEnd: { crop: 0, describe: 0, sceneqa: 0, policy: 1 } };
    const a = S.stage0Examples(cfg, pool, 2);
    const b = S.stage0Examples(cfg, new S.PolicyPool(0, 20), 2);
    expect(a.map((e) => e.prompt + e.response)).toEqual(b.map((e) => e.prompt + e.response));
    const targets = new Set((['T', 'M'] as const).flatMap((m) => [2, 4, 6].flatMap((d) => t.data.targetPolicies(0, m, d).map((p) => p.name))));
    for (let step = 0; step < 5; step++) {
      for (const e of S.stage0Examples(cfg, pool, step)) {
        const name = /Policy: (\S+) ---/.exec(e.prompt)![1];
        expect(targets.has(name)).toBe(false);
        // the gold response follows the policy given in context
        expect(e.score(e.response)).toBe(1);
      }
    }
  });

  it('policy reading without perception: text-scene examples, gold CoT scored right, four-task streams unchanged', () => {
    const pool = new S.PolicyPool(0, 20);
    const four = { ...tiny, mixStart: { crop: 0.2, describe: 0.2, sceneqa: 0.3, policy: 0.3 }, mixEnd: { crop: 0.2, describe: 0.2, sceneqa: 0.3, policy: 0.3 } };
    const five = { ...four, mixStart: { ...four.mixStart, policyText: 0 }, mixEnd: { ...four.mixEnd, policyText: 0 } };
    // a zero fifth weight draws exactly the examples of the four-task mix
    for (let step = 0; step < 4; step++) {
      expect(S.stage0Examples(five, pool, step).map((e) => e.prompt + e.response)).toEqual(S.stage0Examples(four, pool, step).map((e) => e.prompt + e.response));
    }
    const text = { ...tiny, mixStart: { crop: 0, describe: 0, sceneqa: 0, policy: 0, policyText: 1 }, mixEnd: { crop: 0, describe: 0, sceneqa: 0, policy: 0, policyText: 1 } };
    let seen = 0;
    for (let step = 0; step < 4; step++) {
      for (const e of S.stage0Examples(text, pool, step)) {
        expect(e.task).toBe('policy-text');
        expect(e.scenes).toEqual([]);
        expect(e.prompt).not.toContain('<image>');
        expect(e.prompt).toMatch(/\nThe objects: There is a /);
        expect(e.group).toMatch(/^policy-text\/T[24]$/);
        expect(e.score(e.response)).toBe(1);
        // the text is every object of a scene drawn for one of the policy's cases, so a wrong case scores 0
        expect(e.score(e.response.replace(/Case (\d+)/g, (_, k) => `Case ${Number(k) + 100}`))).toBe(0);
        seen++;
      }
    }
    expect(seen).toBe(4 * tiny.batchSize);
    expect(() => S.policyTextSceneExample(t.data.rng(0, 'x'), pool.get('M', 2)[0])).toThrow(/a text scene replaces the image of a -T policy/);
    // held-out examples of the task exist only where the recipe trains it
    expect(S.stage0EvalExamples(text, 2).filter((e) => e.task === 'policy-text')).toHaveLength(2 * tiny.policyKinds.filter((k) => k.mode === 'T').length);
    expect(S.stage0EvalExamples(tiny, 2).some((e) => e.task === 'policy-text')).toBe(false);
  });

  it('checks drill: each listed condition checked in order among the objects a yes left in focus, in the CoT words', () => {
    const r = t.data.rng(3, 'checks');
    const typeOf = (v: string): t.data.AttributeType => t.data.ATTRIBUTE_TYPES.find((a) => t.data.ATTRIBUTE_VALUES[a].includes(v))!;
    let yes = 0;
    let no = 0;
    for (let i = 0; i < 60; i++) {
      const sceneAs = i % 2 ? 'image' : 'text';
      const e = S.checksExample(r, sceneAs);
      expect(e.group).toBe(`checks/${sceneAs}`);
      expect(e.score(e.response)).toBe(1);
      expect(e.score(e.response.replace(/There (is|are)/, 'There were'))).toBe(0);
      // the objects: the image's scene, or parsed back from the text (which lists them in the scene's order)
      const objects = sceneAs === 'image'
        ? (expect(e.scenes).toHaveLength(1), e.scenes[0].objects.map((o) => t.data.describeObject(o)))
        : (expect(e.scenes).toEqual([]), [...e.prompt.matchAll(/There is a (\w+ \w+ \w+ \w+)\./g)].map((m) => m[1]));
      expect(objects.length).toBeGreaterThanOrEqual(3);
      const conds = [...e.prompt.matchAll(/# Condition (\d+): check if there is any (\w+)( object)?\./g)].map((m) => m[2]);
      expect(conds.length).toBeGreaterThanOrEqual(2);
      expect(conds.length).toBeLessThanOrEqual(4);
      expect(new Set(conds.map(typeOf)).size).toBe(conds.length);
      const said = e.response.replace(/^<think> | <\/think>$/g, '').split(/ ?Condition \d+: check if there is any \w+(?: object)?\. /).slice(1);
      expect(said).toHaveLength(conds.length);
      let focus = objects;
      conds.forEach((v, k) => {
        const matches = focus.filter((o) => o.split(' ').includes(v));
        if (matches.length === 0) {
          expect(said[k]).toMatch(/^There is no /);
          no++;
        } else {
          if (matches.length === 1) expect(said[k]).toBe(`There is a ${matches[0]}. ${/Focus on the [\w ]+\./.exec(said[k])![0]}`);
          else expect(said[k]).toMatch(new RegExp(`^There are ${matches.length} [\\w ]+, including a (${matches.join('|')})\\. Focus on the `));
          expect(said[k]).toContain(v);
          focus = matches;
          yes++;
        }
      });
    }
    // about half the checks find something
    expect(yes / (yes + no)).toBeGreaterThan(0.3);
    expect(no / (yes + no)).toBeGreaterThan(0.3);
    // a stream with zero weights for the checks draws the five-task stream; held-out checks only where trained
    const pool = new S.PolicyPool(0, 20);
    const five = { ...tiny, mixStart: { crop: 0.2, describe: 0.2, sceneqa: 0.2, policy: 0.2, policyText: 0.2 }, mixEnd: { crop: 0.2, describe: 0.2, sceneqa: 0.2, policy: 0.2, policyText: 0.2 } };
    const seven = { ...five, mixStart: { ...five.mixStart, checksText: 0, checksImage: 0 }, mixEnd: { ...five.mixEnd, checksText: 0, checksImage: 0 } };
    for (let step = 0; step < 3; step++) {
      expect(S.stage0Examples(seven, pool, step).map((e) => e.prompt + e.response)).toEqual(S.stage0Examples(five, pool, step).map((e) => e.prompt + e.response));
    }
    const drill = { ...tiny, mixStart: { ...tiny.mixStart, checksText: 0.5 }, mixEnd: { ...tiny.mixEnd, checksImage: 0.5 } };
    expect(S.stage0Examples(drill, pool, 0).some((e) => e.task === 'checks')).toBe(true);
    expect(S.stage0EvalExamples(drill, 2).filter((e) => e.task === 'checks').map((e) => e.group)).toEqual(['checks/text', 'checks/text', 'checks/image', 'checks/image']);
    expect(S.stage0EvalExamples(tiny, 2).some((e) => e.task === 'checks')).toBe(false);
  });

  it('text SceneQA and random ToolPolicy books: right gold answers, held out where trained, older streams unchanged', () => {
    const pool = new S.PolicyPool(0, 20);
    // the text SceneQA's answer is the count / existence / attribute of the listed objects, parsed back here
    for (let i = 0; i < 60; i++) {
      const e = S.sceneQaTextExample(t.data.rng(4, 'qa-text', i), (['count', 'exist', 'query'] as const)[i % 3]);
      expect(e.scenes).toEqual([]);
      expect(e.score(e.response)).toBe(1);
      const objects = [...e.prompt.matchAll(/There is a (\w+) (\w+) (\w+) (\w+)\./g)].map((m) => m.slice(1, 5));
      expect(objects.length).toBeGreaterThanOrEqual(3);
      const q = e.prompt.split('\n')[1];
      const has = (o: string[], words: string[]): boolean => words.every((w) => o.includes(w) || o.includes(w.replace(/s$/, '')));
      const count = /^How many ([\w ]+) are there\?$/.exec(q);
      const exist = /^Is there an? ([\w ]+)\?$/.exec(q);
      if (count) {
        const words = count[1].split(' ').filter((w) => w !== 'objects');
        expect(e.response).toBe(`\\boxed{${objects.filter((o) => has(o, words)).length}}`);
      } else if (exist) {
        const words = exist[1].split(' ').filter((w) => w !== 'object');
        expect(e.response).toBe(`\\boxed{${objects.some((o) => has(o, words)) ? 'yes' : 'no'}}`);
      } else {
        // "What color is the small sphere?": the one listed object with those words, its attribute
        const m = /^What (size|color|material|shape) is the ([\w ]+)\?$/.exec(q)!;
        const hits = objects.filter((o) => has(o, m[2].split(' ').filter((w) => w !== 'object')));
        expect(hits).toHaveLength(1);
        expect(e.response).toBe(`\\boxed{${hits[0][['size', 'color', 'material', 'shape'].indexOf(m[1])]}}`);
      }
    }
    // tool books: the gold call scores 1, a wrong version scores less; never the target's rules
    const target = t.data.ruleTexts('default').join('\n');
    for (let i = 0; i < 20; i++) {
      const book = pool.tool(i);
      expect(t.data.ruleTexts(book).join('\n')).not.toBe(target);
      const e = S.toolPolicyExample(t.data.rng(5, 'tool', i), book);
      expect(e.task).toBe('tool');
      expect(e.prompt).toContain(t.data.toolPolicyText(book));
      expect(e.prompt.match(/<image>/g)).toHaveLength(e.scenes.length);
      expect(e.score(e.response)).toBe(1);
      expect(e.score(e.response.replace(/"name": "(\w+)"/, '"name": "Nope"'))).toBeLessThan(1);
    }
    expect(() => pool.tool(20)).toThrow(/rule book 20 is outside the pool's 20/);
    // zero weights for the new tasks draw the older stream; held-out items only where trained, from other books
    const seven = { ...tiny, mixStart: { crop: 0.2, describe: 0.2, sceneqa: 0.2, policy: 0.2, policyText: 0.1, checksText: 0.1, checksImage: 0 }, mixEnd: { crop: 0.2, describe: 0.2, sceneqa: 0.2, policy: 0.2, policyText: 0.1, checksText: 0.1, checksImage: 0 } };
    const nine = { ...seven, mixStart: { ...seven.mixStart, sceneqaText: 0, tool: 0 }, mixEnd: { ...seven.mixEnd, sceneqaText: 0, tool: 0 } };
    for (let step = 0; step < 3; step++) {
      expect(S.stage0Examples(nine, pool, step).map((e) => e.prompt + e.response)).toEqual(S.stage0Examples(seven, pool, step).map((e) => e.prompt + e.response));
    }
    const both = { ...tiny, mixStart: { ...tiny.mixStart, sceneqaText: 0.5, tool: 0.5 }, mixEnd: { ...tiny.mixEnd, sceneqaText: 0.5, tool: 0.5 } };
    const tasks = new Set([0, 1, 2, 3].flatMap((step) => S.stage0Examples(both, pool, step).map((e) => e.task)));
    expect(tasks.has('sceneqa-text') && tasks.has('tool')).toBe(true);
    const held = S.stage0EvalExamples(both, 2);
    expect(held.filter((e) => e.task === 'sceneqa-text').map((e) => e.group)).toEqual(['sceneqa-text/count', 'sceneqa-text/count', 'sceneqa-text/exist', 'sceneqa-text/exist', 'sceneqa-text/query', 'sceneqa-text/query']);
    const trainBooks = new Set(Array.from({ length: 20 }, (_, i) => t.data.toolPolicyText(pool.tool(i))));
    const heldTool = held.filter((e) => e.task === 'tool');
    expect(heldTool).toHaveLength(2);
    for (const e of heldTool) expect(trainBooks.has(e.prompt.slice(0, e.prompt.indexOf('\nImages:')))).toBe(false);
    expect(S.stage0EvalExamples(tiny, 2).some((e) => e.task === 'tool' || e.task === 'sceneqa-text')).toBe(false);
  });

  it('the lookup drill: gold answers read back from the scene, yes and no balanced, the curriculum asks its phases over its object counts', async () => {
    const words = (o: { size: string; color: string; material: string; shape: string }): string[] => [o.size, o.color, o.material, o.shape];
    let yes = 0;
    for (let i = 0; i < 200; i++) {
      const sceneAs = i % 2 === 0 ? 'text' : 'image';
      const ask = i < 100 ? { type: '*' as const, value: '*' } : { type: 'color' as const, value: 'cyan' };
      const e = S.lookupExample(t.data.rng(6, 'lookup', i), sceneAs, ask, { minObjects: 1, maxObjects: 4 });
      const q = /\nIs there an? (\w+)(?: object)?\?$/.exec(e.prompt)!;
      expect(q, e.prompt).not.toBeNull();
      if (i >= 100) expect(q[1]).toBe('cyan');
      // the scene as listed in the prompt (text) or as rendered (image); the answer is whether one object has the word
      const objects = sceneAs === 'text' ? [...e.prompt.matchAll(/There is a (\w+) (\w+) (\w+) (\w+)\./g)].map((m) => m.slice(1, 5)) : e.scenes[0].objects.map(words);
      expect(objects.length).toBeGreaterThanOrEqual(1);
      expect(objects.length).toBeLessThanOrEqual(4);
      const has = objects.some((o) => o.includes(q[1]));
      expect(e.response).toBe(`\\boxed{${has ? 'yes' : 'no'}}`);
      expect(e.score(e.response)).toBe(1);
      expect(e.score(`\\boxed{${has ? 'no' : 'yes'}}`)).toBe(0);
      expect(e.scenes).toHaveLength(sceneAs === 'image' ? 1 : 0);
      if (has) yes++;
    }
    expect(yes).toBeGreaterThan(70);
    expect(yes).toBeLessThan(130);
    // the -M form: the asked value shown by a crop (the second image), one large object with it
    for (let i = 0; i < 40; i++) {
      const ask = i < 20 ? { type: '*' as const, value: '*' } : i < 30 ? { type: 'shape' as const, value: 'sphere' } : { type: 'size' as const, value: 'small' };
      const e = S.lookupExample(t.data.rng(6, 'lookup-crop', i), 'crop', ask);
      const q = /^<image>\nIs there an object with the same (size|color|material|shape) as <image>\?$/.exec(e.prompt)!;
      expect(q, e.prompt).not.toBeNull();
      const type = q[1] as t.data.AttributeType;
      const [scene, crop] = e.scenes;
      expect(crop.objects).toHaveLength(1);
      if (i >= 20 && i < 30) expect([type, crop.objects[0].shape]).toEqual(['shape', 'sphere']);
      expect(type).not.toBe('size'); // crops are zoomed: a size ask asks another type
      expect(e.response).toBe(`\\boxed{${scene.objects.some((o) => o[type] === crop.objects[0][type]) ? 'yes' : 'no'}}`);
    }
    // phases by step: metal for 3 steps, then any material for 2 (re-asking metal at the replay rate), then anything
    const cur = { phases: [{ type: 'material' as const, value: 'metal', steps: 3 }, { type: 'material' as const, value: '*', steps: 2 }], replay: 0.5 };
    expect(S.lookupAsk(cur, 2, t.data.rng(1))).toEqual({ type: 'material', value: 'metal' });
    const fourth = Array.from({ length: 40 }, (_, i) => S.lookupAsk(cur, 4, t.data.rng(1, i)).value);
    expect(fourth.includes('metal') && fourth.includes('*')).toBe(true);
    expect(S.lookupAsk(cur, 5, t.data.rng(1))).toEqual({ type: '*', value: '*' });
    const drill = { ...tiny, lookup: cur, mixStart: { crop: 0, describe: 0, sceneqa: 0, policy: 0, lookupText: 1 }, mixEnd: { crop: 0, describe: 0, sceneqa: 0, policy: 0, lookupText: 1 } };
    for (const e of S.stage0Examples(drill, new S.PolicyPool(0, 20), 0)) expect(e.prompt).toMatch(/Is there a metal object\?$/);
    expect(S.stage0EvalExamples(drill, 2).filter((e) => e.task === 'lookup').map((e) => e.group)).toEqual(['lookup/text', 'lookup/text']);
    const crops = { ...drill, mixEnd: { ...drill.mixEnd, lookupCrop: 0.5 } };
    expect(S.stage0EvalExamples(crops, 1).filter((e) => e.task === 'lookup').map((e) => e.group)).toEqual(['lookup/text', 'lookup/crop']);
    // and the held-out evaluation scores it
    const model = new t.nn.VisionLanguageModel(t.nn.preset('tiny', tok.size, { imageSize: 64, maxPositions: 256 }).model);
    const ev = await S.evaluateStage0(model, tok, { ...drill, policyKinds: [] }, 1);
    expect(ev.lookup.groups['lookup/text'].n).toBe(1);
    model.dispose();
    // a misspelt phase is refused before training starts
    expect(() => S.checkLookupCurriculum({ phases: [{ type: 'colour' as never, value: 'red', steps: 5 }] }, 'trainStage0')).toThrow(/lookup.phases\[0\] asks "colour": "red"/);
    expect(() => S.checkLookupCurriculum({ phases: [{ type: 'color', value: 'metal', steps: 5 }] }, 'trainStage0')).toThrow(/expected a type of/);
    expect(() => S.checkLookupCurriculum({ phases: [], form: 'boxed' as never }, 'trainStage0')).toThrow(/lookup.form must be 'answer', 'observation', 'bridge', 'mixed', got "boxed"/);
    // 'bridge': the answer form's question, the observation's words, scored on its yes / no
    for (let i = 0; i < 20; i++) {
      const e = S.lookupExample(t.data.rng(8, 'bridge', i), 'text', undefined, {}, 'bridge');
      const value = /\nIs there an? (\w+)(?: object)?\?$/.exec(e.prompt)![1];
      const yes = new RegExp(`There is a [^.]*\\b${value}\\b`).test(e.prompt.split('\n')[0]);
      expect(e.response).toMatch(yes ? new RegExp(`^There is a [^.]*\\b${value}\\b`) : /^There is no /);
      expect(e.score(e.response)).toBe(1);
      expect(e.score(yes ? `There is no ${value} object.` : 'There is a large red metal cube.')).toBe(0);
    }
    // a count curriculum: one object for 2 steps, then 1-2, then the curriculum's 3-6; 'mixed' draws either form
    const counts = { phases: [{ type: '*' as const, value: '*', steps: 2, minObjects: 1, maxObjects: 1 }, { type: '*' as const, value: '*', steps: 2, minObjects: 1, maxObjects: 2 }], form: 'mixed' as const };
    const countDrill = { ...drill, batchSize: 24, lookup: counts };
    const objectsAt = (step: number): number[] => S.stage0Examples(countDrill, new S.PolicyPool(0, 20), step).map((e) => e.prompt.split('There is a').length - 1);
    expect(new Set(objectsAt(1))).toEqual(new Set([1]));
    expect(Math.max(...objectsAt(3))).toBeLessThanOrEqual(2);
    expect(new Set(objectsAt(3))).toEqual(new Set([1, 2]));
    expect(Math.min(...objectsAt(4))).toBeGreaterThanOrEqual(3);
    const responses = S.stage0Examples(countDrill, new S.PolicyPool(0, 20), 4).map((e) => e.response);
    expect(responses.some((x) => /^\\boxed\{(yes|no)\}$/.test(x)) && responses.some((x) => x.startsWith('Condition 1: '))).toBe(true);
    // held out: the CoT's form
    expect(S.stage0EvalExamples(countDrill, 3).filter((e) => e.task === 'lookup').every((e) => e.response.startsWith('Condition 1: '))).toBe(true);
    expect(() => S.checkLookupCurriculum({ phases: [{ type: '*', value: '*', steps: 5, minObjects: 4, maxObjects: 2 }] }, 'trainStage0')).toThrow(/lookup.phases\[0\]: scene: objects must satisfy 1 <= minObjects <= maxObjects <= 10, got 4..2/);
    expect(() => S.checkLookupCurriculum({ phases: [], minObjects: 0 }, 'trainStage0')).toThrow(/^trainStage0: lookup: scene: objects must satisfy/);
  });

  it("the lookup drill in the CoT's words: the observation re-derived from the scene, scored on its yes / no", () => {
    let yes = 0;
    for (let i = 0; i < 120; i++) {
      const sceneAs = (['text', 'image', 'crop'] as const)[i % 3];
      const e = S.lookupExample(t.data.rng(8, 'lookup-obs', i), sceneAs, undefined, { minObjects: 1, maxObjects: 5 }, 'observation');
      const scene = sceneAs === 'text' ? null : e.scenes[0];
      // the asked condition: a word (text, image) or a crop's attribute (crop), re-read from the prompt and the crop
      const asked = /\nCondition 1: check if there is any (?:(\w+)(?: object)?|object with the same (\w+) as <image>)\.$/.exec(e.prompt)!;
      expect(asked, e.prompt).not.toBeNull();
      const type = (asked[2] ?? t.data.ATTRIBUTE_TYPES.find((ty) => t.data.ATTRIBUTE_VALUES[ty].includes(asked[1]))) as t.data.AttributeType;
      const value = asked[2] ? e.scenes[1].objects[0][type] : asked[1];
      const objects = scene ? scene.objects.map((o) => [o.size, o.color, o.material, o.shape].join(' '))
        : [...e.prompt.matchAll(/There is a (\w+ \w+ \w+ \w+)\./g)].map((m) => m[1]);
      const hits = objects.filter((o) => o.split(' ').includes(value));
      const noun = type === 'shape' ? value : `${value} object`;
      const check = asked[2] ? `check if there is any object with the same ${type} as the image (${value}).` : `check if there is any ${noun}.`;
      const focus = type === 'shape' ? `the ${value}s` : `the ${value} objects`;
      expect(hits.length).toBeLessThanOrEqual(1);
      expect(e.response).toBe(`Condition 1: ${check} ${hits.length ? `There is a ${hits[0]}. Focus on ${focus}.` : `There is no ${noun}.`}`);
      expect(e.score(e.response)).toBe(1);
      // scored on the yes / no: the other answer, or no observation, scores 0
      expect(e.score(`Condition 1: ${check} ${hits.length ? `There is no ${noun}.` : 'There is a large red metal cube.'}`)).toBe(0);
      expect(e.score(`Condition 1: ${check}`)).toBe(0);
      if (hits.length) yes++;
    }
    expect(yes).toBeGreaterThan(40);
    expect(yes).toBeLessThan(80);
    // the recipe's form reaches the training stream and the held-out items
    const only = { crop: 0, describe: 0, sceneqa: 0, policy: 0, lookupImage: 1 };
    const drill = { ...tiny, lookup: { phases: [], form: 'observation' as const }, mixStart: only, mixEnd: only };
    for (const e of [...S.stage0Examples(drill, new S.PolicyPool(0, 20), 0), ...S.stage0EvalExamples(drill, 2).filter((x) => x.task === 'lookup')]) {
      expect(e.prompt).toMatch(/^<image>\nCondition 1: check if there is any [^.]+\.$/);
    }
  });

  it("sceneText 'list': text scenes name their objects without \"There is\", the stream's draws and golds otherwise unchanged", async () => {
    const scene = t.data.sampleScene(t.data.rng(9, 'list-scene'), { minObjects: 4, maxObjects: 4 });
    const names = scene.objects.map((o) => [o.size, o.color, o.material, o.shape].join(' '));
    expect(S.sceneAsText(scene, 'list')).toBe(`${names.join('; ')}.`);
    expect(S.sceneAsText(scene)).toBe(names.map((n) => `There is a ${n}.`).join(' '));
    // every text-scene task and its held-out items, listed; the same stream under 'sentences' with its listing rewritten
    const textTasks = { crop: 0, describe: 0, sceneqa: 0, policy: 0, policyText: 1, checksText: 1, sceneqaText: 1, lookupText: 1 };
    const cfg: t.stages.Stage0Config = { ...tiny, batchSize: 24, mixStart: textTasks, mixEnd: textTasks, policyKinds: [{ mode: 'T', depth: 2, start: 1, end: 1 }], lookup: { phases: [], form: 'observation' } };
    const listed = { ...cfg, sceneText: 'list' as const };
    const relist = (prompt: string): string => prompt.replace(/^The objects: (.*)$/m, (_, line: string) => `The objects: ${[...line.matchAll(/There is a ([^.]+)\./g)].map((m) => m[1]).join('; ')}.`);
    const pairs = [[S.stage0Examples(cfg, new S.PolicyPool(0, 20), 1), S.stage0Examples(listed, new S.PolicyPool(0, 20), 1)], [S.stage0EvalExamples(cfg, 3), S.stage0EvalExamples(listed, 3)]];
    const tasks = new Set<string>();
    for (const [before, after] of pairs) {
      expect(after.length).toBe(before.length);
      after.forEach((e, i) => {
        const line = /^The objects: (.*)$/m.exec(e.prompt)?.[1];
        if (line === undefined) return; // an image task of the held-out set
        tasks.add(e.task);
        expect(line).not.toMatch(/There is/);
        expect(e.prompt).toBe(relist(before[i].prompt));
        expect(e.response).toBe(before[i].response);
        expect(e.score(e.response)).toBe(1);
      });
    }
    expect([...tasks].sort()).toEqual(['checks', 'lookup', 'policy-text', 'sceneqa-text']);
    await expect(S.trainStage0(join(work, 'scene-text-bad'), { ...tiny, sceneText: 'prose' as t.stages.SceneText }, { noEval: true }))
      .rejects.toThrow(/sceneText must be one of sentences, list, got "prose"/);
    const dir = join(work, 'card-list');
    mkdirSync(dir, { recursive: true });
    S.writeModelCard(dir, listed, {}, 60);
    expect(readFileSync(join(dir, 'README.md'), 'utf8')).toContain('Text scenes list their objects without "There is"');
  });

  it('trains, resumes to the same weights, and evaluates on held-out items', async () => {
    const full = join(work, 'full');
    const a = await S.trainStage0(full, tiny, { noEval: false });
    expect(a.done).toBe(true);
    expect(a.eval!.policy.n).toBe(2 * tiny.policyKinds.length);
    expect(existsSync(join(full, 'config.json')) && existsSync(join(full, 'vocab.json')) && existsSync(join(full, 'eval.json'))).toBe(true);
    const split = join(work, 'split');
    // stop after the first step (a step always outlasts 1 ms), then resume
    const b1 = await S.trainStage0(split, tiny, { maxSeconds: 0.001, noEval: true });
    expect(b1.done).toBe(false);
    expect(b1.step).toBe(1);
    b1.model.dispose();
    const b = await S.trainStage0(split, tiny, { noEval: true });
    expect(b.step).toBe(tiny.steps);
    const wa = a.model.namedParameters();
    const wb = new Map(b.model.namedParameters());
    for (const [name, p] of wa) expect(Array.from(await p.value.toArray()), name).toEqual(Array.from(await wb.get(name)!.value.toArray()));
    const losses = (d: string): number[] => readFileSync(join(d, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { loss: number }).loss);
    expect(losses(split)).toEqual(losses(full));
    // init: a new run starts from those weights (an lr of 1e-30 moves no f32 weight: the model after one step is the init)
    const cont = await S.trainStage0(join(work, 'init'), { ...tiny, steps: 1, lr: 1e-30, minLr: 1e-30, init: full }, { noEval: true });
    const wc = new Map(cont.model.namedParameters());
    for (const [name, p] of wa) expect(Array.from(await wc.get(name)!.value.toArray()), name).toEqual(Array.from(await p.value.toArray()));
    cont.model.dispose();
    a.model.dispose();
    b.model.dispose();
  });
});

describe('a tool-reading base', () => {
  it('continues a 1,024-position rotary base at 2,048 positions on random rule books, and evaluates held-out books', async () => {
    const short = join(work, 'rope-1024');
    const m = new t.nn.VisionLanguageModel(t.nn.preset('tiny', tok.size, { maxPositions: 1024, positionEncoding: 'rope', imageSize: 64 }).model);
    await t.nn.saveCheckpoint(short, m);
    m.dispose();
    const mix = { crop: 0, describe: 0, sceneqa: 0, policy: 0, tool: 1 };
    const cfg: t.stages.Stage0Config = { ...tiny, steps: 2, batchSize: 2, evalItems: 2, mixStart: mix, mixEnd: mix, init: short, model: { maxPositions: 2048, positionEncoding: 'rope', imageSize: 64 } };
    const r = await S.trainStage0(join(work, 'tool-base'), cfg);
    expect(r.done).toBe(true);
    expect(r.model.config.maxPositions).toBe(2048);
    // the examples (up to ~1,700 positions) fit the 2,048-position context, and the loss is logged and finite
    const pool = new S.PolicyPool(cfg.seed, cfg.poolSize, 0, cfg.pruning);
    for (const e of [0, 1].flatMap((step) => S.stage0Examples(cfg, pool, step))) {
      const s = S.encodeExample(tok, e);
      const positions = s.prompt.length + s.response.length + e.scenes.length * (r.model.patchesPerImage - 1);
      expect(positions).toBeGreaterThan(1024);
      expect(positions).toBeLessThanOrEqual(2048);
    }
    const lines = readFileSync(join(work, 'tool-base', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { loss: number });
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.every((l) => Number.isFinite(l.loss))).toBe(true);
    expect(r.eval!.tool.n).toBe(2);
    expect(Object.keys(r.eval!.tool.groups)).toEqual(['tool']);
    r.model.dispose();
  });
});

describe('the loss targets', () => {
  it("'text' trains on every text token of prompt and response, 'response' on the answer only", async () => {
    const first = async (targets: 'response' | 'text'): Promise<number> => {
      const dir = join(work, `targets-${targets}`);
      const r = await S.trainStage0(dir, { ...tiny, steps: 1, targets }, { noEval: true, logEvery: 1 });
      r.model.dispose();
      return (JSON.parse(readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n')[0]) as { loss: number }).loss;
    };
    const [response, text] = [await first('response'), await first('text')];
    expect(Number.isFinite(response) && Number.isFinite(text)).toBe(true);
    // the same model and examples: only the token set the mean is taken over differs
    expect(text).not.toBeCloseTo(response, 3);
  });
});

describe('the response weighting', () => {
  it("weighs the step's response tokens by micro-batch, by token or by example, as a reference summed example by example", async () => {
    // six short examples of different answer lengths (crops 9 tokens, descriptions ~40, SceneQA 4) in several micro-batches
    const cfg: t.stages.Stage0Config = { ...tiny, steps: 1, batchSize: 6, patchLoss: 0, microBatchPositions: 300 };
    const model = new t.nn.VisionLanguageModel(t.nn.preset(cfg.preset, tok.size, { seed: cfg.seed, ...cfg.model }).model);
    const examples = S.stage0Examples(cfg, new S.PolicyPool(cfg.seed, cfg.poolSize, 0, cfg.pruning), 0);
    const seqs = examples.map((e) => S.encodeExample(tok, e));
    // each example's response-token NLLs, the initial model on that example alone (float64 sums below)
    const nll = new Map<t.stages.TextExample, number[]>();
    for (const [i, e] of examples.entries()) {
      const [mb] = S.microBatches(model, [seqs[i]], [e], 'response', 1e9);
      const images = await S.renderExampleScenes(mb.extras);
      const logp = t.noGrad(() => S.targetLogProbs(model, S.toTargetInputs(model, mb.tb, images)));
      const v = await logp.toArray();
      nll.set(e, Array.from(v).filter((_, j) => mb.tb.mask[j] === 1).map((x) => -x));
      logp.dispose();
      images?.dispose();
    }
    model.dispose();
    const sumOf = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);
    const groups = S.microBatches(model, seqs, examples, 'response', cfg.microBatchPositions).map((g) => g.extras.flatMap((e) => [nll.get(e)!]));
    expect(groups.length).toBeGreaterThan(1);
    const all = groups.flat();
    const expected = {
      'micro-batch': sumOf(groups.map((g) => sumOf(g.flat()) / g.flat().length)) / groups.length,
      token: sumOf(all.flat()) / all.flat().length,
      example: sumOf(all.map((x) => sumOf(x) / x.length)) / all.length,
    };
    const got: Record<string, number> = {};
    for (const weighting of S.RESPONSE_WEIGHTINGS) {
      const dir = join(work, `weighting-${weighting}`);
      const r = await S.trainStage0(dir, { ...cfg, weighting }, { noEval: true, logEvery: 1 });
      r.model.dispose();
      got[weighting] = (JSON.parse(readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n')[0]) as { loss: number }).loss;
      expect(got[weighting]).toBeCloseTo(expected[weighting], 4);
    }
    // the three weightings differ on these examples, so each comparison above is a real check
    expect(Math.abs(expected.token - expected.example)).toBeGreaterThan(1e-3);
    expect(Math.abs(expected['micro-batch'] - expected.example)).toBeGreaterThan(1e-3);
    await expect(S.trainStage0(join(work, 'weighting-bad'), { ...cfg, weighting: 'sequence' as t.stages.ResponseWeighting }, { noEval: true }))
      .rejects.toThrow(/weighting must be one of micro-batch, token, example, got "sequence"/);
  });
});

describe('the model card', () => {
  it('names the recipe, the model overrides, the init weights, the text-scene, checks, text SceneQA, tool-book and lookup tasks with their held-out groups', () => {
    const dir = join(work, 'card');
    mkdirSync(dir, { recursive: true });
    const cfg: t.stages.Stage0Config = { ...tiny, model: { positionEncoding: 'rope', mergeSize: 2 }, init: 'models/base-cpu',
      mixStart: { ...tiny.mixStart, policyText: 0.2, checksText: 0.15, sceneqaText: 0.3 }, mixEnd: { ...tiny.mixEnd, policyText: 0.4, checksImage: 0.1, tool: 0.2 } };
    const item = { group: 'policy-text/T2', correct: 1, output: '' };
    const ev = { 'policy-text': { accuracy: 0.5, n: 2, groups: { 'policy-text/T2': { accuracy: 0.5, n: 2 } }, chance: { 'policy-text/T2': 0.25 }, items: [item, { ...item, correct: 0 }] } };
    S.writeModelCard(dir, cfg, ev, 60);
    const card = readFileSync(join(dir, 'README.md'), 'utf8');
    expect(card).toContain('with positionEncoding = rope, mergeSize = 2');
    expect(card).toContain('trained from the weights of `models/base-cpu`');
    expect(card).toContain('with the scene given as text, not as an image: policy reading without perception (0.2 → 0.4)');
    expect(card).toContain('| policy-text/T2 | 50.0% | 2 | 25.0% |');
    expect(card).toContain('checks on a scene given as text: 2-4 listed conditions checked in order in the CoT\'s words, the observation step drilled (0.15 → 0)');
    expect(card).toContain('the same checks on an image (0 → 0.1)');
    expect(card).toContain('SceneQA on a scene given as text, answered at once: the lookup of a filter among listed objects (0.3 → 0)');
    expect(card).toContain('a random ToolPolicy rule book in context (never the target\'s rules) and the next tool call with its short CoT (0 → 0.2)');
    expect(card).toContain('cross-entropy on the response tokens');
    S.writeModelCard(dir, { ...cfg, targets: 'text' }, ev, 60);
    expect(readFileSync(join(dir, 'README.md'), 'utf8')).toContain('cross-entropy on the text tokens of prompt and response');
    // the lookup drill with its curriculum, and its held-out group
    const drill = { ...cfg, mixStart: { ...cfg.mixStart, lookupText: 0.5, lookupImage: 0.3 }, lookup: { phases: [{ type: 'material' as const, value: 'metal', steps: 40 }, { type: 'color' as const, value: '*', steps: 60 }], replay: 0.5 } };
    S.writeModelCard(dir, drill, { ...ev, lookup: { accuracy: 1, n: 2, groups: { 'lookup/text': { accuracy: 1, n: 2 } }, items: [] } }, 60);
    const drillCard = readFileSync(join(dir, 'README.md'), 'utf8');
    expect(drillCard).toContain('about a scene given as text (0.5 → 0) or as an image (0.3 → 0), or "Is there an object with the same color as <image>?" with a crop (0 → 0), yes and no at even odds; asked values by step: metal 40, any color 60, then any (re-asking earlier phases 0.5 of the time)');
    expect(drillCard).toContain('| lookup/text | 100.0% | 2 |');
    expect(drillCard).toContain('the token mean of each length-sorted micro-batch, micro-batches weighed equally');
    // the drill in the CoT's words, and every example weighed equally
    S.writeModelCard(dir, { ...drill, weighting: 'example', lookup: { ...drill.lookup, form: 'observation' } }, ev, 60);
    const obsCard = readFileSync(join(dir, 'README.md'), 'utf8');
    expect(obsCard).toContain('the lookup drill: "Condition 1: check if there is any metal object." answered as the CoT observes');
    expect(obsCard).toContain('every example weighed equally (the token mean within an example)');
    S.writeModelCard(dir, { ...drill, lookup: { ...drill.lookup, form: 'bridge' } }, ev, 60);
    expect(readFileSync(join(dir, 'README.md'), 'utf8')).toContain('the lookup drill: "Is there a metal object?" answered in the CoT\'s words');
    S.writeModelCard(dir, drill, ev, 60);
    expect(readFileSync(join(dir, 'README.md'), 'utf8')).toContain('the lookup drill: "Is there a metal object?" → \\boxed{yes|no} about');
  });
});

describe('targetBatch', () => {
  it('packs the target slots: their logits are the full forward rows, targets follow an image\'s last slot', async () => {
    const model = new t.nn.VisionLanguageModel(t.nn.preset('tiny', 40, { maxPositions: 64 }).model);
    try {
      const P = model.patchesPerImage;
      const seqs = [
        { prompt: [1, 4], response: [9, 10, 2] }, // the first target follows the image
        { prompt: [1, 7, 8, 4, 11], response: [12, 2] },
      ];
      const tb = S.targetBatch(model, seqs);
      expect(tb.R).toBe(3);
      expect(Array.from(tb.targets)).toEqual([9, 10, 2, 12, 2, 0]);
      expect(Array.from(tb.mask)).toEqual([1, 1, 1, 1, 1, 0]);
      // row 0: token 1 is the image (slots 1..P), so target 9 is read at slot P
      expect(tb.rows[0]).toBe(P);
      expect(tb.rows[3]).toBe(tb.batch.T + 3 + P); // row 1: <bos> 7 8 <image>×P then 11 at 3 + P
      const S_ = model.config.imageSize;
      const images = t.rand([2, 3, S_, S_]);
      const full = t.noGrad(() => model.forward(model.toInputs(tb.batch, images)));
      const ti = S.toTargetInputs(model, tb, images);
      const packed = t.noGrad(() => model.forward(ti.inputs, { logitsAt: ti.rows }));
      const F = await full.toArray();
      const Pk = await packed.toArray();
      const V = 40;
      tb.rows.forEach((slot, k) => {
        if (!tb.mask[k]) return;
        for (let v = 0; v < V; v++) expect(Pk[k * V + v]).toBeCloseTo(F[slot * V + v], 5);
      });
      // VM-CPT targets: every text token after the first, never an image place
      const text = S.targetBatch(model, seqs, 'text');
      expect(text.counts).toEqual([3, 5]);
      t.tidy(() => [full, packed, images, ti.rows, ti.targets, ti.mask, ti.inputs.tokens, ti.inputs.positions].forEach((x) => x.dispose()));
    } finally {
      model.dispose();
    }
  });
});
