// Training and evaluation examples as text + scenes, before tokenization and rendering. Stage 0 draws
// an endless seeded stream of them; evaluation draws held-out ones from other streams.
import { Condition, Policy, PolicyMode, PolicyPruning, clevrQuery, clevrResponse, conditionText, observationText, policyText, randomPolicies, reachableCases, scoreClevr } from '../data/clevr_policy.js';
import { policyCropScenes } from '../data/render.js';
import { Rng, rng } from '../data/rng.js';
import { ATTRIBUTE_TYPES, ATTRIBUTE_VALUES, AttributeType, ObjectAttributes, Scene, SceneOptions, cropScene, describeObject, randomAttributes, resolveSceneOptions, sampleScene } from '../data/scene.js';
import { QaKind, existenceQuestion, sceneQaPrompt, sceneQaResponse, sceneQuestion, scoreSceneQa } from '../data/sceneqa.js';
import { sceneForCase } from '../data/clevr_policy.js';
import { ToolRules, randomToolRules, scoreToolCall, toolPolicyText, toolPrompt, toolSample } from '../data/tool_policy.js';
import { check } from '../../gpu/errors.js';

/** One example: a prompt with one `<image>` per scene (in order), the gold response, and how to score an output. */
export interface TextExample {
  task: 'crop' | 'describe' | 'sceneqa' | 'sceneqa-text' | 'lookup' | 'checks' | 'policy' | 'policy-text' | 'tool';
  prompt: string;
  response: string;
  /** Scenes for the prompt's `<image>` places, in order (policy crops first, then the image). */
  scenes: Scene[];
  /** 1 if `output` is right, else 0 (tool calls: the call's score in [0, 1], 0.5 tool + 0.5 arguments). */
  score: (output: string) => number;
  /** Label for per-group metrics ("sceneqa/exist", "policy/T2"). */
  group: string;
  /** Reachable cases of the policy (policy examples; drawn uniformly): the balanced majority baseline is 1/cases. */
  cases?: number;
}

/** The question of the describe and crop tasks. */
export const DESCRIBE_QUESTION = 'What objects are there?';

/** "There is a large green rubber cylinder. There is a …": every object, left to right. */
export function describeScene(scene: Scene): string {
  const objs = [...scene.objects].sort((a, b) => a.box[0] + a.box[2] - (b.box[0] + b.box[2]));
  return objs.map((o) => `There is a ${describeObject(o)}.`).join(' ');
}

/**
 * How a scene given as text lists its objects: 'sentences' "There is a large red metal cube. There is a
 * …" (the describe task's words; the runs before the option), or 'list' "large red metal cube; small
 * blue rubber sphere." Under 'sentences' every "There is" of the prompt is followed by "a", and the
 * CoT's observation ("There is a … / There is no …") then stayed a constant where the same lookup
 * answered \boxed{yes|no} was learnt; under 'list' it is learnt (docs/stage0.md, "Run 18").
 */
export type SceneText = 'sentences' | 'list';
/** Every SceneText (for validating recipes). */
export const SCENE_TEXTS: readonly SceneText[] = ['sentences', 'list'];

/**
 * A scene given as text to the reading tasks, in the scene's own object order (SceneText gives the
 * wording): the order in which the CoT picks the object it names when several match ("There are 2
 * spheres, including a …"), so that choice can be read off the list (left to right, it could not).
 */
export function sceneAsText(scene: Scene, style: SceneText = 'sentences'): string {
  if (style === 'list') return `${scene.objects.map(describeObject).join('; ')}.`;
  return scene.objects.map((o) => `There is a ${describeObject(o)}.`).join(' ');
}

/** A scene of 3–6 objects to be described, every object left to right (dense perception supervision). */
export function describeExample(r: Rng): TextExample {
  const scene = sampleScene(r);
  const response = describeScene(scene);
  return { task: 'describe', group: 'describe', prompt: `<image>\n${DESCRIBE_QUESTION}`, response, scenes: [scene], score: (o) => Number(o.trim() === response) };
}

/**
 * The easiest perception example: one large object filling the frame (the -M policies' crops), to
 * be described: "There is a large red metal cube." A from-scratch ViT learns colours, shapes and
 * materials here first, then finds them among several objects.
 */
export function cropExample(r: Rng): TextExample {
  const scene = cropScene(r, randomAttributes(r));
  const response = describeScene(scene);
  return { task: 'crop', group: 'crop', prompt: `<image>\n${DESCRIBE_QUESTION}`, response, scenes: [scene], score: (o) => Number(o.trim() === response) };
}

/** A SceneQA question (count, exist or query; `kind` fixes it) about a fresh scene, answered in a box. */
export function sceneQaExample(r: Rng, kind?: QaKind): TextExample {
  const scene = sampleScene(r);
  const q = sceneQuestion(r, scene.objects, kind);
  return { task: 'sceneqa', group: `sceneqa/${q.kind}`, prompt: sceneQaPrompt(q), response: sceneQaResponse(q), scenes: [scene], score: (o) => Number(scoreSceneQa(o, q.answer).correct) };
}

/**
 * A SceneQA question about a scene given as text (sceneAsText), answered at once in a box: "The
 * objects: There is a small red metal cube. … How many metal objects are there?" → "\\boxed{1}". It
 * rewards the lookup that a policy's observation step needs, matching a filter against the listed
 * objects only (the filter's words are also in the question), with the answer right after it.
 */
export function sceneQaTextExample(r: Rng, kind?: QaKind, style: SceneText = 'sentences'): TextExample {
  const scene = sampleScene(r);
  const q = sceneQuestion(r, scene.objects, kind);
  return {
    task: 'sceneqa-text', group: `sceneqa-text/${q.kind}`, prompt: `The objects: ${sceneAsText(scene, style)}\n${q.question}`,
    response: sceneQaResponse(q), scenes: [], score: (o) => Number(scoreSceneQa(o, q.answer).correct),
  };
}

/** The value a lookup drill asks about: an attribute type and one of its values; '*' draws either uniformly. */
export interface LookupAsk {
  type: AttributeType | '*';
  value: string;
}

/**
 * The existence lookup, drilled so that it can be learned: "<scene>\nIs there a metal object?" →
 * "\boxed{yes}" or "\boxed{no}" at even odds, the scene (an image, or text as sceneAsText) made to
 * hold the asked value (yes: one object is given it) or not (no: every object that had it gets
 * another value of its type). `ask` fixes the asked type or value (a curriculum: docs/stage0.md,
 * "Run 8"). With yes and no balanced and the value drawn freely, the answer is an XOR of two words (the
 * asked value and the object's) with no first-order gradient, and small decoders sit at chance; a
 * phase asking one fixed value is first order ("is this object metal?") and builds the detector that
 * the free question then reuses. sceneAs 'crop' asks as the -M policies do, the value shown by a
 * crop image (one large object with it): "<image>\nIs there an object with the same color as <image>?";
 * crops never show a size (they are zoomed, as the policies' are), so a size ask there asks another type.
 * `sceneOptions`: the objects per scene (default 3-6).
 *
 * `form` 'answer' asks a question answered "\boxed{yes}" / "\boxed{no}"; 'observation' asks in the
 * policies' own words and answers as their CoT's first step does ("<scene>\nCondition 1: check if there
 * is any metal object." → "Condition 1: check if there is any metal object. There is a large red metal
 * cube. Focus on the metal objects." or "… There is no metal object."; with a crop, the value named in
 * words as the -M CoT names it): the yes / no is then the token after "There is" that the in-context
 * CoT has to get right (docs/stage0.md, "Run 10"). Scored on that yes / no. 'bridge' asks the answer
 * form's question and answers in the observation's words ("Is there a metal object?" → "There is a large
 * red metal cube. Focus on the metal objects." or "There is no metal object.": docs/stage0.md, "Run 17").
 */
export function lookupExample(r: Rng, sceneAs: 'image' | 'text' | 'crop', ask: LookupAsk = { type: '*', value: '*' }, sceneOptions: SceneOptions = {},
  form: LookupForm = 'answer', style: SceneText = 'sentences'): TextExample {
  // crops are zoomed, so never show a size (as in -M policies): a size ask becomes another type there
  const cropTypes = ATTRIBUTE_TYPES.filter((t) => t !== 'size');
  const sizeByCrop = sceneAs === 'crop' && ask.type === 'size';
  const type = sceneAs === 'crop' ? (ask.type === '*' || sizeByCrop ? r.pick(cropTypes) : ask.type) : ask.type === '*' ? r.pick(ATTRIBUTE_TYPES) : ask.type;
  const askedValue = sizeByCrop ? '*' : ask.value;
  check(askedValue === '*' || ATTRIBUTE_VALUES[type].includes(askedValue), 'lookupExample', () => `${askedValue} is not a ${type}; expected one of ${ATTRIBUTE_VALUES[type].join(', ')} or '*'`);
  const value = askedValue === '*' ? r.pick(ATTRIBUTE_VALUES[type]) : askedValue;
  const yes = r.bool();
  // objects drawn at random, then edited: none keeps the asked value, and for a yes one gets it
  const withValue = (a: ObjectAttributes, v: string): ObjectAttributes => ({ ...a, [type]: v }) as ObjectAttributes;
  const others = ATTRIBUTE_VALUES[type].filter((v) => v !== value);
  const o = resolveSceneOptions(sceneOptions);
  const attrs = Array.from({ length: r.int(o.minObjects, o.maxObjects) }, () => randomAttributes(r)).map((a) => (a[type] === value ? withValue(a, r.pick(others)) : a));
  if (yes) {
    const i = r.int(0, attrs.length - 1);
    attrs[i] = withValue(attrs[i], value);
  }
  const scene = sampleScene(r, sceneOptions, attrs);
  const question = sceneAs === 'crop' ? `Is there an object with the same ${type} as <image>?` : existenceQuestion({ [type]: value });
  // the crop: one large object with the asked value, its other attributes random
  const crop = sceneAs === 'crop' ? [cropScene(r, withValue(randomAttributes(r), value))] : [];
  const answer = yes ? 'yes' : 'no';
  const where = sceneAs === 'text' ? `The objects: ${sceneAsText(scene, style)}` : '<image>';
  const scenes = sceneAs === 'text' ? [] : [scene, ...crop];
  if (form === 'observation' || form === 'bridge') {
    // 'observation' asks and repeats the condition as the CoT's first step does; 'bridge' asks the
    // drill's question and answers with the observation alone
    const asCondition = form === 'observation';
    const c: Condition = { type, value, ...(asCondition && sceneAs === 'crop' ? { crop: 0 } : {}) };
    const matches = scene.objects.flatMap((o, i) => (o[type] === value ? [i] : []));
    const observed = observationText(c, [], scene.objects, matches);
    const lead = asCondition ? String.raw`Condition 1: check if there is any [^.]*(?:\([^)]*\))?\. ` : '';
    const decision = new RegExp(String.raw`^\s*${lead}There (is no|is a|are \d)`);
    const said = (out: string): string | null => {
      const m = decision.exec(out);
      return m ? (m[1] === 'is no' ? 'no' : 'yes') : null;
    };
    return {
      task: 'lookup', group: `lookup/${sceneAs}`,
      prompt: asCondition ? `${where}\nCondition 1: ${conditionText(c, true)}` : `${where}\n${question}`,
      response: asCondition ? `Condition 1: ${conditionText(c, false)} ${observed}` : observed,
      scenes, score: (out) => Number(said(out) === answer),
    };
  }
  return {
    task: 'lookup', group: `lookup/${sceneAs}`, prompt: `${where}\n${question}`,
    response: `\\boxed{${answer}}`, scenes, score: (out) => Number(scoreSceneQa(out, answer).correct),
  };
}

/** How the lookup drill asks and answers (lookupExample). */
export type LookupForm = 'answer' | 'observation' | 'bridge';
/** Every LookupForm (for validating recipes). */
export const LOOKUP_FORMS: readonly LookupForm[] = ['answer', 'observation', 'bridge'];

/**
 * A policy given in context (policy text, then the image and the query), a scene drawn for a
 * uniformly chosen reachable case, and the gold CoT. `cropSeed` seeds the -M crop renders.
 */
export function policyExample(r: Rng, p: Policy, cropSeed: number, withPolicy = true): TextExample {
  const { cases, scene, response, score } = drawCase(r, p);
  const prompt = `<image>\n${clevrQuery(p.name)}`;
  return {
    task: 'policy', group: `policy/${p.mode}${p.depth}`, cases,
    prompt: withPolicy ? `${policyText(p)}\n${prompt}` : prompt,
    response, scenes: withPolicy ? [...policyCropScenes(p, cropSeed), scene] : [scene], score,
  };
}

/** A uniformly chosen reachable case of `p`, a scene drawn for it, the gold CoT and its scorer. */
function drawCase(r: Rng, p: Policy): { cases: number; scene: Scene; response: string; score: (output: string) => number } {
  const { reachable } = reachableCases(p);
  const k = r.pick(reachable);
  const scene = sceneForCase(r, p, k);
  return { cases: reachable.length, scene, response: clevrResponse(p, scene.objects).response, score: (o) => Number(scoreClevr(o, k, p.cases).correct) };
}

/**
 * Policy reading without perception: a -T policy in context with its scene given as text, the
 * objects named as the describe task does, in the scene's order (sceneAsText: "The objects: There is a large red metal cube. …"), in
 * place of the image; the gold CoT is the image version's. It separates the two skills that
 * following a policy in context needs, reading the policy and seeing the scene, so a curriculum can
 * teach the first while the vision tower is still poor.
 */
export function policyTextSceneExample(r: Rng, p: Policy, style: SceneText = 'sentences'): TextExample {
  check(p.mode === 'T', 'policyTextSceneExample', () => `a text scene replaces the image of a -T policy; policy ${p.name} is -${p.mode} (its crops are images)`);
  const { cases, scene, response, score } = drawCase(r, p);
  return {
    task: 'policy-text', group: `policy-text/T${p.depth}`, cases,
    prompt: `${policyText(p)}\nThe objects: ${sceneAsText(scene, style)}\n${clevrQuery(p.name)}`, response, scenes: [], score,
  };
}

/** The header of the checks task's list (its lines then read as a policy's conditions). */
export const CHECKS_HEADER = '--- Checks ---\nCheck each condition in order; after a yes, focus only on the objects found.';

/**
 * The observation step of a policy's CoT, drilled: 2–4 conditions (distinct attribute types, in a
 * random order) listed like a policy's, and a scene as an image or as text; the response checks them
 * in order as the gold CoT does ("Condition 2: check if there is any green object. There is a large
 * green metal cylinder. Focus on the green objects."), each check among the objects a yes left in
 * focus. Yes and no are drawn with even odds where both are possible.
 * Every observation the policies' CoT makes, four at most per example, in the CoT's own words
 * (observationText), without the branching: a policy example has one to four. `sceneOptions`: the
 * scene's size and object count (default: sampleScene's 3-6 objects).
 */
export function checksExample(r: Rng, sceneAs: 'image' | 'text', sceneOptions: SceneOptions = {}, style: SceneText = 'sentences'): TextExample {
  const scene = sampleScene(r, sceneOptions);
  const objects = scene.objects;
  const types = r.shuffle(ATTRIBUTE_TYPES).slice(0, r.int(2, 4));
  const lines: string[] = [];
  const steps: string[] = [];
  const trueConds: Condition[] = [];
  let focus = objects.map((_, i) => i);
  types.forEach((type, i) => {
    // yes or no with even odds (where both are possible): a value an object in focus has, or one none has
    const present = ATTRIBUTE_VALUES[type].filter((v) => focus.some((j) => objects[j][type] === v));
    const absent = ATTRIBUTE_VALUES[type].filter((v) => !present.includes(v));
    const value = r.pick(present.length > 0 && (absent.length === 0 || r.bool()) ? present : absent);
    const c: Condition = { type, value };
    const matches = focus.filter((j) => objects[j][type] === value);
    lines.push(`# Condition ${i + 1}: ${conditionText(c, true)}`);
    steps.push(`Condition ${i + 1}: ${conditionText(c, false)} ${observationText(c, trueConds, objects, matches)}`);
    if (matches.length > 0) {
      trueConds.push(c);
      focus = matches;
    }
  });
  const where = sceneAs === 'image' ? '<image>' : `The objects: ${sceneAsText(scene, style)}`;
  const response = `<think> ${steps.join(' ')} </think>`;
  return {
    task: 'checks', group: `checks/${sceneAs}`, prompt: `${CHECKS_HEADER}\n${lines.join('\n')}\n---\n${where}\nWhat do the checks find in the image?`,
    response, scenes: sceneAs === 'image' ? [scene] : [], score: (o) => Number(o.trim() === response),
  };
}

/**
 * A ToolPolicy-style example with a random rule book in context (randomToolRules: never the target's
 * rules): the policy text, then 1 or 2 images (35% two) with their names, a profile, a query and the
 * history, and the gold next call with its short CoT ("The next step is to … so by Rule 9 use
 * OCR_v2."). Teaches reading a rule book, not one book's answers; prompts run to ~1,600 positions.
 */
export function toolPolicyExample(r: Rng, rules: ToolRules): TextExample {
  const count = r.bool(0.35) ? 2 : 1;
  const first = r.int(1, 2000);
  const scenes = Array.from({ length: count }, () => sampleScene(r));
  const s = toolSample(r, scenes.map((sc, k) => ({ name: `image/image_${first + k}.png`, objects: sc.objects })), { rules });
  return {
    task: 'tool', group: 'tool', prompt: `${toolPolicyText(rules)}\n${toolPrompt(s)}`, response: s.response, scenes,
    score: (o) => scoreToolCall(o, s.target).score,
  };
}

/** Pools of random (never target) policies per mode and depth, and of random ToolPolicy rule books: windows of endless streams. */
export class PolicyPool {
  private readonly pools = new Map<string, Policy[]>();
  private readonly books = new Map<number, ToolRules>();
  constructor(readonly seed: number, readonly size: number, readonly offset = 0, readonly pruning: PolicyPruning = 'paper') {}
  /** Rule book i of the window (randomToolRules, seeded by the pool's seed and offset + i). */
  tool(i: number): ToolRules {
    check(Number.isInteger(i) && i >= 0 && i < this.size, 'PolicyPool.tool', () => `rule book ${i} is outside the pool's ${this.size}`);
    let b = this.books.get(i);
    if (!b) {
      b = randomToolRules(rng(this.seed, 'tool-rules', this.offset + i));
      this.books.set(i, b);
    }
    return b;
  }
  get(mode: PolicyMode, depth: number): Policy[] {
    const key = `${mode}${depth}`;
    let p = this.pools.get(key);
    if (!p) {
      p = randomPolicies(this.seed, mode, depth, this.size, this.offset, this.pruning);
      this.pools.set(key, p);
    }
    return p;
  }
}
