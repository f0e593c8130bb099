// ClevrPolicy: random decision-tree policies over CLEVR attributes (docs/trimpi.md section 3.2), their
// text (-T) and image-valued (-M) forms, the evaluator, the gold chain of thought, scene construction
// that reaches a chosen case, and the exact-match scorer. No GPU needed (crops are rendered elsewhere).
import { TrimpiError, check } from '../../gpu/errors.js';
import { Rng, rng } from './rng.js';
import { lastBoxed } from './boxed.js';
import {
  ATTRIBUTE_TYPES, ATTRIBUTE_VALUES, AttributeType, ObjectAttributes, Scene, SceneOptions, describeObject,
  placeObjects, randomAttributes, resolveSceneOptions, sceneCamera,
} from './scene.js';

/** How a policy is given: 'T' as text only, 'M' with some values shown as image crops (`<image>`). */
export type PolicyMode = 'T' | 'M';
/** Depths of the MPI target policies (2, 4, 6: levels L1, L2, L3 in the names). */
export const POLICY_DEPTHS = [2, 4, 6] as const;

/** "is there any object with `type` = `value` among the objects in focus". */
export interface Condition {
  type: AttributeType;
  value: string;
  /** -M: index into the policy's crops when the value is shown as an image instead of a word. */
  crop?: number;
}

/**
 * A policy tree node: a leaf with its case number, or a condition (id "1", "1.1", "1.2", ...) with
 * the subtree for yes (some object in focus matches) and for no.
 */
export type PolicyNode =
  | { kind: 'leaf'; case: number }
  | { kind: 'node'; id: string; cond: Condition; yes: PolicyNode; no: PolicyNode };

/** A rendered single object standing for a value in a -M policy. */
export interface CropSpec {
  node: string;
  type: AttributeType;
  value: string;
  object: ObjectAttributes;
}

/** A ClevrPolicy: a named decision tree over object attributes whose leaves are the response cases. */
export interface Policy {
  name: string;
  mode: PolicyMode;
  depth: number;
  root: PolicyNode;
  /** Number of leaves (cases are 0..cases-1, numbered depth-first, yes before no). */
  cases: number;
  /** -M only: the crops in the order their `<image>` places appear in the text. */
  crops: CropSpec[];
  /** The rule the tree grew under (absent in hand-made trees: 'paper'). */
  pruning?: PolicyPruning;
}

// ---- names ------------------------------------------------------------------------------------------

const CONSONANTS = ['b', 'd', 'f', 'g', 'h', 'k', 'l', 'm', 'n', 'p', 'r', 's', 't', 'v', 'z'];
const VOWELS = ['a', 'e', 'i', 'o', 'u'];
/** Every syllable a policy name is made of (the tokenizer splits unknown names into these). */
export const NAME_SYLLABLES: readonly string[] = CONSONANTS.flatMap((c) => VOWELS.map((v) => c + v));
const MAX_PER_GROUP = 100;
const MODES: PolicyMode[] = ['T', 'M'];

function pseudoWord(r: Rng): string {
  const w = [0, 1, 2].map(() => r.pick(NAME_SYLLABLES)).join('');
  return w[0].toUpperCase() + w.slice(1);
}

/** "L3-Surinu": level tag (depth / 2) and a pronounceable pseudo-word. */
export function policyName(depth: number, word: string): string {
  return `L${Math.max(1, Math.round(depth / 2))}-${word}`;
}

const wordCache = new Map<string, string[]>();
/** The first `n` distinct pseudo-words of a named stream (excluding `exclude`). */
function uniqueWords(seed: number, stream: string, n: number, exclude: ReadonlySet<string> = new Set()): string[] {
  const key = `${seed}|${stream}|${exclude.size}`;
  let words = wordCache.get(key);
  if (!words || words.length < n) {
    const r = rng(seed, 'names', stream);
    const seen = new Set<string>();
    words = [];
    while (words.length < n) {
      const w = pseudoWord(r);
      if (seen.has(w) || exclude.has(w)) continue;
      seen.add(w);
      words.push(w);
    }
    wordCache.set(key, words);
  }
  return words.slice(0, n);
}

function targetWords(seed: number): string[] {
  return uniqueWords(seed, 'target', MODES.length * POLICY_DEPTHS.length * MAX_PER_GROUP);
}

// ---- trees ----------------------------------------------------------------------------------------

/**
 * How a tree is pruned while it grows. Both: a type checked on the way to a node through a *true*
 * edge is not checked again below it (the paper's stated constraint), a value already found absent
 * (a *false* edge above) is not checked again, and a node with no check left becomes a leaf.
 * - 'paper' (the default): nothing more. Every tree has exactly 4 / 16 / 55 leaves at depths
 *   2 / 4 / 6, the paper's case counts (the stated constraint alone gives 57 at depth 6). A type
 *   with one value left may still be checked; that check is trivially true, so its "no" case is
 *   unreachable, and the datasets draw only reachable cases (reachableCases): ~31 of the 55 at depth 6.
 * - 'strict': a type with a single value left is not checked either, so every case is reachable:
 *   4 / 16 / 40 cases.
 */
export type PolicyPruning = 'paper' | 'strict';
/** Every pruning rule, the default first. */
export const POLICY_PRUNINGS: readonly PolicyPruning[] = ['paper', 'strict'];

interface Builder {
  r: Rng;
  nextCase: number;
  mode: PolicyMode;
  crops: CropSpec[];
  pruning: PolicyPruning;
}

/** Grows the tree under `b.pruning` (see PolicyPruning); cases are numbered depth-first, yes before no. */
function grow(b: Builder, id: string, depthLeft: number, usedTypes: ReadonlySet<AttributeType>, absent: ReadonlyMap<AttributeType, ReadonlySet<string>>): PolicyNode {
  const open = (t: AttributeType): string[] => ATTRIBUTE_VALUES[t].filter((v) => !absent.get(t)?.has(v));
  const usable = ATTRIBUTE_TYPES.filter((t) => !usedTypes.has(t) && open(t).length >= (b.pruning === 'strict' ? 2 : 1));
  if (depthLeft === 0 || usable.length === 0) return { kind: 'leaf', case: b.nextCase++ };
  const type = b.r.pick(usable);
  const value = b.r.pick(open(type));
  const cond: Condition = { type, value };
  if (b.mode === 'M' && type !== 'size' && b.r.bool(0.5)) {
    // the crop shows `value`; its other attributes are random (size is always large: crops are zoomed)
    const object = { ...randomAttributes(b.r), [type]: value, size: 'large' } as ObjectAttributes;
    cond.crop = b.crops.length;
    b.crops.push({ node: id, type, value, object });
  }
  const yes = grow(b, `${id}.1`, depthLeft - 1, new Set([...usedTypes, type]), absent);
  const absentNo = new Map(absent);
  absentNo.set(type, new Set([...(absent.get(type) ?? []), value]));
  const no = grow(b, `${id}.2`, depthLeft - 1, usedTypes, absentNo);
  return { kind: 'node', id, cond, yes, no };
}

/** A random policy tree of `depth` from its own stream. */
export function randomPolicy(r: Rng, name: string, mode: PolicyMode, depth: number, pruning: PolicyPruning = 'paper'): Policy {
  check(Number.isInteger(depth) && depth >= 1 && depth <= 8, 'randomPolicy', () => `depth must be an integer in [1, 8], got ${depth}`);
  checkPruning('randomPolicy', pruning);
  const b: Builder = { r, nextCase: 0, mode, crops: [], pruning };
  const root = grow(b, '1', depth, new Set(), new Map());
  return { name, mode, depth, root, cases: b.nextCase, crops: b.crops, pruning };
}

/** A canonical string of the tree's decisions (two policies that decide alike have the same one). */
export function policySignature(p: Policy): string {
  const walk = (n: PolicyNode): string => (n.kind === 'leaf' ? `${n.case}` : `(${n.cond.type}=${n.cond.value}${n.cond.crop !== undefined ? '@' : ''}?${walk(n.yes)}:${walk(n.no)})`);
  return walk(p.root);
}

function checkPruning(op: string, pruning: PolicyPruning): void {
  check(POLICY_PRUNINGS.includes(pruning), op, () => `pruning must be one of ${POLICY_PRUNINGS.join(', ')}, got ${String(pruning)}`);
}

function checkSetup(op: string, mode: PolicyMode, depth: number, count: number): void {
  check(mode === 'T' || mode === 'M', op, () => `mode must be 'T' or 'M', got ${String(mode)}`);
  check((POLICY_DEPTHS as readonly number[]).includes(depth), op, () => `depth must be one of ${POLICY_DEPTHS.join(', ')}, got ${depth}`);
  check(Number.isInteger(count) && count >= 1 && count <= MAX_PER_GROUP, op, () => `count must be an integer in [1, ${MAX_PER_GROUP}], got ${count}`);
}

/**
 * The MPI target policies of a setting (-T or -M at one depth): names unique across every setting of
 * the same seed; each tree from its own stream.
 */
export function targetPolicies(seed: number, mode: PolicyMode, depth: number, count = 10, pruning: PolicyPruning = 'paper'): Policy[] {
  checkSetup('targetPolicies', mode, depth, count);
  checkPruning('targetPolicies', pruning);
  const group = MODES.indexOf(mode) * POLICY_DEPTHS.length + (POLICY_DEPTHS as readonly number[]).indexOf(depth);
  const words = targetWords(seed).slice(group * MAX_PER_GROUP, group * MAX_PER_GROUP + count);
  return words.map((w) => randomPolicy(rng(seed, 'policy', 'target', mode, depth, w), policyName(depth, w), mode, depth, pruning));
}

const targetSignatureCache = new Map<number, Set<string>>();
function allTargetSignatures(seed: number): Set<string> {
  let s = targetSignatureCache.get(seed);
  if (!s) {
    s = new Set();
    for (const pruning of POLICY_PRUNINGS) for (const mode of MODES) for (const depth of POLICY_DEPTHS) for (const p of targetPolicies(seed, mode, depth, MAX_PER_GROUP, pruning)) s.add(policySignature(p));
    targetSignatureCache.set(seed, s);
  }
  return s;
}

/**
 * Random policies for stage 0 (policy given in context). They never collide with a target policy of
 * the same seed: no target name (of any setting) and no target tree (under either pruning) is ever
 * produced. `offset` selects a later window of the same endless stream.
 */
export function randomPolicies(seed: number, mode: PolicyMode, depth: number, count: number, offset = 0, pruning: PolicyPruning = 'paper'): Policy[] {
  check(Number.isInteger(count) && count >= 0 && Number.isInteger(offset) && offset >= 0, 'randomPolicies', () => `count and offset must be non-negative integers, got ${count}, ${offset}`);
  check(mode === 'T' || mode === 'M', 'randomPolicies', () => `mode must be 'T' or 'M', got ${String(mode)}`);
  check(Number.isInteger(depth) && depth >= 1 && depth <= 8, 'randomPolicies', () => `depth must be an integer in [1, 8], got ${depth}`);
  checkPruning('randomPolicies', pruning);
  const exclude = new Set(targetWords(seed));
  const signatures = allTargetSignatures(seed);
  const words = uniqueWords(seed, `random-${mode}-${depth}`, offset + count, exclude).slice(offset);
  return words.map((w) => {
    for (let k = 0; ; k++) {
      const p = randomPolicy(rng(seed, 'policy', 'random', mode, depth, w, k), policyName(depth, w), mode, depth, pruning);
      if (!signatures.has(policySignature(p))) return p;
    }
  });
}

/** A different policy under the same name, grown under the same pruning (the paper's policy-override evaluation). */
export function overridePolicy(p: Policy, seed: number): Policy {
  for (let k = 0; ; k++) {
    const q = randomPolicy(rng(seed, 'policy', 'override', p.name, k), p.name, p.mode, p.depth, p.pruning ?? 'paper');
    if (policySignature(q) !== policySignature(p)) return q;
  }
}

/** The decision (non-leaf) nodes of a policy, depth-first, yes before no: the order of its text. */
export function decisionNodes(p: Policy): Extract<PolicyNode, { kind: 'node' }>[] {
  const out: Extract<PolicyNode, { kind: 'node' }>[] = [];
  const walk = (n: PolicyNode): void => {
    if (n.kind === 'leaf') return;
    out.push(n);
    walk(n.yes);
    walk(n.no);
  };
  walk(p.root);
  return out;
}

// ---- wording ---------------------------------------------------------------------------------------

function plural(shape: string): string {
  return `${shape}s`;
}

/** Phrase for "an object with this value": "gray object", "cube". */
function noun(c: Condition): string {
  return c.type === 'shape' ? c.value : `${c.value} object`;
}

/** The check of a condition as the policy text (asImage: a -M crop as `<image>`) or the gold CoT (the crop's value in words) writes it. */
export function conditionText(c: Condition, asImage: boolean): string {
  if (c.crop !== undefined && asImage) return `check if there is any object with the same ${c.type} as <image>.`;
  if (c.crop !== undefined) return `check if there is any object with the same ${c.type} as the image (${c.value}).`;
  return `check if there is any ${noun(c)}.`;
}

function focusText(c: Condition, asImage: boolean): string {
  if (c.crop !== undefined && asImage) return `the objects with that ${c.type}`;
  return c.type === 'shape' ? `the ${plural(c.value)}` : `the ${c.value} objects`;
}

/** "the small purple objects", "the cubes": the objects in focus after some true conditions. */
function focusGroup(conds: readonly Condition[]): string {
  const get = (t: AttributeType): string | undefined => conds.find((c) => c.type === t)?.value;
  const adj = (['size', 'color', 'material'] as const).map(get).filter((v): v is string => v !== undefined);
  const shape = get('shape');
  return ['the', ...adj, shape ? plural(shape) : 'objects'].join(' ');
}

function target(n: PolicyNode): string {
  return n.kind === 'leaf' ? `respond with Case ${n.case}` : `go to Condition ${n.id}`;
}

/** The policy text; in -M, `<image>` marks each crop in order (P_I). */
export function policyText(p: Policy): string {
  const lines = [`--- Policy: ${p.name} ---`, 'Start from Condition 1 and follow the conditions to decide the response case for the image.'];
  for (const n of decisionNodes(p)) {
    lines.push(`# Condition ${n.id}: ${conditionText(n.cond, true)}`);
    lines.push(`- If yes, focus only on ${focusText(n.cond, true)} and ${target(n.yes)}.`);
    lines.push(`- If no, ${target(n.no)}.`);
  }
  lines.push('---');
  return lines.join('\n');
}

/** The ClevrPolicy query Q for a policy name ("According to Policy: NAME, what should be ...?"). */
export function clevrQuery(policyName: string): string {
  return `According to Policy: ${policyName}, what should be the response for the given image?`;
}

// ---- evaluation ---------------------------------------------------------------------------------------

/** One condition visited by evaluatePolicy: the node, its condition, and the objects in focus and matching. */
export interface TraceStep {
  node: string;
  cond: Condition;
  /** Objects in focus before the check (indices into scene.objects). */
  focus: number[];
  /** Those of them that have the value. */
  matches: number[];
}

/** The outcome of evaluatePolicy: the case reached (0..cases-1) and the conditions visited, in order. */
export interface Evaluation {
  case: number;
  trace: TraceStep[];
}

/** Follows the policy on a scene's objects. */
export function evaluatePolicy(p: Policy, objects: readonly ObjectAttributes[]): Evaluation {
  let focus = objects.map((_, i) => i);
  const trace: TraceStep[] = [];
  let n = p.root;
  while (n.kind === 'node') {
    const c = n.cond;
    const matches = focus.filter((i) => objects[i][c.type] === c.value);
    trace.push({ node: n.id, cond: c, focus, matches });
    if (matches.length > 0) {
      focus = matches;
      n = n.yes;
    } else n = n.no;
  }
  return { case: n.case, trace };
}

/**
 * What the gold CoT says after checking `c` among the objects in focus (`trueConds`: the conditions
 * found true so far; `matches`: the indices of the focused objects that have c's value): "There is no
 * sphere among the green objects." / "There is a large green metal sphere. Focus on the green
 * spheres." / "There are 2 green spheres, including a …. Focus on the green spheres." One function
 * serves the policies' CoT and the checks task (examples.ts), so both say it in the same words.
 */
export function observationText(c: Condition, trueConds: readonly Condition[], objects: readonly ObjectAttributes[], matches: readonly number[]): string {
  if (matches.length === 0) return `There is no ${noun(c)}${trueConds.length ? ` among ${focusGroup(trueConds)}` : ''}.`;
  const first = describeObject(objects[matches[0]]);
  const focus = focusGroup([...trueConds, c]);
  const seen = matches.length === 1 ? `There is a ${first}.` : `There are ${matches.length} ${focus.slice(4)}, including a ${first}.`;
  return `${seen} Focus on ${focus}.`;
}

/** The gold chain of thought: one step per visited condition, naming what was seen. */
export function goldCot(p: Policy, objects: readonly ObjectAttributes[]): { case: number; cot: string } {
  const ev = evaluatePolicy(p, objects);
  const parts: string[] = [];
  const trueConds: Condition[] = [];
  let n: PolicyNode = p.root;
  for (const step of ev.trace) {
    if (n.kind !== 'node') break;
    const c = step.cond;
    parts.push(`Condition ${step.node}: ${conditionText(c, false)}`);
    parts.push(observationText(c, trueConds, objects, step.matches));
    if (step.matches.length === 0) n = n.no;
    else {
      trueConds.push(c);
      n = n.yes;
    }
    parts.push(n.kind === 'leaf' ? `Respond with Case ${n.case}.` : `Go to Condition ${n.id}.`);
  }
  return { case: ev.case, cot: parts.join(' ') };
}

/** The answer-only target for case k: `\boxed{Case k}`. */
export function clevrAnswer(k: number): string {
  return `\\boxed{Case ${k}}`;
}

/**
 * The gold response for a scene's objects: the case, `<think> CoT </think> \boxed{Case k}`, and the
 * answer alone.
 */
export function clevrResponse(p: Policy, objects: readonly ObjectAttributes[]): { case: number; response: string; answer: string } {
  const { case: k, cot } = goldCot(p, objects);
  return { case: k, response: `<think> ${cot} </think> ${clevrAnswer(k)}`, answer: clevrAnswer(k) };
}

// ---- reaching a case ----------------------------------------------------------------------------------

/** One step on the path to a leaf: the condition and the edge taken. */
export interface PathStep {
  node: string;
  cond: Condition;
  taken: boolean;
}

/** The path (conditions and edges) from the root to every leaf, by case. */
export function leafPaths(p: Policy): PathStep[][] {
  const out: PathStep[][] = [];
  const walk = (n: PolicyNode, path: PathStep[]): void => {
    if (n.kind === 'leaf') {
      out[n.case] = path;
      return;
    }
    walk(n.yes, [...path, { node: n.id, cond: n.cond, taken: true }]);
    walk(n.no, [...path, { node: n.id, cond: n.cond, taken: false }]);
  };
  walk(p.root, []);
  return out;
}

/**
 * Whether an object is allowed by the path's false edges: it must not have a checked value while
 * matching the true conditions that were in force at that check.
 */
function allowed(o: ObjectAttributes, path: readonly PathStep[]): boolean {
  const active: Condition[] = [];
  for (const s of path) {
    if (s.taken) active.push(s.cond);
    else if (active.every((c) => o[c.type] === c.value) && o[s.cond.type] === s.cond.value) return false;
  }
  return true;
}

/** A witness object for a leaf: has every true condition's value and is allowed; null if none exists. */
function witness(r: Rng | null, path: readonly PathStep[]): ObjectAttributes | null {
  const fixed = new Map<AttributeType, string>();
  for (const s of path) {
    if (!s.taken) continue;
    const prev = fixed.get(s.cond.type);
    if (prev !== undefined && prev !== s.cond.value) return null;
    fixed.set(s.cond.type, s.cond.value);
  }
  // enumerate the free attributes (at most 8*3*2*2 = 96 objects) in a random order
  const choices = ATTRIBUTE_TYPES.map((t) => (fixed.has(t) ? [fixed.get(t)!] : r ? r.shuffle(ATTRIBUTE_VALUES[t]) : [...ATTRIBUTE_VALUES[t]]));
  for (const size of choices[0]) for (const color of choices[1]) for (const material of choices[2]) for (const shape of choices[3]) {
    const o = { size, color, material, shape } as ObjectAttributes;
    if (allowed(o, path)) return o;
  }
  return null;
}

/**
 * The case distribution of a policy under natural sampling: `scenes` random scenes drawn as
 * sampleScene draws them (a uniform number of objects in [minObjects, maxObjects], every attribute
 * uniform and independent; placement does not depend on the attributes, so it is skipped), each
 * evaluated. Returns the frequency of every case (length p.cases, summing to 1). The most frequent
 * one is the natural-sampling majority baseline; the datasets draw cases uniformly instead.
 */
export function naturalCaseFrequencies(p: Policy, opts: { scenes?: number; seed?: number; minObjects?: number; maxObjects?: number } = {}): number[] {
  const n = opts.scenes ?? 2000;
  const [lo, hi] = [opts.minObjects ?? 3, opts.maxObjects ?? 6];
  check(Number.isInteger(n) && n > 0 && Number.isInteger(lo) && Number.isInteger(hi) && lo >= 1 && lo <= hi, 'naturalCaseFrequencies',
    () => `scenes must be a positive integer and 1 <= minObjects <= maxObjects, got ${n}, ${lo}..${hi}`);
  const r = rng(opts.seed ?? 0, 'natural', p.name);
  const counts = new Array<number>(p.cases).fill(0);
  for (let i = 0; i < n; i++) counts[evaluatePolicy(p, Array.from({ length: r.int(lo, hi) }, () => randomAttributes(r))).case]++;
  return counts.map((c) => c / n);
}

/** Cases some scene can reach (a witness object exists); the rest are reported unreachable. */
export function reachableCases(p: Policy): { reachable: number[]; unreachable: number[] } {
  const reachable: number[] = [];
  const unreachable: number[] = [];
  leafPaths(p).forEach((path, k) => (witness(null, path) ? reachable : unreachable).push(k));
  return { reachable, unreachable };
}

/**
 * A scene whose objects lead the policy to case `k`: a witness object of the leaf's true conditions
 * plus random objects that break none of its false conditions, then placed like any scene.
 */
export function sceneForCase(r: Rng, p: Policy, k: number, opts: SceneOptions = {}): Scene {
  const o = resolveSceneOptions(opts);
  const path = leafPaths(p)[k];
  check(path !== undefined, 'sceneForCase', () => `policy ${p.name} has no Case ${k} (cases 0..${p.cases - 1})`);
  const { camera, lightDir } = sceneCamera(o.jitter ? r : null);
  for (let attempt = 0; attempt < 100; attempt++) {
    const w = witness(r, path);
    check(w !== null, 'sceneForCase', () => `Case ${k} of policy ${p.name} is unreachable`);
    const n = r.int(o.minObjects, o.maxObjects);
    const attrs: ObjectAttributes[] = [w];
    while (attrs.length < n) {
      let a = randomAttributes(r);
      for (let t = 0; t < 20 && !allowed(a, path); t++) a = randomAttributes(r);
      attrs.push(allowed(a, path) ? a : witness(r, path)!);
    }
    const shuffled = r.shuffle(attrs);
    if (evaluatePolicy(p, shuffled).case !== k) throw new TrimpiError('sceneForCase', `internal error: a scene built for Case ${k} of ${p.name} reaches another case`);
    const objects = placeObjects(r, shuffled, camera, o.width, o.height);
    if (objects) return { width: o.width, height: o.height, camera, lightDir, objects };
  }
  throw new TrimpiError('sceneForCase', `could not place the objects of a scene for Case ${k} of ${p.name}; use fewer objects`);
}

// ---- scoring ------------------------------------------------------------------------------------

// the one \boxed{} extractor (braces inside JSON strings skipped): ./boxed.ts
export { lastBoxed };

/** The result of scoreClevr: exact match, the predicted box content, format checks and why it is malformed. */
export interface ClevrScore {
  correct: boolean;
  /** The boxed answer, trimmed ("Case 8"), or null without a box. */
  predicted: string | null;
  format: { think: boolean; box: boolean; knownCase: boolean };
  /** Why the output is malformed ('no think block', 'no box', 'unknown case'); empty if well-formed. */
  malformed: string[];
}

/**
 * Exact match of the boxed case against `gold`, plus format checks: a `<think> ... </think>` block
 * before the box, a box, and a case the policy has (when `cases`, its number of cases, is given).
 */
export function scoreClevr(output: string, gold: number, cases?: number): ClevrScore {
  const boxed = lastBoxed(output);
  const boxAt = output.lastIndexOf('\\boxed{');
  const open = output.indexOf('<think>');
  const close = output.indexOf('</think>');
  const think = open >= 0 && close > open && (boxAt < 0 || close < boxAt);
  const predicted = boxed === null ? null : boxed.trim();
  const m = predicted?.match(/^Case (\d+)$/);
  const knownCase = !!m && (cases === undefined || Number(m[1]) < cases);
  const malformed: string[] = [];
  if (!think) malformed.push('no think block');
  if (boxed === null) malformed.push('no box');
  else if (!knownCase) malformed.push('unknown case');
  return { correct: predicted === `Case ${gold}`, predicted, format: { think, box: boxed !== null, knownCase }, malformed };
}
