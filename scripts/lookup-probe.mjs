#!/usr/bin/env node
// `node scripts/lookup-probe.mjs MODEL_DIR` (after `npm run build`): does the model look the checked
// value up in a text scene? Teacher-forced log-probs on a one-condition checks prompt ("check if there
// is any metal object") over two-object scenes (docs/stage0.md, run 6):
//   1. the observation: log p("no") and log p("a") after "There is", with the second object rubber
//      or metal: a model that looks the value up moves these with the scene;
//   2. the object it names: log p("a small") and log p("a large") when only the second object (of the
//      other size) is metal: a lookup names it, copy-the-first names the first listed object.
import * as t from '../dist/src/index.js';
import { targetBatch, toTargetInputs, targetLogProbs } from '../dist/src/trimpi/stages/batch.js';
await t.init();
const model = t.nn.loadVisionLanguageModel(process.argv[2]);
const tok = t.data.defaultTokenizer();
const seconds = [['small yellow', 'cylinder'], ['large red', 'cube'], ['small blue', 'sphere']];
const cases = [];
for (const [sizeColor, shape] of seconds) {
  const first = `${sizeColor.startsWith('small') ? 'large' : 'small'} green rubber cube`;
  for (const material of ['rubber', 'metal']) for (const ans of ['no', 'a']) cases.push({ probe: 1, objs: [first, `${sizeColor} ${material} ${shape}`], ans });
  for (const ans of ['a small', 'a large']) cases.push({ probe: 2, objs: [first, `${sizeColor} metal ${shape}`], ans });
}
const seqs = cases.map(({ objs, ans }) => ({
  prompt: tok.encode(`--- Checks ---\nCheck each condition in order; after a yes, focus only on the objects found.\n# Condition 1: check if there is any metal object.\n---\nThe objects: ${objs.map((o) => `There is a ${o}.`).join(' ')}\nWhat do the checks find in the image?`),
  response: tok.encode(`<think> Condition 1: check if there is any metal object. There is ${ans}`),
}));
const tb = targetBatch(model, seqs);
const lp = await t.noGrad(() => targetLogProbs(model, toTargetInputs(model, tb, null))).toArray();
cases.forEach((c, i) => console.log(`probe ${c.probe}: ${c.objs.join(' / ')} -> "There is ${c.ans}"`.padEnd(90), 'log p', lp[i * tb.R + seqs[i].response.length - 1].toFixed(3)));
process.exit(0);
