#!/usr/bin/env node
// `node scripts/lookup-probe-drill.mjs MODEL_DIR [N] [MIN_OBJECTS] [MAX_OBJECTS]` (after `npm run build`):
// teacher-forced accuracy of the lookup drill (lookupExample, any type and value; default 64 items, 1-4
// objects) on text and on image scenes, split by the asked type: an item counts when the gold answer
// token ("{yes" / "{no") outscores the other. Cheap enough to run on a training run's checkpoint
// while it trains (docs/stage0.md, "Run 8").
import * as t from '../dist/src/index.js';
import * as B from '../dist/src/trimpi/stages/batch.js';
import * as G from '../dist/src/trimpi/stages/generation.js';
await t.init();
const S = t.stages;
const [dir, nArg, minO, maxO] = [process.argv[2], Number(process.argv[3] ?? 64), Number(process.argv[4] ?? 1), Number(process.argv[5] ?? 4)];
const model = t.nn.loadVisionLanguageModel(dir);
const tok = t.data.defaultTokenizer();
const out = {};
for (const sceneAs of ['text', 'image']) {
  const ex = Array.from({ length: nArg }, (_, i) => S.lookupExample(t.data.rng(77, 'probe', sceneAs, i), sceneAs, undefined, { minObjects: minO, maxObjects: maxO }));
  const pairs = ex.flatMap((e) => [e.response, e.response.includes('yes') ? '\\boxed{no}' : '\\boxed{yes}'].map((r) => ({ ...e, response: r })));
  const seqs = pairs.map((e) => G.encodeExample(tok, e));
  const images = await G.renderExampleScenes(pairs);
  const tb = B.targetBatch(model, seqs);
  const lp = await t.noGrad(() => B.targetLogProbs(model, B.toTargetInputs(model, tb, images))).toArray();
  const by = {};
  ex.forEach((e, i) => {
    // the answer token: before the closing brace and the end-of-sequence token
    const sc = (row) => lp[row * tb.R + tb.counts[row] - 3];
    const ok = sc(2 * i) > sc(2 * i + 1) ? 1 : 0;
    const word = /Is there an? (\w+)/.exec(e.prompt)[1];
    const ty = t.data.ATTRIBUTE_TYPES.find((x) => t.data.ATTRIBUTE_VALUES[x].includes(word));
    (by[ty] ??= []).push(ok);
    (by.all ??= []).push(ok);
  });
  out[sceneAs] = Object.fromEntries(Object.entries(by).map(([k, v]) => [k, Math.round((100 * v.reduce((a, b) => a + b, 0)) / v.length)]));
}
console.log(JSON.stringify({ dir, ...out }));
process.exit(0);
