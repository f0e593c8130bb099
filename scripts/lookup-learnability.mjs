#!/usr/bin/env node
// `node scripts/lookup-learnability.mjs TASK [STEPS] [DIM] [LAYERS]` (after `npm run build`; env LR (default 1e-3), INITSTD (the weights' init std, the preset's 0.02 by default), WD (weight decay, 0.1), POS=learned
// for learned positions, PLAIN=1 for bare yes / no answers, ALT=1 to name the asked value by a token no scene holds, MATERIAL=metal|both to ask only about materials (CURRIC=N: metal for N steps, then both; CURRIC alone: each type's first value asked for N steps, then any; CYCLE=N: one asked value a batch, cycling through all sixteen, for N steps), PHASES / REPLAY for a curriculum of asked values (see below), HELD (held-out items, 96), INIT=dir to start from a base model's weights, SHOW=1 to print a few greedy answers): can a small decoder trained from scratch
// learn one reading skill on text scenes? Batches of 32, AdamW lr 1e-3; every 50 steps the held-out
// accuracy (96 items, teacher forced). docs/stage0.md ("Run 7") has the figures. TASK:
//   after   "The objects: <3-6 objects>\nIs there a <value> object?" -> \boxed{yes|no} (even odds, the
//           scene edited to give the answer; LEAKY=1: the type drawn after it, which leaks it)
//   before  the same, the question before the scene
//   one     the same with one listed object  onecot   one object, the response first copies the asked
//           attribute ("The material is rubber. \boxed{no}")
//   copy    one object, "What material?" -> \boxed{its material}
//   qcopy   one object, "Is there a <value> object?" -> \boxed{<value>} (a copy from the question)
//   which   3-6 objects, exactly one has the value: "Which object is <value>?" -> \boxed{<that object>}
import * as t from '../dist/src/index.js';
import * as B from '../dist/src/trimpi/stages/batch.js';
import { encodeExample, evaluateExamples } from '../dist/src/trimpi/stages/generation.js';
import { aggregateLoss } from '../dist/src/trimpi/losses/aggregate.js';

const [task, steps, dim, layers] = [process.argv[2] ?? 'after', Number(process.argv[3] ?? 300), Number(process.argv[4] ?? 64), Number(process.argv[5] ?? 2)];
await t.init();
const D = t.data;
const tok = D.defaultTokenizer();
// INIT=dir: start from a base model's weights (e.g. results/stage0-experiments/base6) instead of a fresh DIM × LAYERS decoder
const model = process.env.INIT
  ? t.nn.loadVisionLanguageModel(process.env.INIT)
  : new t.nn.VisionLanguageModel(t.nn.preset('cpu', tok.size, { dim, layers, heads: Math.max(1, dim / 32), positionEncoding: process.env.POS ?? 'rope', maxPositions: 256, ...(process.env.INITSTD ? { initStd: Number(process.env.INITSTD) } : {}) }).model);
const trainer = new t.nn.Trainer(model, { lr: Number(process.env.LR ?? 1e-3), minLr: Number(process.env.LR ?? 1e-3) / 10, warmupSteps: 20, totalSteps: steps, weightDecay: Number(process.env.WD ?? 0.1), betas: [0.9, 0.95], maxGradNorm: 1, seed: 0 });
const single = ['one', 'onecot', 'copy', 'qcopy'].includes(task);

// PHASES="type:value:steps,..." (tasks one / after): a curriculum of asked values, e.g.
// "material:metal:100,material:*:100,size:large:100,size:*:100" ('*' any value of the type, or any
// type); after the last phase any type and value. REPLAY=p: that share of each batch re-asks the
// phases already finished. The object is made to hold (yes) or not hold (no) the asked value at even odds.
const phases = (process.env.PHASES ?? '').split(',').filter(Boolean).map((p) => { const [type, value, n] = p.split(':'); return { type, value, steps: Number(n) }; });
function phaseAt(step) {
  let end = 0;
  for (let i = 0; i < phases.length; i++) if (step < (end += phases[i].steps)) return i;
  return phases.length;
}
function phaseItem(r, spec) {
  const scene = single ? D.sampleScene(r, { minObjects: 1, maxObjects: 1 }) : D.sampleScene(r);
  const objects = scene.objects.map((o) => ({ ...o }));
  const type = spec.type === '*' ? r.pick(D.ATTRIBUTE_TYPES) : spec.type;
  const value = spec.value === '*' ? r.pick(D.ATTRIBUTE_VALUES[type]) : spec.value;
  const yes = r.bool();
  const others = D.ATTRIBUTE_VALUES[type].filter((v) => v !== value);
  for (const o of objects) if (o[type] === value) o[type] = r.pick(others);
  if (yes) objects[r.int(0, objects.length - 1)][type] = value;
  const q = type === 'shape' ? `Is there a ${value}?` : `Is there a ${value} object?`;
  const text = `The objects: ${objects.map((x) => `There is a ${D.describeObject(x)}.`).join(' ')}`;
  return { prompt: task === 'before' ? `${q}\n${text}` : `${text}\n${q}`, pair: [yes, !yes].map((b) => `\\boxed{${b ? 'yes' : 'no'}}`), type };
}
let currentStep = 0;

/** One item: prompt, gold response, and the two responses whose answer token the accuracy compares (the gold first). */
function item(r) {
  if (phases.length) {
    const k = phaseAt(currentStep);
    if (k >= phases.length) return phaseItem(r, { type: '*', value: '*' });
    const replay = k > 0 && r.uniform(0, 1) < Number(process.env.REPLAY ?? 0);
    return phaseItem(r, replay ? phases[r.int(0, k - 1)] : phases[k]);
  }
  // after / before over 3-6 objects: a type and value first, the scene edited to give the answer, as the
  // stage-0 drill (lookupExample). LEAKY=1: the draw of the figures before 2026-12-07 (the answer first, then
  // a type with a value that gives it), where the asked type alone predicts the answer 72% of the time
  // (size and material: a "no" needs every object to share the other value, so they are asked mostly for a "yes")
  if (!single && (task === 'after' || task === 'before') && !process.env.LEAKY && !process.env.MATERIAL && !process.env.FIXED && !process.env.ASK && !process.env.ALT && !process.env.PLAIN) {
    return phaseItem(r, { type: '*', value: '*' });
  }
  const scene = single ? D.sampleScene(r, { minObjects: 1, maxObjects: 1 }) : D.sampleScene(r);
  const o = scene.objects[0];
  // the answer first (even odds), then a type and a value that give it
  const yes = r.bool();
  const absentOf = (ty) => D.ATTRIBUTE_VALUES[ty].filter((v) => !scene.objects.some((x) => x[ty] === v));
  // MATERIAL=metal: always "Is there a metal object?" (the answer is the object's material: first order);
  // MATERIAL=both: metal or rubber asked at random (the answer is an XOR of the two words)
  const types = process.env.MATERIAL ? ['material'] : D.ATTRIBUTE_TYPES;
  let type = r.pick(yes ? types : types.filter((ty) => absentOf(ty).length > 0));
  const pool = yes ? [...new Set(scene.objects.map((x) => x[type]))] : absentOf(type);
  // FIXED=1 (set by CURRIC without MATERIAL): each type's first value is the one asked; ASK=type:value
  // (set by CYCLE): that value, whatever the scene
  const asked = process.env.ASK ? process.env.ASK.split(':') : null;
  const value = asked ? asked[1] : process.env.MATERIAL === 'metal' ? 'metal' : process.env.FIXED === '1' ? D.ATTRIBUTE_VALUES[type][0] : r.pick(pool);
  if ((process.env.FIXED === '1' || asked) && single) {
    if (asked) type = asked[0];
    const y = o[type] === value;
    const qq = type === 'shape' ? `Is there a ${value}?` : `Is there a ${value} object?`;
    return { prompt: `The objects: There is a ${D.describeObject(o)}.\n${qq}`, pair: [y, !y].map((b) => `\\boxed{${b ? 'yes' : 'no'}}`) };
  }
  if (process.env.MATERIAL === 'metal' && !pool.includes('metal')) return item(r);
  // ALT=1: the question names the value as the token "{metal" (written \boxed{metal}), a token no scene holds
  const said = process.env.ALT ? `\\boxed{${value}}` : value;
  const q = type === 'shape' ? `Is there a ${said}?` : `Is there a ${said} object?`;
  const text = `The objects: ${scene.objects.map((x) => `There is a ${D.describeObject(x)}.`).join(' ')}`;
  // PLAIN=1: the bare words "yes" / "no" (in a box they are the tokens "{yes" / "{no", always followed by "}")
  const yn = (y) => (process.env.PLAIN ? (y ? 'yes' : 'no') : `\\boxed{${y ? 'yes' : 'no'}}`);
  if (task === 'which') {
    // a value exactly one listed object has; the answer names that object (a copy keyed by the question's word)
    const pairs = D.ATTRIBUTE_TYPES.flatMap((ty) => D.ATTRIBUTE_VALUES[ty].filter((v) => scene.objects.filter((x) => x[ty] === v).length === 1).map((v) => [ty, v]));
    if (pairs.length > 0) {
      const [ty, v] = r.pick(pairs);
      const hit = scene.objects.find((x) => x[ty] === v);
      const other = r.pick(scene.objects.filter((x) => x !== hit));
      return { prompt: `${text}\nWhich object is ${v}?`, pair: [hit, other].map((x) => `\\boxed{${D.describeObject(x)}}`), whole: true };
    }
    return item(r); // no value is unique to one object here: another scene
  }
  if (task === 'copy') return { prompt: `${text}\nWhat material?`, pair: [o.material, o.material === 'metal' ? 'rubber' : 'metal'].map((m) => `\\boxed{${m}}`) };
  if (task === 'qcopy') return { prompt: `${text}\n${q}`, pair: [value, value === 'large' ? 'small' : 'large'].map((m) => `\\boxed{${m}}`) };
  if (task === 'onecot') {
    const cot = `The ${type} is ${o[type]}. `;
    return { prompt: `${text}\n${q}`, pair: [cot + yn(yes), cot + yn(!yes)] };
  }
  return { prompt: task === 'before' ? `${q}\n${text}` : `${text}\n${q}`, pair: [yn(yes), yn(!yes)] };
}

const lossOf = (mb) => {
  const ti = B.toTargetInputs(model, mb.tb, null);
  return aggregateLoss(t.neg(B.targetLogProbs(model, ti)), ti.mask, 'token-mean');
};
currentStep = Infinity; // the held-out items ask any type and value
const held = Array.from({ length: Number(process.env.HELD ?? 96) }, (_, i) => item(D.rng(1, 'held', i)));
/** Share of held-out items whose gold answer token outscores the other (the token before the closing brace). */
async function accuracy() {
  const seqs = held.flatMap((e) => e.pair.map((resp) => encodeExample(tok, { prompt: e.prompt, response: resp })));
  const tb = B.targetBatch(model, seqs);
  const lp = await t.noGrad(() => B.targetLogProbs(model, B.toTargetInputs(model, tb, null))).toArray();
  let right = 0;
  const byType = {};
  held.forEach((_, i) => {
    // the answer token (before the closing brace and the end-of-sequence token), or for 'which' the whole response
    const score = (row) => (held[i].whole ? Array.from({ length: tb.counts[row] }, (_, k) => lp[row * tb.R + k]).reduce((a, b) => a + b, 0) : lp[row * tb.R + tb.counts[row] - (process.env.PLAIN ? 2 : 3)]);
    const ok = score(2 * i) > score(2 * i + 1);
    if (ok) right++;
    if (held[i].type) (byType[held[i].type] ??= []).push(ok ? 1 : 0);
  });
  if (Object.keys(byType).length) lastByType = Object.fromEntries(Object.entries(byType).map(([k, v]) => [k, Math.round((100 * v.reduce((a, b) => a + b, 0)) / v.length)]));
  return +(right / held.length).toFixed(3);
}
let lastByType;
const t0 = performance.now();
// CURRIC=N (with MATERIAL=both): the first N steps ask only about metal, the rest about either material
const curriculum = Number(process.env.CURRIC ?? 0);
const cycle = Number(process.env.CYCLE ?? 0);
const allValues = D.ATTRIBUTE_TYPES.flatMap((ty) => D.ATTRIBUTE_VALUES[ty].map((v) => `${ty}:${v}`));
for (let s = 0; s < steps; s++) {
  currentStep = s;
  if (curriculum && process.env.MATERIAL) process.env.MATERIAL = s < curriculum ? 'metal' : 'both';
  if (curriculum && !process.env.MATERIAL) process.env.FIXED = s < curriculum ? '1' : '0';
  // CYCLE=N: for the first N steps each batch asks one value, cycling through all sixteen; then any
  if (cycle) process.env.ASK = s < cycle ? allValues[s % allValues.length] : '';
  const ex = Array.from({ length: 32 }, (_, k) => item(D.rng(0, 'train', s, k)));
  const seqs = ex.map((e) => encodeExample(tok, { prompt: e.prompt, response: e.pair[0] }));
  const res = trainer.trainStep(B.microBatches(model, seqs, ex, 'response', 4096).map((m) => ({ tb: m.tb })), lossOf);
  res.gradNorm.dispose();
  res.skipped.dispose();
  if (s % 50 === 49 || s === steps - 1) console.log(JSON.stringify({ task, dim, layers, step: s + 1, loss: +(await res.loss.item()).toFixed(3), heldAccuracy: await accuracy(), byType: lastByType, seconds: Math.round((performance.now() - t0) / 1000) }));
  res.loss.dispose();
}
if (process.env.SHOW) {
  const ex = held.slice(0, 6).map((e) => ({ task: 'x', group: 'x', prompt: e.prompt, response: '', scenes: [], score: () => 0 }));
  const r = await evaluateExamples(model, tok, ex, { maxNewTokens: 12, batchSize: 8 });
  r.items.forEach((it, i) => console.log(JSON.stringify(held[i].prompt.slice(-50)), '->', JSON.stringify(it.output)));
}
process.exit(0);
