#!/usr/bin/env node
// `node scripts/lookup-probe-drill.mjs MODEL_DIR [N] [MIN_OBJECTS] [MAX_OBJECTS] [FORM] [SCENE_TEXT]` (after `npm run build`):
// teacher-forced accuracy of the lookup drill (lookupExample, any type and value; default 64 items, 1-4
// objects; FORM 'answer' (default), 'observation' (the CoT's words) or 'bridge' (the answer's question, the CoT's words);
// SCENE_TEXT how text scenes list their objects, 'sentences' or 'list' (default: the run's stage0.json beside or above MODEL_DIR, else 'sentences')) on text and on image scenes, split
// by the asked type: an item counts when the gold answer's deciding token ("yes" / "no", or "a" / "no"
// after "There is") outscores the other answer's. `textGoldYes` / `imageGoldYes`: the share of items whose
// gold is yes, what a constant "yes" scores (a constant "no": 100 minus it), to tell a lookup from a prior. Cheap enough to run on a training run's checkpoint
// while it trains (docs/stage0.md, "Run 8").
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as t from '../dist/src/index.js';
import * as B from '../dist/src/trimpi/stages/batch.js';
import * as G from '../dist/src/trimpi/stages/generation.js';
await t.init();
const S = t.stages;
const [dir, nArg, minO, maxO, form] = [process.argv[2], Number(process.argv[3] ?? 64), Number(process.argv[4] ?? 1), Number(process.argv[5] ?? 4), process.argv[6] ?? 'answer'];
// the run's config sits beside the weights (a finished run) or one level up (a run's checkpoint/)
const runConfig = [join(dir, 'stage0.json'), join(dir, '..', 'stage0.json')].find((f) => existsSync(f));
const style = process.argv[7] ?? (runConfig ? JSON.parse(readFileSync(runConfig, 'utf8')).sceneText : undefined) ?? 'sentences';
const model = t.nn.loadVisionLanguageModel(dir);
const tok = t.data.defaultTokenizer();
const out = {};
for (const sceneAs of ['text', 'image']) {
  const ex = Array.from({ length: nArg }, (_, i) => S.lookupExample(t.data.rng(77, 'probe', sceneAs, i), sceneAs, undefined, { minObjects: minO, maxObjects: maxO }, form, style));
  // the other answer: for the observation form, the gold's condition with the other observation
  // (observationText with no match, or with a made-up object that has the asked value)
  const other = (e) => {
    if (form !== 'observation' && form !== 'bridge') return e.response.includes('yes') ? '\\boxed{no}' : '\\boxed{yes}';
    const value = /(?:check if there is any|Is there an?) (\w+)/.exec(e.prompt)[1];
    const type = t.data.ATTRIBUTE_TYPES.find((x) => t.data.ATTRIBUTE_VALUES[x].includes(value));
    const c = { type, value };
    const seen = e.response.includes('There is no') ? [{ size: 'large', color: 'red', material: 'metal', shape: 'cube', [type]: value }] : [];
    const observed = t.data.observationText(c, [], seen, seen.map((_, i) => i));
    return form === 'bridge' ? observed : `Condition 1: ${t.data.conditionText(c, false)} ${observed}`;
  };
  const pairs = ex.flatMap((e) => [e.response, other(e)].map((r) => ({ ...e, response: r })));
  const seqs = pairs.map((e) => G.encodeExample(tok, e));
  const images = await G.renderExampleScenes(pairs);
  const tb = B.targetBatch(model, seqs);
  const lp = await t.noGrad(() => B.targetLogProbs(model, B.toTargetInputs(model, tb, images))).toArray();
  const by = {};
  const gold = {};
  ex.forEach((e, i) => {
    // the deciding token: the first where the two answers differ
    const [a, b] = [seqs[2 * i].response, seqs[2 * i + 1].response];
    let j = 0;
    while (a[j] === b[j]) j++;
    const ok = lp[2 * i * tb.R + j] > lp[(2 * i + 1) * tb.R + j] ? 1 : 0;
    const word = /(?:Is there an?|check if there is any) (\w+)/.exec(e.prompt)[1];
    const ty = t.data.ATTRIBUTE_TYPES.find((x) => t.data.ATTRIBUTE_VALUES[x].includes(word));
    (by[ty] ??= []).push(ok);
    (by.all ??= []).push(ok);
    const yes = /\\boxed\{no\}|There is no/.test(e.response) ? 0 : 1;
    (gold[ty] ??= []).push(yes);
    (gold.all ??= []).push(yes);
  });
  const pct = (o) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, Math.round((100 * v.reduce((a, b) => a + b, 0)) / v.length)]));
  out[sceneAs] = pct(by);
  // the share of items whose gold is yes: a model that always says yes scores this, always no 100 minus it
  out[`${sceneAs}GoldYes`] = pct(gold);
}
console.log(JSON.stringify({ dir, form, style, ...out }));
process.exit(0);
